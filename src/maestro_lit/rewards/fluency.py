"""Fluency: mean per-token log-prob of the completion under the frozen reference model.

No model of its own: the trainer's scoring pass already computed reference log-probs
(adapters disabled), and passes them to any component with
``needs_reference_logprobs = True``. Re-running a language model here would double the
most expensive forward of the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import RewardComponent


class Fluency(RewardComponent):
    """Masked mean of ``ref_logprobs`` per completion; NaN for an empty completion (≤ 0 otherwise)."""

    needs_reference_logprobs = True

    def __init__(self, name: str = "fluency") -> None:
        self.name = name

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        ref_logprobs: torch.Tensor | None = None,
        completion_mask: torch.Tensor | None = None,
        **columns: Any,
    ) -> torch.Tensor:
        if ref_logprobs is None or completion_mask is None:
            raise ValueError(
                f"reward component '{self.name}' needs the trainer's ref_logprobs and completion_mask columns "
                "(needs_reference_logprobs=True)"
            )
        if ref_logprobs.shape != completion_mask.shape or ref_logprobs.shape[0] != len(completions):
            raise ValueError(
                f"reward component '{self.name}': ref_logprobs {tuple(ref_logprobs.shape)} "
                f"and completion_mask {tuple(completion_mask.shape)} must both be [{len(completions)}, T]"
            )
        mask = completion_mask.detach() > 0
        # where(), not a product: padded positions may hold -inf/NaN, and NaN * 0 is NaN.
        total = torch.where(mask, ref_logprobs.detach().float(), 0.0).sum(-1)
        count = mask.sum(-1)
        return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan"))).cpu()
