"""The reward-component contract (DESIGN §3).

A component is a callable ``f(prompts, completions, **columns) -> Tensor[N]`` with a
``name``; that is TRL's reward-function shape, so users can bring theirs (wrapped by
``CallableReward``). Components subclass ``RewardComponent`` so YAML can pick them by
``class_path``. They may return NaN for "no score"; the trainer masks NaN per component.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class RewardComponent:
    """Base class of reward components; plain Python (not nn.Module) so no reward model
    weights end up in the optimisers or the checkpoint."""

    name: str = "reward"

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        raise NotImplementedError


class RewardError(ValueError):
    """A component returned something that is not one finite-or-NaN float per completion."""


def as_score_tensor(component_name: str, scores: Any, expected: int) -> torch.Tensor:
    """Validate a component's output and return a float32 CPU tensor of shape [expected].

    ``None`` entries (TRL's "not applicable") become NaN, so they are masked downstream.
    """
    if isinstance(scores, torch.Tensor):
        values = scores.detach().to("cpu", torch.float32).flatten()
        if scores.dim() != 1:
            raise RewardError(
                f"reward component '{component_name}' returned a tensor of shape {tuple(scores.shape)}; expected ({expected},)"
            )
    elif isinstance(scores, (list, tuple)):
        try:
            values = torch.tensor([float("nan") if s is None else float(s) for s in scores], dtype=torch.float32)
        except (TypeError, ValueError) as err:
            raise RewardError(f"reward component '{component_name}' returned non-numeric scores: {list(scores)[:5]!r}") from err
    else:
        raise RewardError(f"reward component '{component_name}' returned {type(scores).__name__}; expected a Tensor or list of floats")
    if values.numel() != expected:
        raise RewardError(f"reward component '{component_name}' returned {values.numel()} scores for {expected} completions")
    return values
