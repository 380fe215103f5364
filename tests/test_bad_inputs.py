"""Bad input gets a clear error naming the key, file or component — and loses nothing already written."""

from pathlib import Path

import pytest
import torch
from fit_configs import small_fit_config

from maestro_lit import grpo
from maestro_lit.cli import cli_main
from maestro_lit.rewards.base import RewardComponent, RewardError, RewardInputs
from maestro_lit.train.module import DivergenceError

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "tests" / "configs" / "two_rewards.yaml")


def _fit_args(tmp_path, *extra):
    return [
        "fit",
        "--config",
        QUICKSTART,
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.limit_val_batches=0",
        "--model.sampling.max_new_tokens=6",
        "--data.batch_size=2",
        *extra,
    ]


@pytest.mark.parametrize(
    "override, message",
    [
        ("--model.grpo_settings.no_such_key=1", "no_such_key"),
        ("--model.grpo_settings.beta=lots", "beta"),
        ("--model.scalarizer.class_path=maestro_lit.conductor.base.NoSuchScalarizer", "NoSuchScalarizer"),
        ("--model.grpo_settings.num_generations=1", "num_generations must be >= 2"),
        ("--model.policy_optimizer.init_args.lr=-0.01", "model.policy_optimizer.init_args.lr must be > 0"),
        ("--model.conductor_optimizer.init_args.lr=0", "model.conductor_optimizer.init_args.lr must be > 0"),
    ],
)
def test_config_errors_name_the_key(tmp_path, capsys, override, message):
    with pytest.raises((SystemExit, ValueError)) as info:
        cli_main(_fit_args(tmp_path, override))
    shown = capsys.readouterr().err + str(info.value) + str(getattr(info.value, "__cause__", ""))
    assert message in shown


def test_minibatches_must_divide_the_rollout(tmp_path):
    with pytest.raises(ValueError, match="num_minibatches=5"):
        cli_main(_fit_args(tmp_path, "--model.grpo_settings.num_minibatches=5", "--trainer.max_steps=1"))


def test_merging_adapters_into_4bit_weights_is_refused(tmp_path):
    with pytest.raises(ValueError, match="merge_adapters_for_rollout=true does not work with policy.load_in_4bit=true"):
        cli_main(_fit_args(tmp_path, "--model.policy.load_in_4bit=true", "--trainer.max_steps=1"))


class Exploding(RewardComponent):
    name = "exploding"

    def __init__(self, after_calls: int = 0) -> None:
        self.calls, self.after_calls = 0, after_calls

    def __call__(self, prompts, completions, **columns):
        self.calls += 1
        if self.calls > self.after_calls:
            raise ZeroDivisionError("boom")
        return torch.zeros(len(completions))


def _config_with(tmp_path, rewards, **grpo):
    callbacks = [
        {
            "class_path": "maestro_lit.callbacks.checkpointing.AdapterCheckpoint",
            "init_args": {"dirpath": str(tmp_path / "ckpt"), "every_n_train_steps": 1, "save_last": True},
        },
        {"class_path": "maestro_lit.callbacks.checkpointing.ExceptionCheckpoint"},
    ]
    config = small_fit_config(tmp_path, 4, callbacks, max_new_tokens=6)
    config["model"]["rewards"] = rewards
    config["model"]["grpo_settings"].update(grpo)
    return config


def test_raising_reward_component_stops_with_its_name_and_a_checkpoint(tmp_path):
    rewards = [
        {"class_path": "maestro_lit.rewards.length.LengthBand"},
        {"class_path": "test_bad_inputs.Exploding", "init_args": {"after_calls": 2}},
    ]
    with pytest.raises(RewardError, match="reward component 'exploding' raised ZeroDivisionError: boom"):
        cli_main({"fit": _config_with(tmp_path, rewards)})
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == 2  # last good step intact
    assert (tmp_path / "ckpt" / "on_exception.ckpt").is_file()


def test_raising_reward_component_can_be_skipped(tmp_path):
    rewards = [{"class_path": "maestro_lit.rewards.length.LengthBand"}, {"class_path": "test_bad_inputs.Exploding"}]
    config = _config_with(tmp_path, rewards)
    config["model"]["on_reward_error"] = "skip"
    config["trainer"]["max_steps"] = 2
    cli = cli_main({"fit": config})
    assert cli.trainer.global_step == 2
    assert torch.isnan(cli.model.last_step.raw_rewards[:, 1]).all()


def test_non_finite_updates_are_skipped_then_the_run_stops(tmp_path, monkeypatch):
    real_loss = grpo.clipped_policy_loss
    calls = {"n": 0}

    def loss_that_diverges_after_two(*args, **kwargs):
        loss, stats = real_loss(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] > 2 else loss), stats

    monkeypatch.setattr(grpo, "clipped_policy_loss", loss_that_diverges_after_two)
    config = _config_with(tmp_path, [{"class_path": "maestro_lit.rewards.length.LengthBand"}], max_consecutive_skips=2)
    config["trainer"]["max_steps"] = 10
    with pytest.raises(DivergenceError, match="2 consecutive policy updates"):
        cli_main({"fit": config})
    good = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert good["global_step"] == 2 and all(torch.isfinite(v).all() for v in good["state_dict"].values())


def test_identical_rewards_everywhere_give_zero_advantage_not_nan(tmp_path):
    class Constant(RewardComponent):
        name = "constant"

        def __call__(self, prompts, completions, **columns):
            return torch.ones(len(completions))

    from maestro_lit.settings import ModelSettings
    from maestro_lit.train.module import GRPOSettings, MaestroModule

    module = MaestroModule(policy=ModelSettings(), rewards=[Constant()], grpo_settings=GRPOSettings(num_generations=2))
    raw = module.reward_set.compute(
        RewardInputs(prompts=["p"] * 4, completions=["a", "b", "c", "d"], completion_ids=[[1]] * 4)
    )
    scalar = grpo.scalarize(raw, torch.ones(4, 1), 2)
    adv = grpo.group_advantages(scalar, 2)
    assert torch.equal(adv, torch.zeros(4)) and grpo.zero_std_group_fraction(scalar, 2) == 1


def test_tokenizer_without_pad_token_falls_back_to_eos(tmp_path, tiny_model_path, caplog):
    from transformers import AutoTokenizer

    from maestro_lit.policy.model import load_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    with caplog.at_level("WARNING"):
        loaded = load_tokenizer(str(tmp_path))
    assert loaded.pad_token == loaded.eos_token and "no pad token" in caplog.text
