"""Settings fail at parse time naming the key and its range; ``fit --help`` shows the per-field docs."""

from pathlib import Path

import pytest

from maestro_lit.cli import MaestroCLI, cli_main
from maestro_lit.data.prompts import PromptDataModule
from maestro_lit.settings import GRPOSettings, ModelSettings, SamplingSettings
from maestro_lit.train.module import MaestroModule

QUICKSTART = str(Path(__file__).resolve().parents[1] / "tests" / "configs" / "two_rewards.yaml")

BAD_VALUES = [
    ("sampling.temperature", "-1", "v>0"),
    ("sampling.top_p", "0", "v>0 and v<=1"),
    ("sampling.top_p", "1.5", "v>0 and v<=1"),
    ("sampling.top_k", "-1", "v>=0"),
    ("sampling.max_new_tokens", "0", "v>0"),
    ("grpo_settings.beta", "-0.1", "v>=0"),
    ("grpo_settings.epsilon_low", "-0.2", "v>=0"),
    ("grpo_settings.epsilon_high", "-0.2", "v>=0"),
    ("grpo_settings.num_minibatches", "0", "v>0"),
    ("grpo_settings.num_minibatches", "many", "Literal['auto']"),
    ("grpo_settings.max_grad_norm", "0", "v>0"),
    ("grpo_settings.loss_type", "bogus", "dr_grpo"),
    ("on_reward_error", "ignore", "skip"),
]


class _ParseOnlyCLI(MaestroCLI):
    def instantiate_classes(self) -> None:  # parse only: no model is loaded
        pass


@pytest.fixture(scope="module")
def parser():
    return _ParseOnlyCLI(MaestroModule, PromptDataModule, args=["--config", QUICKSTART], run=False).parser


def test_temperature_zero_fails_through_cli_main_naming_the_key(capsys):
    with pytest.raises(SystemExit):
        cli_main(["--config", QUICKSTART, "--model.sampling.temperature", "0"], run=False)
    err = capsys.readouterr().err
    assert 'Parser key "model.sampling.temperature"' in err and "v>0" in err


@pytest.mark.parametrize("key, value, valid", BAD_VALUES, ids=[f"{k}={v}" for k, v, _ in BAD_VALUES])
def test_out_of_range_values_fail_at_parse_time(parser, capsys, key, value, valid):
    with pytest.raises(SystemExit):
        parser.parse_args(["--config", QUICKSTART, f"--model.{key}", value])
    err = capsys.readouterr().err
    assert f'Parser key "model.{key}"' in err and valid in err


def test_good_values_parse(parser):
    config = parser.parse_args(
        ["--config", QUICKSTART, "--model.sampling.top_p", "0.9", "--model.grpo_settings.beta", "0.04"]
    )
    assert config.model.sampling.top_p == 0.9 and config.model.grpo_settings.beta == 0.04


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: SamplingSettings(temperature=0), "model.sampling.temperature must be > 0"),
        (lambda: SamplingSettings(top_p=0), "model.sampling.top_p must be in (0, 1]"),
        (lambda: SamplingSettings(max_new_tokens=0), "model.sampling.max_new_tokens must be >= 1"),
        (lambda: GRPOSettings(beta=-0.1), "model.grpo_settings.beta must be >= 0"),
        (lambda: GRPOSettings(epsilon_high=-1), "model.grpo_settings.epsilon_high must be >= 0"),
        (lambda: GRPOSettings(max_grad_norm=0), "model.grpo_settings.max_grad_norm must be > 0"),
        (lambda: GRPOSettings(num_generations=1), "model.grpo_settings.num_generations must be >= 2"),
        (lambda: GRPOSettings(loss_type="bogus"), "model.grpo_settings.loss_type must be one of"),
    ],
)
def test_settings_built_in_python_are_checked_too(build, key):
    with pytest.raises(ValueError) as info:
        build()
    assert key in str(info.value)


def test_help_shows_field_docs(capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(["fit", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "Softmax temperature of the rollout" in out  # SamplingSettings.temperature
    assert "Weight of the k3 KL penalty" in out  # GRPOSettings.beta
    assert "{grpo,bnpo,dapo,dr_grpo}" in out  # Literal choices


def test_module_without_rewards_names_the_key():
    with pytest.raises(ValueError, match="model.rewards"):
        MaestroModule(policy=ModelSettings(name_or_path="/nonexistent"), rewards=None)
