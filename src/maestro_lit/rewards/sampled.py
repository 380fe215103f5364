"""A trusted signal on a share of the prompts: any component (a reward model, a judge behind a reward function)
scores a fixed fraction of the groups, the rest get NaN.

Why: the trusted Conductor (``conductor.trusted``) learns which trade-off a prompt needs from agreement with a
trusted component on the groups that have it; an expensive judge does not need to score every completion for
that. ``SampledReward`` picks whole groups (all G completions of a prompt, so their advantages can be compared)
and keeps the labelled share at ``fraction`` over the run: each step labels round(fraction × groups seen) minus
those already labelled, chosen at random (own seeded generator, so a run's other draws are unchanged). Only the
chosen rows reach the inner component, so its cost is that share: ``train/reward_nan/<name>`` logs the unscored
rows per step, ``train/reward_cost/<name>/scored_rows`` and ``…/calls`` the running totals of what was paid for. The
generator and the counts are checkpointed, so a resumed run labels the groups an uninterrupted run would.

Use as ``trusted_component`` of ``configs/methods/trusted.yaml`` (``configs/rewards/paper_judged.yaml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import Normalization, RewardComponent, as_score_tensor


def _subset(value: Any, rows: torch.Tensor, n: int) -> Any:
    """The chosen rows of one per-completion keyword; other values (tokenizer, callables, G) pass unchanged."""
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value[rows.to(value.device)]
    if isinstance(value, list) and len(value) == n:
        return [value[i] for i in rows.tolist()]
    if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
        return {k: _subset(v, rows, n) for k, v in value.items()}
    return value


class SampledReward(RewardComponent):
    """``inner`` scores ``fraction`` of the groups (whole groups), NaN elsewhere; see the module docstring."""

    needs_group = True

    def __init__(
        self,
        inner: RewardComponent,
        fraction: float,
        seed: int = 0,
        normalization: Normalization = "zscore",
        name: str = "trusted",
    ) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"SampledReward.fraction must be in (0, 1], got {fraction}")
        self.inner, self.fraction, self.normalization, self.name = inner, fraction, normalization, name
        self.scored_fraction = fraction * getattr(inner, "scored_fraction", 1.0)
        for flag in ("needs_reference_logprobs", "needs_logprobs", "needs_token_entropy", "needs_policy"):
            setattr(self, flag, getattr(inner, flag))
        self.needs_scores_of, self.is_async = inner.needs_scores_of, inner.is_async
        self.generator = torch.Generator().manual_seed(seed)
        self.groups_seen = self.groups_labelled = self.scored_rows = self.calls = 0

    def to(self, device: torch.device) -> None:
        if hasattr(self.inner, "to"):
            self.inner.to(device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "counts": [self.groups_seen, self.groups_labelled, self.scored_rows, self.calls],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.groups_seen, self.groups_labelled, self.scored_rows, self.calls = (int(v) for v in state["counts"])

    def cost(self) -> dict[str, float]:
        return {"scored_rows": float(self.scored_rows), "calls": float(self.calls)}

    def choose_rows(self, n: int, group_size: int) -> torch.Tensor:
        """Row indices of the groups labelled this step (sorted)."""
        if n % group_size:
            raise ValueError(f"SampledReward '{self.name}': {n} completions do not split into groups of {group_size}")
        groups = n // group_size
        self.groups_seen += groups
        k = min(groups, max(0, round(self.fraction * self.groups_seen) - self.groups_labelled))
        self.groups_labelled += k
        chosen = torch.randperm(groups, generator=self.generator)[:k].sort().values
        return (chosen.unsqueeze(1) * group_size + torch.arange(group_size)).reshape(-1)

    def _inner_kwargs(self, kwargs: dict[str, Any], rows: torch.Tensor, n: int) -> dict[str, Any]:
        sub = {key: _subset(value, rows, n) for key, value in kwargs.items() if key != "group_size"}
        if self.inner.needs_group:
            sub["group_size"] = kwargs["group_size"]
        return sub

    def _place(self, scores: Any, rows: torch.Tensor, n: int) -> torch.Tensor:
        out = torch.full((n,), float("nan"))
        out[rows] = as_score_tensor(self.name, scores, rows.numel())
        self.scored_rows += rows.numel()
        self.calls += 1
        return out

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **kwargs: Any) -> torch.Tensor:
        n = len(completions)
        rows = self.choose_rows(n, int(kwargs["group_size"]))
        if rows.numel() == 0:
            return torch.full((n,), float("nan"))
        sub = self._inner_kwargs({"prompts": list(prompts), "completions": list(completions), **kwargs}, rows, n)
        return self._place(self.inner(**sub), rows, n)

    async def acall(self, **kwargs: Any) -> torch.Tensor:
        n = len(kwargs["completions"])
        rows = self.choose_rows(n, int(kwargs["group_size"]))
        if rows.numel() == 0:
            return torch.full((n,), float("nan"))
        return self._place(await self.inner.acall(**self._inner_kwargs(kwargs, rows, n)), rows, n)
