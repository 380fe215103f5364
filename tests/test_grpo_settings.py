"""The GRPO options TRL and NOVER users expect: parse-time checks, ``fit --help`` docs, NOVER's method file."""

from pathlib import Path

import pytest
from test_settings import QUICKSTART, _ParseOnlyCLI

from maestro_lit.cli import cli_main
from maestro_lit.data.prompts import PromptDataModule
from maestro_lit.settings import GRPOSettings, ReferenceSettings
from maestro_lit.train.module import MaestroModule

ROOT = Path(__file__).resolve().parents[1]
BAD_VALUES = [
    ("scale_rewards", "std", "none"),
    ("scale_rewards", "false", "group"),
    ("importance_sampling_level", "sequences", "sequence"),
    ("top_entropy_quantile", "0", "v>0 and v<=1"),
    ("top_entropy_quantile", "1.5", "v>0 and v<=1"),
    ("mask_truncated_completions", "maybe", "bool"),
]


@pytest.fixture(scope="module")
def parser():
    return _ParseOnlyCLI(MaestroModule, PromptDataModule, args=["--config", QUICKSTART], run=False).parser


@pytest.mark.parametrize("key, value, valid", BAD_VALUES, ids=[f"{k}={v}" for k, v, _ in BAD_VALUES])
def test_bad_values_fail_at_parse_time_naming_the_key(parser, capsys, key, value, valid):
    with pytest.raises(SystemExit):
        parser.parse_args(["--config", QUICKSTART, f"--model.grpo_settings.{key}", value])
    err = capsys.readouterr().err
    assert f'Parser key "model.grpo_settings.{key}"' in err and valid in err


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: GRPOSettings(scale_rewards="std"), "model.grpo_settings.scale_rewards must be one of"),
        (lambda: GRPOSettings(importance_sampling_level="seq"), "importance_sampling_level must be one of"),
        (lambda: GRPOSettings(top_entropy_quantile=0.0), "model.grpo_settings.top_entropy_quantile must be in (0, 1]"),
        (lambda: ReferenceSettings(mix_alpha=-0.1), "model.reference.mix_alpha must be in [0, 1]"),
    ],
)
def test_settings_built_in_python_are_checked(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


def test_defaults_are_todays_grpo_and_trls_reference_mix():
    settings = GRPOSettings()
    assert (settings.scale_rewards, settings.mask_truncated_completions) == ("group", False)
    assert (settings.importance_sampling_level, settings.top_entropy_quantile) == ("token", 1.0)
    assert ReferenceSettings().mix_alpha == 0.6  # TRL's ref_model_mixup_alpha default, NOVER's value


def test_nover_grpo_overlay_sets_novers_grpo_settings_over_the_base(parser):
    overlay = str(ROOT / "configs" / "overlays" / "nover_grpo.yaml")
    config = parser.parse_args(["--config", QUICKSTART, "--config", overlay])
    grpo_settings = config.model.grpo_settings
    assert (grpo_settings.loss_type, grpo_settings.epsilon_low, grpo_settings.epsilon_high) == ("dr_grpo", 0.1, 0.28)
    assert (grpo_settings.scale_rewards, grpo_settings.mask_truncated_completions) == ("none", True)
    assert (grpo_settings.importance_sampling_level, grpo_settings.top_entropy_quantile) == ("sequence", 0.2)
    quickstart = parser.parse_args(["--config", QUICKSTART]).model.grpo_settings
    assert (grpo_settings.num_generations, grpo_settings.beta) == (quickstart.num_generations, quickstart.beta)


def test_help_documents_the_new_keys(capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "--help"])
    out = capsys.readouterr().out
    documented = ["TRL's scale_rewards", "{group,batch,none}", "{token,sequence}", "highest entropy"]
    documented.append("ref_model_mixup_alpha")  # model.reference.mix_alpha
    assert all(text in out for text in documented), [text for text in documented if text not in out]
