"""Run one testbed method with one seed, in-process through ``cli_main``.

The run's config is ``configs/testbed/base.yaml`` deep-merged with ``<method>.yaml`` (the
same files a user passes as two ``--config`` flags), then the comparison's overrides: seed,
step count, evaluation interval, output folders, and data paths resolved inside the
installed package so the command works from any directory.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

from maestro_lit.testbed.truth import HELDOUT_PROMPTS, TRAIN_PROMPTS

METHODS = ("single", "static", "maestro", "oracle")
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "testbed"


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; a dict holding ``class_path`` is replaced whole (a different class
    must not inherit the previous one's init_args), lists are replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "class_path" not in value:
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def method_config(method: str, config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    base = yaml.safe_load((config_dir / "base.yaml").read_text())
    return merge(base, yaml.safe_load((config_dir / f"{method}.yaml").read_text()))


def run_dir(out: Path, method: str, seed: int) -> Path:
    return out / "runs" / method / f"seed{seed}"


def build_config(method: str, seed: int, steps: int, eval_every: int, out: Path, smoke: bool = False) -> dict[str, Any]:
    """The full fit config of one run; TensorBoard logs land in ``<out>/runs/<method>/seed<k>``."""
    config = method_config(method)
    trainer = config["trainer"]
    trainer.update(max_steps=steps, default_root_dir=str(run_dir(out, method, seed)), enable_progress_bar=False)
    trainer["logger"] = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": str(out / "runs"), "name": method, "version": f"seed{seed}"},
    }
    for callback in trainer["callbacks"]:
        if callback["class_path"].endswith("TestbedEvaluation"):
            callback.setdefault("init_args", {}).update(every_n_steps=eval_every, heldout_path=str(HELDOUT_PROMPTS))
            if smoke:
                callback["init_args"]["max_new_tokens"] = 8
    config["seed_everything"] = seed
    config["data"].update(seed=seed, train_path=str(TRAIN_PROMPTS), val_path=str(HELDOUT_PROMPTS))
    if smoke:
        config["model"]["sampling"]["max_new_tokens"] = 8
        trainer["log_every_n_steps"] = 1
    return config


def run_one(method: str, seed: int, steps: int, eval_every: int, out: Path, smoke: bool = False) -> dict[str, Any]:
    """Fit one run and return its ``testbed_eval.json`` content plus the wall time in seconds."""
    from maestro_lit.cli import cli_main

    start = time.perf_counter()
    with warnings.catch_warnings():  # LightningCLI warns (echoing the whole config) when sys.argv is also set
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
        cli_main({"fit": build_config(method, seed, steps, eval_every, out, smoke)})
    result = json.loads((run_dir(out, method, seed) / "testbed_eval.json").read_text())
    result["wall_s"] = time.perf_counter() - start
    result.update(method=method, seed=seed, steps=steps)
    (run_dir(out, method, seed) / "testbed_eval.json").write_text(json.dumps(result, indent=1))
    return result


def load_done(out: Path, method: str, seed: int, steps: int) -> dict[str, Any] | None:
    """A finished run's result, if one with the same step count is already on disk (for --resume)."""
    path = run_dir(out, method, seed) / "testbed_eval.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    return result if result.get("steps") == steps and "wall_s" in result else None
