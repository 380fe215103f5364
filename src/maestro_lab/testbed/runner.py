"""Run one testbed method with one seed, in-process through ``cli_main``.

A run's config is composed by the CLI itself from three files shipped in the package
(``maestro_lab/configs/testbed``): ``base.yaml``, the design (``v1.yaml`` | ``v2.yaml`` | ``v3.yaml``) and
the method (``<method>.yaml``, or ``<method>_<design>.yaml`` where a design needs its own), the
same files a user passes as three ``--config`` flags. Then the comparison's overrides: seed, step
count, evaluation interval, output folders, and data paths resolved inside the installed package
so the command works from any directory.

``testbed`` picks the design: ``v1`` (``assets/testbed``; the default), ``v2``
(``assets/testbed_v2``: conflicting categories) or ``v3`` (``assets/testbed_v3``: a policy that
writes every style, three disjoint length bands; its policy is built by ``testbed.model``).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from maestro_lab.paths import TESTBED_ASSETS, TESTBED_CONFIGS
from maestro_lab.testbed.model import resolve
from maestro_lab.testbed.truth import ASSETS, HELDOUT_PROMPTS, TRAIN_PROMPTS
from maestro_lit.paths import project_configs

METHODS = ("single", "static", "maestro", "oracle")
EXTRA_METHODS = ("maestro_trusted",)  # the alternative meta-reward; v2 only
CONFIG_DIR = TESTBED_CONFIGS
# design -> train/heldout.jsonl, true_weights.json
TESTBEDS = {"v1": ASSETS, "v2": TESTBED_ASSETS["v2"], "v3": TESTBED_ASSETS["v3"]}
V3_PRESETS = {
    "single": "single",
    "equal": "equal",
    "random": "random",
    "maestro": "maestro",
    "maestro_literal": "maestro",  # the paper's literal normalisation (raw) for the bands
    "maestro_centered": "maestro",  # raw scores centred within the group
    "maestro_fast": "maestro",
    "maestro_joint": "maestro_joint",
    "trusted": "trusted",
    "oracle": None,
}
"""v3 method -> the project's ``configs/methods/<preset>.yaml`` it runs (then ``testbed/<method>_v3.yaml``, if any,
on top)."""


def paths_for(testbed: str = "v1") -> dict[str, Path]:
    """Design config file and data/truth files of a testbed design."""
    if testbed not in TESTBEDS:
        raise ValueError(f"unknown testbed {testbed!r}; known: {sorted(TESTBEDS)}")
    assets = TESTBEDS[testbed]
    train, heldout = (
        (TRAIN_PROMPTS, HELDOUT_PROMPTS) if testbed == "v1" else (assets / "train.jsonl", assets / "heldout.jsonl")
    )
    return {
        "design": CONFIG_DIR / f"{testbed}.yaml",
        "train": train,
        "heldout": heldout,
        "weights": assets / "true_weights.json",
    }


def method_files(method: str, testbed: str = "v1") -> list[Path]:
    """The ``--config`` files of one method on one design, in order.

    v3 runs the project's own method presets (``configs/methods``), so what is compared is what a
    user trains with; ``testbed/<method>_v3.yaml`` adds only what v3 must name (a component, a lr).
    """
    if testbed == "v3":
        return v3_method_files(method)
    own = CONFIG_DIR / f"{method}_{testbed}.yaml"
    if not own.is_file():
        own = CONFIG_DIR / f"{method}.yaml"
    if not own.is_file():
        raise ValueError(f"no testbed config for method {method!r} on design {testbed!r} in {CONFIG_DIR}")
    return [CONFIG_DIR / "base.yaml", paths_for(testbed)["design"], own]


def v3_method_files(method: str) -> list[Path]:
    if method not in V3_PRESETS:
        raise ValueError(f"unknown v3 method {method!r}; known: {sorted(V3_PRESETS)}")
    files = [CONFIG_DIR / "base.yaml", paths_for("v3")["design"]]
    if V3_PRESETS[method] is not None:
        files.append(project_configs() / "methods" / f"{V3_PRESETS[method]}.yaml")
    own = CONFIG_DIR / f"{method}_v3.yaml"
    return files + ([own] if own.is_file() else [])


def method_config(method: str, testbed: str = "v1") -> dict[str, Any]:
    """The method's fit config as the CLI composes it from its files (no training)."""
    from maestro_lit.cli import compose

    return compose([arg for path in method_files(method, testbed) for arg in ("--config", str(path))])


def run_dir(out: Path, method: str, seed: int) -> Path:
    return out / "runs" / method / f"seed{seed}"


def build_config(
    method: str, seed: int, steps: int, eval_every: int, out: Path, smoke: bool = False, testbed: str = "v1"
) -> dict[str, Any]:
    """The full fit config of one run; TensorBoard logs land in ``<out>/runs/<method>/seed<k>``."""
    paths = paths_for(testbed)
    config = method_config(method, testbed)
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
    if testbed == "v3" and scalarizer.get("class_path", "").endswith("TrustedConductor"):
        # the labels: truth on 25 % of prompts
        trusted = scalarizer.get("init_args", {}).get("trusted_component", "trusted")
        config["model"]["rewards"] = [
            *config["model"]["rewards"],
            {"class_path": "maestro_lab.testbed.trusted.TrustedUtility", "init_args": {"share": 0.25, "name": trusted}},
        ]
    for reward in config["model"].get("rewards") or []:
        if reward.get("class_path", "").endswith("TrustedUtility"):  # the trusted signal reads this testbed's truth
            reward.setdefault("init_args", {})["weights_path"] = str(paths["weights"])
    policy = config["model"].setdefault("policy", {})
    if "name_or_path" in policy:  # v3 names its own policy, which the lab builds
        policy["name_or_path"] = resolve(policy["name_or_path"])
    config["seed_everything"] = seed
    config["data"].update(seed=seed, train_path=str(paths["train"]), val_path=str(paths["heldout"]))
    if smoke:
        config["model"]["sampling"]["max_new_tokens"] = 8
        trainer["log_every_n_steps"] = 1
    return config


def run_one(
    method: str, seed: int, steps: int, eval_every: int, out: Path, smoke: bool = False, testbed: str = "v1"
) -> dict[str, Any]:
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


def run_one_threaded(
    method: str, seed: int, steps: int, eval_every: int, out: Path, smoke: bool, testbed: str, threads: int
) -> dict[str, Any]:
    """``run_one`` with torch's thread count set first: the entry point of a ``--jobs`` worker process."""
    import torch

    torch.set_num_threads(threads)
    return run_one(method, seed, steps, eval_every, out, smoke, testbed)
