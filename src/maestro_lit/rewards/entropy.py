"""``ent``: the policy's entropy on its own completion, read from the scoring forward (no extra forward).

Two estimates, as in EM-GRPO's code (Agarwal et al. 2025):

- ``SequenceEntropy``: −(mean log-prob of the sampled tokens), a one-sample estimate of the
  per-token entropy; needs the scoring pass's ``logprobs``;
- ``TokenEntropy``: the mean full-distribution entropy H(π(·|x, y<t)) over the completion's
  tokens; needs a ``token_entropy`` [N, T] tensor from the same forward.

The paper leaves the sign open (docs/paper.md#rewards): ``prefer="high"`` rewards high entropy
(exploration, our default reading of "balance exploration"); ``prefer="low"`` rewards low
entropy, which is EM-GRPO's reward. Rank-normalised within the group by default, as the paper
does. An empty completion scores NaN (missing).

``valid_format_only`` (off by default; the paper is silent) scores only well-formed
``<think>…</think><answer>…</answer>`` responses and leaves the rest missing (rank 0), as NOVER
does for ``ppl``: with ``prefer="high"`` an ungated entropy bonus pays any policy for writing
noise, which on the tiny model overtook every other reward within ~100 steps (docs/results.md, Quick start
on the tiny model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from maestro_lit.rewards.base import Normalization, RewardComponent
from maestro_lit.rewards.nover_format import ResponseFormat

Prefer = Literal["high", "low"]


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked positions per row; NaN for a row with none."""
    keep = mask.bool()
    total = torch.where(keep, values.detach().float(), 0.0).sum(-1)
    count = keep.sum(-1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan"))).cpu()


class _EntropyReward(RewardComponent):
    def __init__(
        self,
        prefer: Prefer = "high",
        normalization: Normalization = "rank",
        name: str = "ent",
        valid_format_only: bool = False,
        think_tag: str = "think",
        answer_tag: str = "answer",
    ) -> None:
        if prefer not in ("high", "low"):
            raise ValueError(f"{type(self).__name__}.prefer must be 'high' or 'low', got {prefer!r}")
        self.prefer, self.normalization, self.name = prefer, normalization, name
        self.format = ResponseFormat(think_tag, answer_tag) if valid_format_only else None

    def _signed(self, entropy: torch.Tensor, completions: Sequence[str]) -> torch.Tensor:
        signed = entropy if self.prefer == "high" else -entropy
        if self.format is None:
            return signed
        valid = torch.tensor([self.format.parse(c) is not None for c in completions], dtype=torch.bool)
        return torch.where(valid, signed, torch.full_like(signed, float("nan")))

    def _check(self, values: torch.Tensor, mask: torch.Tensor, n: int, what: str) -> None:
        if values.shape != mask.shape or values.shape[0] != n:
            raise ValueError(
                f"reward component '{self.name}': {what} {tuple(values.shape)} "
                f"and completion_mask {tuple(mask.shape)} must be [{n}, T]"
            )


class SequenceEntropy(_EntropyReward):
    """Sequence-level: entropy ≈ −mean log π(y_t) over the sampled tokens (``prefer="low"`` → mean log-prob)."""

    needs_logprobs = True

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        logprobs: torch.Tensor,
        completion_mask: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor:
        self._check(logprobs, completion_mask, len(completions), "logprobs")
        return self._signed(-masked_mean(logprobs, completion_mask), completions)


class TokenEntropy(_EntropyReward):
    """Token-level: mean full-distribution entropy over the completion (``prefer="low"`` → its negative)."""

    needs_token_entropy = True

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        token_entropy: torch.Tensor,
        completion_mask: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor:
        self._check(token_entropy, completion_mask, len(completions), "token_entropy")
        return self._signed(masked_mean(token_entropy, completion_mask), completions)
