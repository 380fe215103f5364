"""Exact resume: 4 steps straight == 2 steps, SIGKILL, 2 resumed steps (weights, prompts, order)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from fit_configs import every_step_checkpoint, small_fit_config

from maestro_lit.callbacks.checkpointing import CheckpointError, adapter_dir
from maestro_lit.cli import cli_main

ROOT = Path(__file__).resolve().parents[1]


def _config(run_dir: Path, extra_callbacks=()):
    callbacks = [
        every_step_checkpoint(run_dir),
        {"class_path": "probes.record.RecordSteps", "init_args": {"out": str(run_dir)}},
        *extra_callbacks,
    ]
    config = small_fit_config(run_dir, 4, callbacks)
    config["model"]["grpo_settings"]["beta"] = 0.04  # exercise the reference pass too
    config["data"]["shuffle_buffer"] = 16
    run_dir.mkdir(parents=True, exist_ok=True)
    return config


def _prompts(run_dir: Path) -> list[list[str]]:
    return [json.loads(line)["prompts"] for line in (run_dir / "rank0.jsonl").read_text().splitlines()]


@pytest.fixture
def probes_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))


def test_sigkill_then_resume_matches_a_straight_run(tmp_path, probes_on_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    cli_main({"fit": _config(straight)})

    config = _config(killed, [{"class_path": "probes.kill.KillAtStep", "init_args": {"step": 2}}])
    (killed / "run.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "maestro_lit", "fit", "--config", str(killed / "run.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    last = killed / "ckpt" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2
    assert (adapter_dir(killed / "ckpt" / "epoch=0-step=2.ckpt") / "adapter_model.safetensors").is_file()

    cli_main({"fit": {**_config(killed), "ckpt_path": str(last)}})
    assert _prompts(killed) == _prompts(straight), "resumed run saw different prompts or order"

    final_straight = torch.load(straight / "ckpt" / "last.ckpt", weights_only=True)
    final_resumed = torch.load(killed / "ckpt" / "last.ckpt", weights_only=True)
    assert final_resumed["global_step"] == final_straight["global_step"] == 4
    assert final_straight["state_dict"].keys() == final_resumed["state_dict"].keys()
    assert any(k.startswith("scalarizer.") for k in final_straight["state_dict"])
    for key, value in final_straight["state_dict"].items():
        torch.testing.assert_close(final_resumed["state_dict"][key], value, atol=1e-6, rtol=0, msg=key)
    policy_state = lambda ckpt: ckpt["optimizer_states"][0]["state"]  # noqa: E731
    conductor_state = lambda ckpt: ckpt["maestro"]["conductor_optimizer"]["state"]  # noqa: E731  (the module's own)
    for state in (policy_state, conductor_state):
        assert state(final_straight) and state(final_straight).keys() == state(final_resumed).keys()
        for key, value in state(final_straight).items():
            for name in ("exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(state(final_resumed)[key][name], value[name], atol=1e-6, rtol=0)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_damaged_checkpoint_fails_by_name(tmp_path, damage):
    path = tmp_path / "run.ckpt"
    if damage == "truncate":
        torch.save({"state_dict": {"w": torch.zeros(1000)}, "global_step": 1}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="run.ckpt"):
        cli_main(["fit", "--config", str(ROOT / "tests" / "configs" / "two_rewards.yaml"), "--ckpt_path", str(path)])
