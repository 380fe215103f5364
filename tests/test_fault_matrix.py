"""Fault matrix: SIGKILL a fit at a few seeded random points of training and of saving, resume with
``--ckpt_path last``, and check that every artefact of the run folder is complete (every ``*.ckpt``
loads with ``weights_only``, every ``*.adapter/`` holds its weights, nothing in flight is left, no
``-v1`` duplicates) and that the final weights equal an uninterrupted run's."""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from fit_configs import small_fit_config
from safetensors.torch import load_file

from maestro_lit.cli import cli_main

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 3
SEED = 1234


def _kill_points() -> list[dict]:
    """One kill per kind of point, at a seeded random step (and delay, or which write of the step)."""
    rng = random.Random(SEED)
    return [
        {"point": "train", "step": rng.randint(1, MAX_STEPS), "delay": round(rng.uniform(0.0, 0.4), 2)},
        {"point": "ckpt_write", "step": rng.randint(1, MAX_STEPS), "skip": rng.randint(0, 1)},
        {"point": "adapter_write", "step": rng.randint(1, MAX_STEPS), "skip": rng.randint(0, 1)},
    ]


def _config(run_dir: Path, extra_callbacks=()) -> dict:
    checkpoint = {
        "class_path": "maestro_lit.callbacks.checkpointing.AdapterCheckpoint",
        "init_args": {"dirpath": str(run_dir / "ckpt"), "save_last": True, "every_n_train_steps": 1, "save_top_k": -1},
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    return small_fit_config(run_dir, MAX_STEPS, [checkpoint, *extra_callbacks], max_new_tokens=4)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("straight")
    cli_main({"fit": _config(run_dir)})
    return torch.load(run_dir / "ckpt" / "last.ckpt", weights_only=True)


def _assert_every_artefact_complete(folder: Path) -> None:
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.endswith(".tmp") or "-v" in n], names  # nothing in flight, no duplicates
    for ckpt in folder.glob("*.ckpt"):
        assert "state_dict" in torch.load(ckpt, weights_only=True), ckpt.name
    for adapter in folder.glob("*.adapter"):
        assert (adapter / "adapter_model.safetensors").is_file(), f"{adapter.name} has no weights: {names}"
        assert (adapter.with_suffix(".ckpt")).is_file(), f"{adapter.name} has no checkpoint: {names}"


@pytest.mark.parametrize("kill", _kill_points(), ids=lambda k: f"{k['point']}@{k['step']}")
def test_sigkill_anywhere_then_resume_loses_nothing(tmp_path, straight, kill):
    killer = {"class_path": "probes.faults.KillAt", "init_args": kill}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(_config(tmp_path, [killer])))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "maestro_lit", "fit", "--config", str(tmp_path / "run.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]

    cli_main({"fit": {**_config(tmp_path), "ckpt_path": "last"}})
    folder = tmp_path / "ckpt"
    _assert_every_artefact_complete(folder)
    final = torch.load(folder / "last.ckpt", weights_only=True)
    assert final["maestro"]["rollouts_done"] == straight["maestro"]["rollouts_done"] == MAX_STEPS
    assert final["state_dict"].keys() == straight["state_dict"].keys()
    for key, value in straight["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][key], value, atol=1e-6, rtol=0, msg=key)
    adapter = load_file(str(folder / "last.adapter" / "adapter_model.safetensors"))  # the same unit as last.ckpt
    lora = sorted(float(v.sum()) for k, v in final["state_dict"].items() if "lora_" in k)
    assert sorted(float(v.sum()) for v in adapter.values()) == pytest.approx(lora, abs=1e-6)
