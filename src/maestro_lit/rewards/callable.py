"""Bring-your-own reward: wrap a TRL reward function given by import path.

The function is called exactly as TRL's ``GRPOTrainer`` calls it, by keyword:
``f(prompts=..., completions=..., completion_ids=..., <dataset columns>=..., trainer_state=...)``,
so TRL's documented shapes (``def f(completions, **kwargs)``, ``def f(completion_ids, **kwargs)``,
``def f(prompts, completions, ground_truth, **kwargs)``, ``async def f(...)``) plug in unchanged
through YAML (``function: my_pkg.rewards:format_reward``). With conversational data (``prompt`` as a list of
messages) ``prompts`` and ``completions`` come in TRL's conversational shape, each completion
``[{"role": "assistant", "content": …}]``, so a function reading ``completion[0]["content"]`` runs unchanged
(``takes_messages``). ``None`` means "not applicable" and
becomes NaN, which the trainer masks. Async functions are awaited; several async ones are
gathered concurrently by ``base.score_components``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import torch

from maestro_lit.rewards.base import RewardComponent, as_score_tensor, run_coroutine


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
    """Calls the imported function by keyword and validates its output (one score per completion).

    Only TRL's keywords reach the function (none of the project's extras such as log-probs),
    so a function written for TRL sees exactly what TRL would give it.
    """

    takes_messages = True  # TRL's conversational shape for conversational data

    def __init__(self, function: str, name: str | None = None) -> None:
        self.function_path = function
        self.function = import_function(function)
        self.name = name or getattr(self.function, "__name__", function.replace(":", "."))
        self.is_async = inspect.iscoroutinefunction(self.function)

    def _validate(self, scores: Any, completions: list[Any]) -> torch.Tensor:
        if not isinstance(scores, (torch.Tensor, list, tuple)) and hasattr(scores, "tolist"):
            scores = scores.tolist()  # numpy arrays and the like
        return as_score_tensor(self.name, scores, len(completions))

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> torch.Tensor:
        scores = self.function(prompts=list(prompts), completions=list(completions), **kwargs)
        if asyncio.iscoroutine(scores):
            scores = run_coroutine(scores)
        return self._validate(scores, completions)

    async def acall(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> torch.Tensor:
        scores = self.function(prompts=list(prompts), completions=list(completions), **kwargs)
        if inspect.isawaitable(scores):
            scores = await scores
        return self._validate(scores, completions)
