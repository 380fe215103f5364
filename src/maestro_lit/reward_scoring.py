"""Reward scoring (docs/design.md §1 step 3): every component scores every completion → R ∈ ℝ^{N×K}.

A component that raises either stops the run (``on_reward_error="raise"``, the default: a
broken reward should not train silently) or scores the whole step as missing (``"skip"``:
NaN, masked out of the scalar reward and counted in ``train/reward_nan/<name>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import RewardComponent, RewardError, as_score_tensor
from maestro_lit.settings import OnRewardError


def call_component(
    component: RewardComponent, prompts: list[str], completions: list[str], columns: dict[str, list], extra: dict[str, Any]
) -> Any:
    """The one place that knows the component call convention: ``component(prompts, completions, **columns)``,
    plus ``ref_logprobs``/``completion_mask`` for components that declare they need them."""
    kwargs = dict(columns)
    if getattr(component, "requires_reference_logprobs", False):
        kwargs.update(extra)
    return component(prompts, completions, **kwargs)


class RewardScorer:
    """Holds the reward components; ``score`` returns the N×K matrix with NaN for missing scores."""

    def __init__(self, components: Sequence[RewardComponent], on_reward_error: OnRewardError = "raise") -> None:
        self.components = list(components)
        names = self.names
        if len(set(names)) != len(names):
            raise ValueError(f"reward component names must be unique, got {names}")
        if on_reward_error not in ("raise", "skip"):
            raise ValueError(f"model.on_reward_error must be 'raise' or 'skip', got {on_reward_error!r}")
        self.on_reward_error = on_reward_error

    @property
    def names(self) -> list[str]:
        return [component.name for component in self.components]

    @property
    def needs_reference(self) -> bool:
        """Whether any component reads the reference model's log-probs."""
        return any(getattr(c, "requires_reference_logprobs", False) for c in self.components)

    def to(self, device: torch.device) -> None:
        """Move model-based components (reward models, encoders) next to the policy."""
        for component in self.components:
            if hasattr(component, "to"):
                component.to(device)

    def score(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        columns: dict[str, list],
        extra: dict[str, Any] | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """R [N, K] on ``device``; ``extra`` holds per-step tensors (``ref_logprobs``, ``completion_mask``)."""
        scores = []
        for component in self.components:
            try:
                output = call_component(component, list(prompts), list(completions), columns, extra or {})
            except Exception as err:
                if self.on_reward_error == "raise":
                    raise RewardError(f"reward component '{component.name}' raised {type(err).__name__}: {err}") from err
                output = [None] * len(completions)  # skipped: missing for this step, logged as NaN
            scores.append(as_score_tensor(component.name, output, len(completions)))
        raw = torch.stack(scores, dim=-1).to(device)
        return raw.masked_fill(~torch.isfinite(raw), float("nan"))

    __call__ = score
