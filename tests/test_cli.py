"""The CLI end to end: configs parse, a short fit writes logs and a checkpoint, and it resumes only
when asked; crash checkpoints stay in the run folder; user errors are one line; the progress bar."""

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fit_configs import small_fit_config, tensorboard_logger
from lightning.pytorch.callbacks import Callback

from maestro_lit.callbacks.checkpointing import CheckpointError
from maestro_lit.callbacks.progress import MaestroProgressBar, bar_metrics
from maestro_lit.cli import DEBUG_ENV, DEFAULT_STANDARD, ConfigError, MaestroCLI, cli_main, compose, main
from maestro_lit.data.prompts import DataFileError, PromptDataModule
from maestro_lit.train.module import MaestroModule

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml")) + sorted((ROOT / "src/maestro_lab/configs").rglob("*.yaml"))
QUICKSTART = str(ROOT / "tests" / "configs" / "two_rewards.yaml")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_parses(config):
    assert compose(["--config", str(config)])["model"] is not None  # parse and type-check, load no model


def _quick_config(tmp_path, max_steps):
    checkpoint = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True, "every_n_train_steps": 1, "save_top_k": -1},
    }
    views = {
        "class_path": "maestro_lit.callbacks.views.LoggerViews",
        "init_args": {"log_completions_every_n_steps": 1},
    }
    config = small_fit_config(
        tmp_path,
        max_steps,
        [checkpoint, views],
        logger=tensorboard_logger(tmp_path),
        val_check_interval=2,
        limit_val_batches=1,
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
    assert checkpoint["global_step"] == 2 and len(checkpoint["optimizer_states"]) == 1  # the policy's
    assert checkpoint["maestro"]["conductor_optimizer"]["state"]  # the module's own, stepped
    assert checkpoint["state_dict"] and all(
        "lora_" in k or k.startswith("scalarizer.") for k in checkpoint["state_dict"]
    )

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "run").rglob("events.out.tfevents*")))).Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (
        "train/reward/length",
        "train/reward/diversity",
        "train/kl",
        "train/clip_fraction",
        "train/advantage_std",
        "train/zero_std_groups",
        "train/policy_entropy",
        "train/truncation_rate",
        "train/completion_length",
        "conductor/entropy",
        "conductor/action/uniform",
        "time/rollout",
        "time/scoring",
        "time/rewards",
        "time/inner",
        "time/outer",
        "val/reward/length",
    ):
        assert tag in scalars, tag
    per_category = {t.split("/")[1] for t in scalars if t.startswith("conductor/") and t.count("/") == 3}
    assert per_category and per_category <= {"creative", "factual", "concise"}
    assert events.Tags()["tensors"]  # sample completions as text

    resume = _quick_config(tmp_path / "resumed", max_steps=4)
    recorder = _RecordStart()
    cli = MaestroCLI(
        MaestroModule,
        PromptDataModule,
        args={"fit": {**resume, "ckpt_path": str(last)}},
        trainer_defaults={"callbacks": [recorder]},
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
    with pytest.raises(
        CheckpointError, match=r"bad.ckpt does not match this config .*: 28 trainable tensors are missing"
    ):
        cli_main({"fit": {**_quick_config(tmp_path / "again", max_steps=2), "ckpt_path": str(bad)}})


# ---------------------------------------------------------------- resume only when asked
FALSE_WARNINGS = ("last model of the previous", "no last checkpoint")
SMALL = [
    "--trainer.max_steps=1",
    "--trainer.limit_val_batches=0",
    "--model.sampling.max_new_tokens=4",
    "--data.batch_size=2",
    "--trainer.callbacks=[]",
    "--trainer.enable_progress_bar=false",
]


def test_a_failed_fit_leaves_nothing_behind_and_the_next_fit_starts_fresh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the user's working directory
    (tmp_path / "bad.jsonl").write_text('{"prompt": "fine"}\nnot json\n')
    with pytest.raises(DataFileError, match="bad.jsonl"):
        cli_main(["fit", "--config", QUICKSTART, *SMALL, "--data.train_path=bad.jsonl"])
    assert not list(tmp_path.rglob("*.ckpt"))  # no crash checkpoint: nothing was trained
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = cli_main(["fit", "--config", QUICKSTART, *SMALL])
    assert cli.trainer.ckpt_path is None and cli.trainer.global_step == 1  # fresh, not restored
    shown = [str(w.message) for w in caught]
    assert not [m for m in shown if any(false in m for false in FALSE_WARNINGS)], shown
    assert (
        not list(tmp_path.glob("*.ckpt")) and (tmp_path / "checkpoints" / "maestro").is_dir()
    )  # outputs in the run folder


def _crashing_config(tmp_path, rewards, max_steps):
    config = small_fit_config(tmp_path / "run", max_steps, [], max_new_tokens=4)
    config["standard_callbacks"] = [c for c in DEFAULT_STANDARD if c not in ("progress_bar", "lr_monitor")]
    config["checkpoint"] = {"dirpath": str(tmp_path / "run" / "ckpt"), "every_n_train_steps": 1}
    config["model"]["rewards"] = rewards
    return config


def test_crash_checkpoint_lands_in_the_run_folder_and_resuming_is_explicit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    length = {"class_path": "maestro_lit.rewards.length.LengthBand"}
    exploding = {"class_path": "test_bad_inputs.Exploding", "init_args": {"after_calls": 2}}
    with pytest.raises(Exception, match="exploding"):
        cli_main({"fit": _crashing_config(tmp_path, [length, exploding], max_steps=4)})
    crash = tmp_path / "run" / "ckpt" / "on_exception.ckpt"
    assert torch.load(crash, weights_only=True)["global_step"] == 2 and crash.with_name("on_exception.adapter").is_dir()
    assert not list(tmp_path.glob("*.ckpt"))  # never the working directory

    with pytest.raises(CheckpointError, match="already holds checkpoints of an earlier run"):  # a fresh fit never
        cli_main(
            {"fit": _crashing_config(tmp_path, [length, exploding], max_steps=1)}
        )  # overwrites another run's files

    recorder = _RecordStart()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = {**_crashing_config(tmp_path, [length, exploding], max_steps=3), "ckpt_path": "last"}
        resumed = cli_main({"fit": config}, trainer_defaults={"callbacks": [recorder]})
    assert recorder.step == 2 and resumed.trainer.global_step == 3  # --ckpt_path last: last.ckpt, the newest state
    assert not [w for w in caught if any(false in str(w.message) for false in FALSE_WARNINGS)]


# ---------------------------------------------------------------- progress bar
def test_bar_shows_step_of_max_reward_two_components_and_kl():
    logged = {
        "train/scalar_reward": torch.tensor(0.51234),
        "train/reward/length": 0.25,
        "train/reward/diversity": 0.5,
        "train/reward/rouge": 0.1,
        "train/kl": torch.tensor(0.002),
        "val/reward/length": 0.3,
        "train/lr": 0.001,
    }
    assert bar_metrics(logged, 12, 300) == {
        "step": "12/300",
        "reward": 0.5123,
        "length": 0.25,
        "diversity": 0.5,
        "kl": 0.002,
    }
    assert bar_metrics({}, 0, -1) == {"step": "0"}  # before the first logged step; no max_steps
    bar = MaestroProgressBar(components=1)
    trainer = SimpleNamespace(callback_metrics=logged, global_step=3, max_steps=10)
    shown = bar.get_metrics(trainer, None)
    assert shown == {"step": "3/10", "reward": 0.5123, "length": 0.25, "kl": 0.002} and "v_num" not in shown
    assert "Epoch" not in bar._get_train_description(3)


# ---------------------------------------------------------------- user errors in one line
def _run_main(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", QUICKSTART, *args])
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "override, message",
    [
        ("--model.policy_optimizer.init_args.lr=-0.001", "model.policy_optimizer.init_args.lr must be > 0, got -0.001"),
        ("--model.conductor_optimizer.init_args.lr=0", "model.conductor_optimizer.init_args.lr must be > 0"),
        ("--model.grpo_settings.no_such_key=1", "no_such_key"),
        ("--model.policy.name_or_path=/no/such/model", "/no/such/model"),
    ],
)
def test_config_errors_print_one_message_without_traceback(capsys, monkeypatch, override, message):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    code, err = _run_main(capsys, override)
    assert code == 2 and message in err
    assert "Traceback" not in err and "usage:" not in err and len(err.strip().splitlines()) <= 3, err


def test_data_file_errors_print_file_and_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"prompt": "fine"}\nnot json\n')
    code, err = _run_main(capsys, *SMALL, "--data.train_path=bad.jsonl")
    assert code == 2 and "bad.jsonl" in err and ":2" in err and "Traceback" not in err, err


def test_export_errors_are_one_line_too(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as info:
        main(
            [
                "export",
                "--ckpt",
                str(tmp_path / "none.ckpt"),
                "--config",
                str(tmp_path / "none.yaml"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2 and "none.yaml" in err and "Traceback" not in err, err


def test_debug_switch_shows_the_exception(monkeypatch):
    with pytest.raises(ConfigError, match="lr must be > 0"):
        main(["fit", "--config", QUICKSTART, "--model.policy_optimizer.init_args.lr=0", "--debug"])
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ConfigError, match="lr must be > 0"):
        main(["fit", "--config", QUICKSTART, "--model.policy_optimizer.init_args.lr=0"])
