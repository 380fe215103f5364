"""A quickstart-like fit with TensorBoardViews writes text, figure, histograms and hparams."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from fit_configs import small_fit_config, tensorboard_logger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from maestro_lit.callbacks.tb_views import TensorBoardViews
from maestro_lit.cli import cli_main
from maestro_lit.conductor.base import Scalarization
from maestro_lit.train.records import StepRecord


def _config(tmp_path: Path, max_steps: int) -> dict:
    views = {
        "class_path": "maestro_lit.callbacks.tb_views.TensorBoardViews",
        "init_args": {"every_n_steps": 2, "hp_metric": "val/reward/length", "log_completions_every_n_steps": 1},
    }
    config = small_fit_config(
        tmp_path,
        max_steps,
        [views],
        logger=tensorboard_logger(tmp_path),
        batch_size=3,
        val_check_interval=2,
        limit_val_batches=1,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    config["data"]["val_batch_size"] = 4
    return config


def test_event_file_holds_text_figure_histograms_and_hparams(tmp_path):
    cli_main({"fit": _config(tmp_path, max_steps=3)})
    event_file = next((tmp_path / "run").rglob("events.out.tfevents*"))
    events = EventAccumulator(str(event_file), size_guidance={"tensors": 0, "images": 0, "histograms": 0}).Reload()
    tags = events.Tags()

    assert "samples/completions/text_summary" in tags["tensors"]  # the completion table
    table = events.Tensors("samples/completions/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "length" in table and "diversity" in table  # per-component rewards in the table

    assert "conductor/actions_by_category" in tags["images"]
    assert len(events.Images("conductor/actions_by_category")) == 2  # step window of 2 + the partial last one
    image = events.Images("conductor/actions_by_category")[0]
    assert image.width > 100 and image.encoded_image_string.startswith(b"\x89PNG")

    for tag in (
        "train/advantages",
        "train/completion_lengths",
        "train/reward_hist/length",
        "train/reward_hist/diversity",
    ):
        assert tag in tags["histograms"], tag
    histogram = events.Histograms("train/advantages")[0].histogram_value
    assert histogram.num == 2 * 3 * 4  # two batches of 3 prompts x G=4, pooled

    hparams = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info
    values = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    assert values["policy/lora/r"] == 8 and values["grpo/num_generations"] == 4 and values["scalarizer"] == "Conductor"
    assert (
        values["data/batch_size"] == 3
        and values["optim/policy_lr"] > 0
        and values["scalarizer_args/temperature"] == 1.0
    )
    # -1 placeholder, then the val reward
    assert "hp_metric" in tags["scalars"] and len(events.Scalars("hp_metric")) == 2


def test_static_baseline_writes_histograms_but_no_figure(tmp_path):
    """No Conductor actions (static / single-reward): histograms only, from a bare SummaryWriter."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    trainer = SimpleNamespace(
        loggers=[SimpleNamespace(experiment=writer)], is_global_zero=True, global_step=3, callback_metrics={}
    )
    record = StepRecord(
        step=1,
        group_size=4,
        prompts=["p"] * 8,
        completions=["c"] * 8,
        completion_lengths=torch.arange(8),
        raw_rewards=torch.full((8, 1), float("nan")),
        scalar_rewards=torch.zeros(8),
        advantages=torch.randn(8),
        choice=Scalarization(weights=torch.ones(8, 1)),
        component_names=["length"],
        action_names=[],
    )
    module = SimpleNamespace(
        component_names=["length"], scalarizer=SimpleNamespace(action_names=[]), last_step=record, rollouts_done=1
    )
    views = TensorBoardViews(every_n_steps=1)
    views.on_train_batch_end(trainer, module, None, None, 0)
    writer.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0, "histograms": 0}).Reload()
    # all-NaN reward skipped
    assert set(events.Tags()["histograms"]) == {"train/advantages", "train/completion_lengths"}
    assert not events.Tags()["images"] and views.state_dict() == {"batches": 1}
    with pytest.raises(ValueError, match="every_n_steps"):
        TensorBoardViews(every_n_steps=0)
