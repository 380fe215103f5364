"""Exact resume with the paper's Conductor (M = 3): a checkpoint taken with 2 buffered steps resumes
to the same weights, buffer and update count as a straight run."""

import json

import pytest
import torch
import yaml
from test_resume import ROOT, _config, _prompts, probes_on_path  # noqa: F401  (fixture)

from maestro_lit.cli import cli_main

PRESET = yaml.safe_load((ROOT / "configs" / "methods" / "maestro.yaml").read_text())["model"]


def _paper_conductor(config: dict, max_steps: int = 4) -> dict:
    config["model"]["scalarizer"] = PRESET["scalarizer"]  # one-hot actions, learned τ, floor; M: the run's 3
    config["model"]["conductor_optimizer"] = {
        "class_path": "torch.optim.AdamW",
        "init_args": {"lr": 0.05},
    }  # visible moves
    config["trainer"]["max_steps"] = max_steps
    return config


@pytest.mark.usefixtures("probes_on_path")
def test_checkpoint_with_a_non_empty_buffer_resumes_exactly(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    cli_main({"fit": _paper_conductor(_config(straight))})
    cli_main({"fit": _paper_conductor(_config(stopped), max_steps=2)})
    last = stopped / "ckpt" / "last.ckpt"
    halfway = torch.load(last, weights_only=True)["maestro"]["outer_loop"]
    assert len(halfway["buffer"]) == 2 and halfway["updates"] == 0  # two steps buffered, no update yet

    resumed = cli_main({"fit": {**_paper_conductor(_config(stopped)), "ckpt_path": str(last)}}).model
    assert (
        resumed.outer.updates == 1 and len(resumed.outer.buffer) == 1
    )  # updated at step 3 on all three, then step 4 buffered
    assert _prompts(stopped) == _prompts(straight)
    a, b = torch.load(straight / "ckpt" / "last.ckpt", weights_only=True), torch.load(last, weights_only=True)
    assert a["maestro"]["outer_loop"]["updates"] == b["maestro"]["outer_loop"]["updates"] == 1
    assert a["state_dict"]["scalarizer.head.weight"].abs().max() > 0  # the update happened and moved φ
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, atol=1e-6, rtol=0, msg=key)
    for name in ("hidden", "actions", "meta_reward"):
        torch.testing.assert_close(
            b["maestro"]["outer_loop"]["buffer"][0][name], a["maestro"]["outer_loop"]["buffer"][0][name]
        )


def test_resuming_a_conductor_run_with_another_method_is_an_error_unless_partial(tmp_path, capsys):
    from test_nothing_lost import _config, _fit, _load

    assert _fit(tmp_path, _config(tmp_path, max_steps=2, every=1)) is None  # the fixture config: a Conductor
    last = str(tmp_path / "ckpt" / "last.ckpt")
    equal = [
        "--config",
        str(ROOT / "configs" / "methods" / "equal.yaml"),
        "--trainer.max_steps",
        "3",
        "--ckpt_path",
        last,
    ]
    assert _fit(tmp_path, _config(tmp_path, max_steps=3, every=1), *equal) == 2
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert f"checkpoint {last} was trained with scalarizer Conductor; the config gives StaticWeights" in error
    assert "checkpoint.partial_resume" in error
    assert _load(tmp_path / "ckpt" / "last.ckpt")["maestro"]["rollouts_done"] == 2  # nothing ran, nothing written

    with pytest.warns(UserWarning, match="partial resume: .*scalarizer Conductor; the config gives StaticWeights"):
        assert (
            _fit(tmp_path, _config(tmp_path, max_steps=3, every=1), *equal, "--checkpoint.partial_resume", "true")
            is None
        )
    resumed = _load(tmp_path / "ckpt" / "last.ckpt")
    assert resumed["maestro"]["rollouts_done"] == 3 and resumed["maestro"]["scalarizer"] == "StaticWeights"
    assert (
        not [k for k in resumed["state_dict"] if k.startswith("scalarizer.")] and len(resumed["optimizer_states"]) == 1
    )


@pytest.mark.usefixtures("probes_on_path")
def test_a_sampled_judge_resumes_its_draws_and_totals(tmp_path):
    """A judge on a share of the groups (SampledReward) labels, after a resume, the groups a straight run labels."""
    judge = {
        "class_path": "maestro_lit.rewards.sampled.SampledReward",
        "init_args": {
            "name": "judge",
            "fraction": 0.5,
            "inner": {"class_path": "maestro_lit.rewards.format.FormatReward", "init_args": {"name": "inner"}},
        },
    }

    def config(run_dir, max_steps=4):
        config = _config(run_dir)
        config["model"]["rewards"].append(judge)
        config["trainer"]["max_steps"] = max_steps
        return config

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    cli_main({"fit": config(straight)})
    cli_main({"fit": config(stopped, max_steps=2)})
    last = stopped / "ckpt" / "last.ckpt"
    halfway = torch.load(last, weights_only=True)["maestro"]["rewards"]["judge"]
    assert halfway["counts"][:2] == [4, 2]  # 2 steps × 2 groups seen, half of them labelled
    resumed = cli_main({"fit": {**config(stopped), "ckpt_path": str(last)}}).model
    a = torch.load(straight / "ckpt" / "last.ckpt", weights_only=True)["maestro"]["rewards"]["judge"]
    b = torch.load(last, weights_only=True)["maestro"]["rewards"]["judge"]
    assert a["counts"] == b["counts"] == [8, 4, 4 * resumed.grpo_settings.num_generations, a["counts"][3]]
    assert torch.equal(a["generator"], b["generator"])

    def judged(run_dir):  # per step: the judge's mean score, its unscored rows, its running totals
        keys = ("train/reward/judge", "train/reward_nan/judge", "train/reward_cost/judge/scored_rows")
        rows = [json.loads(line)["logged"] for line in (run_dir / "rank0.jsonl").read_text().splitlines()]
        return [[row[k] for k in keys] for row in rows]

    assert len(judged(straight)) == 4 and judged(stopped) == judged(straight)
