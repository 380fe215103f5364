"""``len``: length penalties measured in completion tokens (``completion_ids``), two documented forms.

The paper's exact form is in its unavailable Appendix B (docs/paper.md#rewards), so both readings are here:

- ``NoverEfficiency`` — NOVER's efficiency reward: among the group's valid responses, the share
  of the *other* valid responses that are both longer and of higher perplexity (a short response
  that also reasons better than long ones scores high). It reads the raw ``ppl`` scores
  computed earlier in the same step (``needs_scores_of``), so ``ppl`` must be listed before it;
  the ppl forward is never repeated. Invalid responses (ppl NaN) and groups with a single
  valid response score 0.
- ``TokenBudget`` — a linear penalty above a token budget: 1 up to ``budget`` tokens, falling
  linearly to 0 at ``budget + falloff`` tokens (``falloff`` defaults to ``budget``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import Normalization, RewardComponent


def token_lengths(completion_ids: Sequence[Sequence[int]]) -> torch.Tensor:
    return torch.tensor([len(ids) for ids in completion_ids], dtype=torch.float32)


def efficiency_within_groups(lengths: torch.Tensor, ppl_scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """Share of other valid responses in the group that are longer and have higher ppl.

    ``ppl_scores`` follow the project's "higher is better" sign (−log ppl), so "higher ppl"
    is a *lower* score; NaN marks an invalid response.
    """
    if lengths.shape != ppl_scores.shape or lengths.numel() % group_size:
        raise ValueError(
            f"lengths {tuple(lengths.shape)} and ppl scores {tuple(ppl_scores.shape)} "
            f"must be [N] with N divisible by {group_size}"
        )
    length = lengths.float().reshape(-1, group_size)
    score = ppl_scores.float().reshape(-1, group_size)
    valid = torch.isfinite(score)
    longer = length.unsqueeze(1) > length.unsqueeze(2)  # [B, i, j]: j longer than i
    worse = score.unsqueeze(1) < score.unsqueeze(2)  # j has higher ppl than i
    both_valid = valid.unsqueeze(1) & valid.unsqueeze(2)
    dominated = (longer & worse & both_valid).sum(-1).float()
    others = (valid.sum(-1, keepdim=True) - 1).clamp(min=1).float()
    return torch.where(valid, dominated / others, torch.zeros_like(dominated)).reshape(-1)


class NoverEfficiency(RewardComponent):
    """NOVER's efficiency reward from token lengths and the ``ppl`` component's raw scores."""

    needs_group = True

    def __init__(self, ppl_component: str = "ppl", normalization: Normalization = "zscore", name: str = "len") -> None:
        self.ppl_component, self.normalization, self.name = ppl_component, normalization, name
        self.needs_scores_of = (ppl_component,)

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        completion_ids: Sequence[Sequence[int]],
        group_size: int,
        earlier_scores: Mapping[str, torch.Tensor],
        **kwargs: Any,
    ) -> torch.Tensor:
        return efficiency_within_groups(
            token_lengths(completion_ids), earlier_scores[self.ppl_component].float().cpu(), group_size
        )


class TokenBudget(RewardComponent):
    """1 within ``budget`` completion tokens, linearly down to 0 at ``budget + falloff``."""

    def __init__(
        self, budget: int = 512, falloff: int | None = None, normalization: Normalization = "zscore", name: str = "len"
    ) -> None:
        if budget < 0:
            raise ValueError(f"TokenBudget.budget must be >= 0, got {budget}")
        falloff = budget if falloff is None else falloff
        if falloff <= 0:
            raise ValueError(f"TokenBudget.falloff must be positive, got {falloff}")
        self.budget, self.falloff, self.normalization, self.name = budget, falloff, normalization, name

    def __call__(
        self, prompts: Sequence[str], completions: Sequence[str], completion_ids: Sequence[Sequence[int]], **kwargs: Any
    ) -> torch.Tensor:
        excess = (token_lengths(completion_ids) - self.budget).clamp(min=0)
        return (1.0 - excess / self.falloff).clamp(min=0.0)
