"""Two CPU processes under Lightning DDP (gloo): different prompts per rank, identical weights after."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from fit_configs import small_fit_config

ROOT = Path(__file__).resolve().parents[1]


def test_ddp_two_cpu_processes(tmp_path):
    record = {"class_path": "probes.record.RecordSteps", "init_args": {"out": str(tmp_path)}}
    config = small_fit_config(
        tmp_path, 2, [record], devices=2, strategy="ddp_find_unused_parameters_true", enable_checkpointing=False
    )
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "maestro_lit", "fit", "--config", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    ranks = [[json.loads(line) for line in (tmp_path / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert [len(r) for r in ranks] == [2, 2]
    for step0, step1 in zip(*ranks):
        assert step0["step"] == step1["step"]
        assert not set(step0["prompts"]) & set(step1["prompts"]), "ranks trained on the same prompt"
        assert step0["digest"].keys() == step1["digest"].keys() and step0["digest"]
        for name, (s0, q0) in step0["digest"].items():
            s1, q1 = step1["digest"][name]
            assert abs(s0 - s1) <= 1e-6 * (1 + abs(s0)) and abs(q0 - q1) <= 1e-6 * (1 + abs(q0)), (
                f"{name} differs across ranks"
            )
        assert step0["logged"] and step0["logged"] == step1["logged"], "logged metrics were not reduced across ranks"
    assert any(name.startswith("scalarizer.") for name in ranks[0][0]["digest"])
