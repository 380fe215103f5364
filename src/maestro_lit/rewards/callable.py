"""Bring-your-own reward: wrap a TRL-style function given by import path.

``f(prompts, completions, **columns) -> list[float | None]`` is TRL's reward-function shape,
so existing reward functions plug in unchanged through YAML
(``function: my_pkg.rewards:format_reward``). ``None`` means "not applicable" and becomes
NaN, which the trainer masks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import RewardComponent, as_score_tensor


def import_function(path: str) -> Callable[..., Any]:
    """Resolve ``"pkg.module:func"`` or ``"pkg.module.func"`` (also ``module:Class.method``)."""
    module_name, sep, attr_path = path.partition(":")
    if not sep:
        module_name, _, attr_path = path.rpartition(".")
    if not module_name or not attr_path:
        raise ImportError(f"reward function path {path!r} must look like 'pkg.module:func' or 'pkg.module.func'")
    try:
        target: Any = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            target = getattr(target, attr)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"cannot import reward function {path!r}: {err}") from err
    if not callable(target):
        raise TypeError(f"reward function {path!r} resolved to a non-callable {type(target).__name__}")
    return target


class CallableReward(RewardComponent):
    """Calls the imported function on each batch and validates its output (one score per completion)."""

    def __init__(self, function: str, name: str | None = None) -> None:
        self.function_path = function
        self.function = import_function(function)
        self.name = name or getattr(self.function, "__name__", function.replace(":", "."))

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        scores = self.function(list(prompts), list(completions), **columns)
        if not isinstance(scores, (torch.Tensor, list, tuple)) and hasattr(scores, "tolist"):
            scores = scores.tolist()  # numpy arrays and the like
        return as_score_tensor(self.name, scores, len(completions))
