"""Run one testbed method with one seed, in-process through ``cli_main``.

The run's config is ``configs/testbed/base.yaml`` deep-merged with ``<method>.yaml`` (the
same files a user passes as two ``--config`` flags), then the comparison's overrides: seed,
step count, evaluation interval, output folders, and data paths resolved inside the
installed package so the command works from any directory.

``testbed`` picks the design: ``v1`` (``configs/testbed``, ``assets/testbed``; the default) or
``v2`` (``configs/testbed_v2``, ``assets/testbed_v2``: conflicting categories).
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

from maestro_lit.paths import TESTBED_ASSETS
from maestro_lit.testbed.truth import ASSETS, HELDOUT_PROMPTS, TRAIN_PROMPTS

METHODS = ("single", "static", "maestro", "oracle")
EXTRA_METHODS = ("maestro_trusted",)  # the alternative meta-reward; configs/testbed_v2 only
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "testbed"
# testbed name -> (config folder, assets folder with train.jsonl, heldout.jsonl, true_weights.json)
TESTBEDS = {
    "v1": (CONFIG_DIR, ASSETS),
    "v2": (CONFIG_DIR.parent / "testbed_v2", TESTBED_ASSETS["v2"]),
}


def testbed_paths(testbed: str = "v1") -> dict[str, Path]:
    """Config folder and data/truth files of a testbed design."""
    if testbed not in TESTBEDS:
        raise ValueError(f"unknown testbed {testbed!r}; known: {sorted(TESTBEDS)}")
    config_dir, assets = TESTBEDS[testbed]
    if testbed == "v1":  # the v1 module constants, unchanged
        return {"config_dir": config_dir, "train": TRAIN_PROMPTS, "heldout": HELDOUT_PROMPTS, "weights": assets / "true_weights.json"}
    return {
        "config_dir": config_dir,
        "train": assets / "train.jsonl",
        "heldout": assets / "heldout.jsonl",
        "weights": assets / "true_weights.json",
    }


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


def build_config(
    method: str, seed: int, steps: int, eval_every: int, out: Path, smoke: bool = False, testbed: str = "v1"
) -> dict[str, Any]:
    """The full fit config of one run; TensorBoard logs land in ``<out>/runs/<method>/seed<k>``."""
    paths = testbed_paths(testbed)
    config = method_config(method, paths["config_dir"])
    trainer = config["trainer"]
    trainer.update(max_steps=steps, default_root_dir=str(run_dir(out, method, seed)), enable_progress_bar=False)
    trainer["logger"] = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": str(out / "runs"), "name": method, "version": f"seed{seed}"},
    }
    for callback in trainer["callbacks"]:
        if callback["class_path"].endswith("TestbedEvaluation"):
            callback.setdefault("init_args", {}).update(every_n_steps=eval_every, heldout_path=str(paths["heldout"]))
            if testbed != "v1":
                callback["init_args"]["weights_path"] = str(paths["weights"])
            if smoke:
                callback["init_args"]["max_new_tokens"] = 8
    scalarizer = config["model"].get("scalarizer") or {}
    if testbed != "v1" and scalarizer.get("class_path", "").endswith("CategoryWeights"):
        scalarizer.setdefault("init_args", {})["weights_path"] = str(paths["weights"])
    for reward in config["model"].get("rewards") or []:
        if reward.get("class_path", "").endswith("TrustedUtility"):  # the trusted signal reads this testbed's truth
            reward.setdefault("init_args", {})["weights_path"] = str(paths["weights"])
    config["seed_everything"] = seed
    config["data"].update(seed=seed, train_path=str(paths["train"]), val_path=str(paths["heldout"]))
    if smoke:
        config["model"]["sampling"]["max_new_tokens"] = 8
        trainer["log_every_n_steps"] = 1
    return config


def run_one(method: str, seed: int, steps: int, eval_every: int, out: Path, smoke: bool = False, testbed: str = "v1") -> dict[str, Any]:
    """Fit one run and return its ``testbed_eval.json`` content plus the wall time in seconds."""
    from maestro_lit.cli import cli_main

    start = time.perf_counter()
    with warnings.catch_warnings():  # LightningCLI warns (echoing the whole config) when sys.argv is also set
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
        cli_main({"fit": build_config(method, seed, steps, eval_every, out, smoke, testbed)})
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
