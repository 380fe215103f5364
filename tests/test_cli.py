"""The CLI end to end: configs parse, a short fit writes logs and a checkpoint, and it resumes."""

from pathlib import Path

import pytest
import torch
from fit_configs import small_fit_config, tensorboard_logger
from lightning.pytorch.callbacks import Callback

from maestro_lit.cli import MaestroCLI, cli_main
from maestro_lit.data import PromptDataModule
from maestro_lit.module import MaestroModule

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


class _ParseOnlyCLI(MaestroCLI):
    def instantiate_classes(self) -> None:  # parse and type-check, load no model
        pass


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_parses(config):
    cli = _ParseOnlyCLI(MaestroModule, PromptDataModule, args=["--config", str(config)], run=False)
    assert cli.config.model is not None


def _quick_config(tmp_path, max_steps):
    checkpoint = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True, "every_n_train_steps": 1, "save_top_k": -1}}  # fmt: skip
    views = {"class_path": "maestro_lit.tb_views.TensorBoardViews", "init_args": {"log_completions_every_n_steps": 1}}
    config = small_fit_config(
        tmp_path, max_steps, [checkpoint, views], logger=tensorboard_logger(tmp_path), val_check_interval=2, limit_val_batches=1
    )
    config["data"]["val_batch_size"] = 4
    return config


class _RecordStart(Callback):
    def on_train_start(self, trainer, pl_module):
        self.step = trainer.global_step
        self.rollouts_done = pl_module.rollouts_done
        self.lora = {n: p.detach().clone() for n, p in pl_module.named_parameters() if p.requires_grad}


def test_fit_logs_checkpoints_and_resumes(tmp_path):
    cli = cli_main({"fit": _quick_config(tmp_path, max_steps=2)})
    assert cli.trainer.global_step == 2
    last = tmp_path / "ckpt" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)  # plain tensors and containers only
    assert checkpoint["global_step"] == 2 and len(checkpoint["optimizer_states"]) == 2
    assert checkpoint["state_dict"] and all("lora_" in k or k.startswith("scalarizer.") for k in checkpoint["state_dict"])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "run").rglob("events.out.tfevents*")))).Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in ("train/reward/length", "train/reward/diversity", "train/kl", "train/clip_fraction", "train/advantage_std",
                "train/zero_std_groups", "train/policy_entropy", "train/truncation_rate", "train/completion_length",
                "conductor/entropy", "conductor/action/uniform",
                "time/rollout", "time/scoring", "time/rewards", "time/inner", "time/outer", "val/reward/length"):  # fmt: skip
        assert tag in scalars, tag
    per_category = {t.split("/")[1] for t in scalars if t.startswith("conductor/") and t.count("/") == 3}
    assert per_category and per_category <= {"creative", "factual", "concise"}
    assert events.Tags()["tensors"]  # sample completions as text

    resume = _quick_config(tmp_path / "resumed", max_steps=4)
    recorder = _RecordStart()
    cli = MaestroCLI(
        MaestroModule, PromptDataModule, args={"fit": {**resume, "ckpt_path": str(last)}}, trainer_defaults={"callbacks": [recorder]}
    )
    assert recorder.step == 2 and cli.trainer.global_step == 4
    assert recorder.rollouts_done == 2 and cli.model.rollouts_done == 4  # the step counter survives resume
    assert torch.load(tmp_path / "resumed" / "ckpt" / "last.ckpt", weights_only=True)["maestro"]["rollouts_done"] == 4
    saved = checkpoint["state_dict"]
    for name, value in recorder.lora.items():
        torch.testing.assert_close(value, saved[name])


def test_resume_from_a_mismatched_checkpoint_fails_clearly(tmp_path):
    bad = tmp_path / "bad.ckpt"
    cli_main({"fit": _quick_config(tmp_path, max_steps=1)})
    checkpoint = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if "lora_A" not in k}
    torch.save(checkpoint, bad)
    with pytest.raises(KeyError, match="trainable tensors are missing"):
        cli_main({"fit": {**_quick_config(tmp_path / "again", max_steps=2), "ckpt_path": str(bad)}})
