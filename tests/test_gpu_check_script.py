"""``perf/gpu_check.sh``: the one prepared GPU run, as a CPU smoke run (``--tiny``) and its deadline and input checks.

The smoke run takes one step of each kind the GPU run takes (the rollout variants of gpu_rollout.py, one method's
training step through ``base/gpu.yaml`` with ``num_minibatches: auto``, the QLoRA step), at tiny shapes, and checks
that every table reaches summary.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "perf" / "gpu_check.sh"


def gpu_check(out: Path, *args: str, seconds: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    if seconds is not None:
        env["GPU_CHECK_SECONDS"] = str(seconds)
    return subprocess.run(
        ["bash", str(SCRIPT), str(out), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=900
    )


def test_tiny_run_reaches_the_summary_with_every_table(tmp_path):
    pytest.importorskip("bitsandbytes", minversion="0.49", reason="bitsandbytes>=0.49 is in the dev extra")
    done = gpu_check(tmp_path, "--tiny", "check32", "rollout", "methods=equal", "qlora", "rollout8b")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (tmp_path / "summary.md").read_text()
    assert done.stdout.rstrip().endswith(summary.rstrip().splitlines()[-1])  # the summary is printed last
    sections = [line for line in summary.splitlines() if line.startswith("## ")]
    assert sections == [
        "## gpu_rollout-check32",
        "## gpu_rollout",
        "## gpu_methods-equal",
        "## qlora",
        "## gpu_rollout-8b",
    ]
    assert "greedy agreement fast_dynamic vs generate: 100.0%" in summary  # fp32: the same tokens
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in summary.splitlines() if line.startswith("| ")]
    rollout = {row[1]: row for row in rows if row[0] == "4"}  # batch 4: variant -> row
    assert rollout["generate"][2] != "failed" and rollout["fast_dynamic"][2] != "failed"
    equal = next(row for row in rows if row[0] == "equal")
    assert equal[1] == "1" and equal[9] == "1"  # one timed step; auto minibatches on a CPU: one
    assert next(row for row in rows if row[0] == "qlora")[1] != "failed"
    assert "exited with" not in summary


def test_past_the_deadline_every_step_is_skipped_and_the_summary_still_written(tmp_path):
    done = gpu_check(tmp_path, "--tiny", "rollout", "qlora", seconds=0)
    assert done.returncode == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "=== gpu_rollout skipped" in summary and "=== qlora skipped" in summary


def test_an_unknown_option_is_one_error_line_and_exit_2(tmp_path):
    done = gpu_check(tmp_path, "--tiyn")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: unknown option --tiyn (--tiny, or steps: check32 rollout rollout8b methods=a,b qlora check fit)"
    ]
    assert not (tmp_path / "summary.md").exists()
