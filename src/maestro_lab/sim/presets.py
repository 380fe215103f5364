"""Scalarisers and their Conductor optimisers built from the project's method files, as the CLI builds them.

``configs/methods/<name>.yaml`` is parsed with jsonargparse against the same types
``MaestroModule`` declares (``scalarizer: Scalarizer``, ``conductor_optimizer:
OptimizerCallable``), so the simulator runs exactly the preset a training run would, with one
documented exception: the Conductor's learning rate. The sim has 150 GRPO steps where a paper
run has thousands, so ``SimConfig.conductor_lr`` replaces the file's ``lr`` for every learned
method (``lr=None`` keeps the file's, e.g. the paper's 5e-5).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache

import torch
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch.cli import OptimizerCallable

from maestro_lit.conductor.base import Scalarizer
from maestro_lit.paths import project_configs

# What MaestroModule uses when a method file names no Conductor optimiser (and what code-built sim methods use).
DEFAULT_OPTIMIZER = {"class_path": "torch.optim.AdamW", "init_args": {"weight_decay": 0.01}}


@cache
def _parser() -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--scalarizer", type=Scalarizer)
    parser.add_argument("--conductor_optimizer", type=OptimizerCallable)
    return parser


def method_file(name: str) -> dict:
    """The ``model:`` block of ``configs/methods/<name>.yaml``."""
    methods_dir = project_configs() / "methods"
    path = methods_dir / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no method file {path} (have: {sorted(p.stem for p in methods_dir.glob('*.yaml'))})")
    model = (yaml.safe_load(path.read_text()) or {}).get("model")
    if not isinstance(model, dict) or "scalarizer" not in model:
        raise ValueError(f"{path}: expected a 'model.scalarizer' entry")
    return model


def build(model: dict, lr: float | None) -> tuple[Scalarizer, Callable[..., torch.optim.Optimizer]]:
    """Instantiate ``model.scalarizer`` and ``model.conductor_optimizer`` (default AdamW); ``lr`` overrides
    the file's."""
    model = copy.deepcopy(model)
    optimizer = model.get("conductor_optimizer") or copy.deepcopy(DEFAULT_OPTIMIZER)
    if lr is not None:
        optimizer.setdefault("init_args", {})["lr"] = lr
    parser = _parser()
    made = parser.instantiate(
        parser.parse_object({"scalarizer": model["scalarizer"], "conductor_optimizer": optimizer})
    )
    return made.scalarizer, made.conductor_optimizer


def from_file(name: str, lr: float | None) -> tuple[Scalarizer, Callable[..., torch.optim.Optimizer]]:
    return build(method_file(name), lr)
