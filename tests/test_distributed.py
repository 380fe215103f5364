"""Two CPU processes (gloo) through the CLI: DDP, and FSDP2 (``configs/overlays/fsdp.yaml``'s strategy).

Both runs share one config (a LoRA reference pass with a synced reference adapter, ``ppl``'s reference forward,
HF ``generate``), so FSDP2 is checked against DDP: the same prompts per rank and the same weights after each step.
A single process cannot be the reference here: it samples one batch from one random stream, where two ranks
sample two half batches from two; DDP is the data-parallel run every rank of which this file checks.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from fit_configs import every_step_checkpoint, small_fit_config

from maestro_lit.callbacks.checkpointing import adapter_dir

ROOT = Path(__file__).resolve().parents[1]
FSDP2 = {"class_path": "maestro_lit.train.fsdp2.FSDP2Strategy"}


def _config(run_dir: Path, strategy, max_steps: int = 2) -> dict:
    callbacks = [
        {"class_path": "probes.record.RecordSteps", "init_args": {"out": str(run_dir)}},
        every_step_checkpoint(run_dir),
    ]
    config = small_fit_config(run_dir, max_steps, callbacks, devices=2, strategy=strategy)
    model = config["model"]
    model["rewards"].append(
        {"class_path": "maestro_lit.rewards.perplexity.ReasoningPerplexity", "init_args": {"name": "ppl"}}
    )
    model["grpo_settings"]["beta"] = 0.04  # the reference pass
    model["reference"] = {"sync_every": 1, "mix_alpha": 0.6}  # a second adapter, mixed after every step
    model["rollout"] = {"engine": "generate"}  # the engine FSDP2 runs
    model["sampling"]["merge_adapters_for_rollout"] = False
    model["scalarizer"]["init_args"]["update_every"] = 1  # the Conductor steps every step
    run_dir.mkdir(parents=True, exist_ok=True)
    return config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fit(run_dir: Path, config: dict, both_ranks: bool = False) -> subprocess.CompletedProcess:
    """``maestro_lit fit`` on two processes: Lightning's launcher starts rank 1 once rank 0 has loaded; with
    ``both_ranks`` the test starts both at once (as torchrun would), which halves the start-up time here."""
    path = run_dir / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "maestro_lit", "fit", "--config", str(path)]
    if not both_ranks:
        return subprocess.run(command, cwd=run_dir, env=env, capture_output=True, text=True, timeout=600)
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE="2", NODE_RANK="0")
    ranks = [
        subprocess.Popen(
            command,
            cwd=run_dir,
            env={**env, "LOCAL_RANK": str(rank), "RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [rank.communicate(timeout=600) for rank in ranks]
    failed = [(rank, out) for rank, out in zip(ranks, outputs) if rank.returncode] or [(ranks[0], outputs[0])]
    rank, (stdout, stderr) = failed[0]
    return subprocess.CompletedProcess(command, rank.returncode, stdout, stderr)


def _records(run_dir: Path) -> list[list[dict]]:
    return [[json.loads(line) for line in (run_dir / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * (1 + abs(a))


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ddp")
    result = _fit(run_dir, _config(run_dir, "ddp_find_unused_parameters_true"))
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_ddp_two_cpu_processes(ddp_run):
    ranks = _records(ddp_run)
    assert [len(r) for r in ranks] == [2, 2]
    for step0, step1 in zip(*ranks):
        assert step0["step"] == step1["step"]
        assert not set(step0["prompts"]) & set(step1["prompts"]), "ranks trained on the same prompt"
        assert step0["digest"].keys() == step1["digest"].keys() and step0["digest"]
        for name, (s0, q0) in step0["digest"].items():
            s1, q1 = step1["digest"][name]
            assert _close(s0, s1, 1e-6) and _close(q0, q1, 1e-6), f"{name} differs across ranks"
        assert step0["logged"] and step0["logged"] == step1["logged"], "logged metrics were not reduced across ranks"
    assert any(name.startswith("scalarizer.") for name in ranks[0][0]["digest"])


def test_fsdp2_resumes_ddp_checkpoint_shards_and_matches_ddp(ddp_run, tmp_path):
    """One FSDP2 launch: resume DDP's step-1 checkpoint, run step 2 sharded, save. Its step-2 checkpoint equals
    DDP's straight one, so an FSDP2 checkpoint resumes exactly too (the same file, read the same way)."""
    config = {**_config(tmp_path, FSDP2), "ckpt_path": str(ddp_run / "ckpt" / "epoch=0-step=1.ckpt")}
    result = _fit(tmp_path, config, both_ranks=True)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks, ddp = _records(tmp_path), _records(ddp_run)
    assert [len(r) for r in ranks] == [1, 1]  # step 2 only

    for rank in (0, 1):
        fsdp, straight = ranks[rank][0], ddp[rank][1]
        assert 0.45 < fsdp["policy_local_numel"] / fsdp["policy_numel"] < 0.55, "not sharded over two ranks"
        assert fsdp["step"] == straight["step"] and fsdp["prompts"] == straight["prompts"], "data position lost"
        assert fsdp["completions"] == straight["completions"], "generation differs from DDP's"
        assert fsdp["digest"].keys() == straight["digest"].keys()
        for name, (s, q) in straight["digest"].items():  # 1e-5 relative on each tensor's sum and sum of squares
            fs, fq = fsdp["digest"][name]
            assert _close(s, fs, 1e-5) and _close(q, fq, 1e-5), f"{name} differs from DDP's"
        assert fsdp["logged"].keys() == straight["logged"].keys()

    # the one-file checkpoint: trainable tensors, optimiser states, counters; elementwise DDP's (atol 1e-6)
    last, ddp_last = _load(tmp_path / "ckpt" / "last.ckpt"), _load(ddp_run / "ckpt" / "last.ckpt")
    assert last["maestro"]["rollouts_done"] == ddp_last["maestro"]["rollouts_done"] == 2
    assert last["state_dict"].keys() == ddp_last["state_dict"].keys()
    assert any(".reference." in k for k in last["state_dict"]) and any("scalarizer." in k for k in last["state_dict"])
    for key, value in ddp_last["state_dict"].items():
        torch.testing.assert_close(last["state_dict"][key], value, atol=1e-6, rtol=0, msg=key)
    for state in (lambda c: c["optimizer_states"][0], lambda c: c["maestro"]["conductor_optimizer"]):
        assert state(last)["param_groups"][0]["params"] == state(ddp_last)["param_groups"][0]["params"]
        assert state(last)["state"].keys() == state(ddp_last)["state"].keys() and state(last)["state"]
        for key, value in state(ddp_last)["state"].items():
            for name in ("exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(state(last)["state"][key][name], value[name], atol=1e-6, rtol=0)

    # the adapter folder: the gathered LoRA tensors, not one rank's shards
    from safetensors.torch import load_file

    adapter = load_file(adapter_dir(tmp_path / "ckpt" / "last.ckpt") / "adapter_model.safetensors")
    lora = {k: v for k, v in last["state_dict"].items() if "lora_" in k and ".default." in k}
    assert len(adapter) == len(lora)
    for key, value in adapter.items():
        torch.testing.assert_close(value, lora[f"policy.model.{key[: -len('.weight')]}.default.weight"], msg=key)
