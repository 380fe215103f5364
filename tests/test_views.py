"""LoggerViews: the table, the action figure and histograms through TensorBoard, W&B (offline) and MLflow (file
store), ``completions.jsonl`` in the run folder, TensorBoard's custom-scalars layout, and one warning per view a
logger cannot show."""

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fit_configs import small_fit_config, tensorboard_logger
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from maestro_lit.callbacks.completions_log import append_completions, read_completions
from maestro_lit.callbacks.view_adapters import TensorBoardAdapter
from maestro_lit.callbacks.views import LoggerViews
from maestro_lit.cli import cli_main
from maestro_lit.conductor.base import Scalarization
from maestro_lit.train.records import StepRecord

VIEWS = "maestro_lit.callbacks.views.LoggerViews"


def _config(tmp_path: Path, max_steps: int, logger, views: dict | None = None, **trainer) -> dict:
    views = {
        "class_path": VIEWS,
        "init_args": {
            "every_n_steps": 2,
            "hp_metric": "val/reward/length",
            "log_completions_every_n_steps": 1,
            **(views or {}),
        },
    }
    config = small_fit_config(
        tmp_path,
        max_steps,
        [views],
        logger=logger,
        batch_size=3,
        enable_checkpointing=False,
        enable_model_summary=False,
        **trainer,
    )
    config["data"]["val_batch_size"] = 4
    return config


def _assert_completions_file(path: Path, steps: int) -> None:
    rows = read_completions(path)
    assert [row["step"] for row in rows] == [s for s in range(1, steps + 1) for _ in range(3 * 4)]  # B=3, G=4
    row = rows[0]
    assert set(row["rewards"]) == {"length", "diversity"} and row["action"] not in ("static", None)
    assert isinstance(row["completion"], str) and isinstance(row["scalar_reward"], float)


def test_tensorboard_run_holds_table_figure_histograms_layout_hparams_and_completions(tmp_path):
    config = _config(tmp_path, 3, tensorboard_logger(tmp_path), val_check_interval=2, limit_val_batches=1)
    cli_main({"fit": config})
    event_file = next((tmp_path / "run").rglob("events.out.tfevents*"))
    events = EventAccumulator(str(event_file), size_guidance={"tensors": 0, "images": 0, "histograms": 0}).Reload()
    tags = events.Tags()

    assert "samples/completions/text_summary" in tags["tensors"]  # the completion table
    table = events.Tensors("samples/completions/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "length" in table and "diversity" in table  # per-component rewards in the table
    assert len(events.Tensors("samples/completions/text_summary")) == 3

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

    layout = layout_pb2.Layout.FromString(events.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {chart.title: list(chart.multiline.tag) for category in layout.category for chart in category.chart}
    assert layout.category[0].title == "1. training story"
    assert charts["KL to the reference"] == ["^train/kl$"]
    assert charts["weight of diversity per category"] == ["^conductor/[^/]+/weight/diversity$"]
    assert "train/kl" in tags["scalars"] and "train/reward/length" in tags["scalars"]  # the charts' tags exist

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

    _assert_completions_file(event_file.parent / "completions.jsonl", steps=3)


def test_wandb_offline_run_files_hold_table_figure_and_histograms(tmp_path, monkeypatch):
    import wandb

    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    logger = {
        "class_path": "lightning.pytorch.loggers.WandbLogger",
        "init_args": {"save_dir": str(tmp_path), "offline": True, "project": "maestro-test"},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli_main({"fit": _config(tmp_path, 3, logger)})
    wandb.finish()
    assert not [w for w in caught if str(w.message).startswith("views:")]  # W&B shows every view
    run = next((tmp_path / "wandb").glob("offline-run-*"))
    tables = sorted((run / "files" / "media" / "table" / "samples").glob("completions_*.table.json"))
    assert len(tables) == 3
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["prompt", "completion", "length", "diversity", "scalar", "action"]
    assert len(table["data"]) == 8  # table_rows
    figures = list((run / "files" / "media" / "images" / "conductor").glob("actions_by_category_*.png"))
    assert len(figures) == 2 and figures[0].read_bytes().startswith(b"\x89PNG")
    history = next(run.glob("run-*.wandb")).read_bytes()  # W&B's record log: histograms are typed history items
    for tag in (b"train/advantages", b"train/reward_hist/diversity"):
        typed = [i for i in range(len(history)) if history.startswith(tag + b"\x12\x05_type", i)]
        assert typed and all(b'"histogram"' in history[i : i + len(tag) + 30] for i in typed), tag
    _assert_completions_file(tmp_path / "completions.jsonl", steps=3)  # trainer.log_dir: W&B's save_dir


def test_mlflow_file_store_holds_table_and_figure_and_warns_once_for_histograms(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    store = tmp_path / "mlruns"
    logger = {
        "class_path": "lightning.pytorch.loggers.MLFlowLogger",
        "init_args": {"experiment_name": "maestro-test", "tracking_uri": f"file:{store}", "save_dir": None},
    }
    adapters = {"adapters": [{"class_path": "maestro_lit.callbacks.view_adapters.MLflowAdapter"}]}  # injected
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli_main({"fit": _config(tmp_path, 3, logger, adapters)})
    notes = [str(w.message) for w in caught if str(w.message).startswith("views:")]
    assert len(notes) == 1 and "MLFlowLogger cannot show the histograms" in notes[0]
    artifacts = next(store.glob("*/*/artifacts"))
    tables = sorted((artifacts / "samples" / "completions").glob("step_*.json"))
    assert [t.name for t in tables] == ["step_000001.json", "step_000002.json", "step_000003.json"]
    table = json.loads(tables[0].read_text())
    assert table["columns"][2:4] == ["length", "diversity"] and len(table["data"]) == 8
    figures = sorted((artifacts / "conductor" / "actions_by_category").glob("step_*.png"))
    assert [f.name for f in figures] == ["step_000002.png", "step_000003.png"]
    assert figures[0].read_bytes().startswith(b"\x89PNG")
    assert list(tmp_path.rglob("completions.jsonl"))


def _record(actions=None, action_names=()) -> StepRecord:
    return StepRecord(
        step=1,
        group_size=4,
        prompts=["p"] * 8,
        completions=["c"] * 8,
        completion_lengths=torch.arange(8),
        raw_rewards=torch.full((8, 1), float("nan")),
        scalar_rewards=torch.zeros(8),
        advantages=torch.randn(8),
        choice=Scalarization(weights=torch.ones(8, 1), actions=actions),
        component_names=["length"],
        action_names=list(action_names),
    )


def _trainer(tmp_path, logger):
    return SimpleNamespace(
        loggers=[logger], is_global_zero=True, global_step=3, callback_metrics={}, log_dir=str(tmp_path)
    )


def _module(record):
    names = list(record.action_names)
    return SimpleNamespace(
        component_names=["length"], scalarizer=SimpleNamespace(action_names=names), last_step=record, rollouts_done=1
    )


def test_static_baseline_writes_histograms_but_no_figure(tmp_path):
    """No Conductor actions (static / single-reward): histograms only."""
    logger = TensorBoardLogger(str(tmp_path), name="run")
    trainer, record = _trainer(tmp_path, logger), _record()
    views = LoggerViews(every_n_steps=1, log_completions_every_n_steps=1)
    views.setup(trainer, None, "fit")
    views.bind(trainer)
    views.on_train_batch_end(trainer, _module(record), None, None, 0)
    logger.experiment.close()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "histograms": 0}).Reload()
    # all-NaN reward skipped
    assert set(events.Tags()["histograms"]) == {"train/advantages", "train/completion_lengths"}
    assert not events.Tags()["images"] and views.state_dict() == {"batches": 1}
    rows = read_completions(tmp_path / "completions.jsonl")
    assert len(rows) == 8 and rows[0]["rewards"] == {"length": None} and rows[0]["action"] == "static"
    with pytest.raises(ValueError, match="views.every_n_steps"):
        LoggerViews(every_n_steps=0)


def test_a_logger_without_views_warns_once_and_still_gets_the_file(tmp_path):
    logger = CSVLogger(str(tmp_path))
    trainer, record = _trainer(tmp_path, logger), _record(torch.zeros(8, dtype=torch.long), ["length"])
    views = LoggerViews(every_n_steps=1, log_completions_every_n_steps=1)
    views.setup(trainer, None, "fit")
    with pytest.warns(UserWarning, match="CSVLogger cannot show the completion table, action figure, histograms"):
        views.bind(trainer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning while training
        for step in (1, 2):
            module = _module(record)
            module.rollouts_done = step
            views.on_train_batch_end(trainer, module, None, None, 0)
    assert [row["step"] for row in read_completions(tmp_path / "completions.jsonl")] == [1] * 8 + [1] * 8


class _BrokenTable(TensorBoardAdapter):
    def table(self, logger, key, columns, rows, step):
        raise RuntimeError("table service down")


def test_a_failing_view_warns_once_and_training_goes_on(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="run")
    trainer, record = _trainer(tmp_path, logger), _record()
    views = LoggerViews(every_n_steps=1, log_completions_every_n_steps=1, adapters=[_BrokenTable()])
    views.setup(trainer, None, "fit")
    views.bind(trainer)
    with pytest.warns(UserWarning, match="failed to show the completion table") as caught:
        for _ in range(3):
            views.on_train_batch_end(trainer, _module(record), None, None, 0)
    assert len([w for w in caught if "failed" in str(w.message)]) == 1
    logger.experiment.close()
    events = EventAccumulator(logger.log_dir, size_guidance={"histograms": 0}).Reload()
    assert len(events.Histograms("train/advantages")) == 3  # the other views went on


def test_completions_file_appends_and_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "completions.jsonl"
    append_completions(path, [{"step": 1, "completion": "a"}])
    append_completions(path, [{"step": 2, "completion": "b|\nc"}, {"step": 2, "completion": "d"}])
    assert [r["completion"] for r in read_completions(path)] == ["a", "b|\nc", "d"]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"step": 3, "compl')  # a crash mid-line
    assert [r["step"] for r in read_completions(path)] == [1, 2, 2]
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="completions.jsonl:2"):
        read_completions(path)
