"""Exact resume with the paper's Conductor (M = 3): a checkpoint taken with 2 buffered steps resumes
to the same weights, buffer and update count as a straight run."""

import pytest
import torch
import yaml
from test_resume import ROOT, _config, _prompts, probes_on_path  # noqa: F401  (fixture)

from maestro_lit.cli import cli_main

PRESET = yaml.safe_load((ROOT / "configs" / "methods" / "maestro.yaml").read_text())["model"]


def _paper_conductor(config: dict, max_steps: int = 4) -> dict:
    config["model"]["scalarizer"] = PRESET["scalarizer"]  # one-hot actions, learned τ, floor, update_every 3
    # visible moves
    config["model"]["conductor_optimizer"] = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.05}}
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
    # updated at step 3 on all three, then step 4 buffered
    assert resumed.outer.updates == 1 and len(resumed.outer.buffer) == 1
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
