"""A learned reward model (any HF sequence classifier) as one reward component.

Thin adapter over :class:`maestro_lit.text.seqcls.SequenceClassifierScorer`, which the
reward-model benchmark judge shares, so training and evaluation read the model identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import RewardComponent
from maestro_lit.text.seqcls import SequenceClassifierScorer


class RewardModel(RewardComponent):
    """Score = reward model logit for (prompt, completion) rendered with its chat template."""

    def __init__(
        self,
        model: str,
        batch_size: int = 8,
        max_length: int = 1024,
        torch_dtype: str = "auto",
        trust_remote_code: bool = False,
        name: str = "reward_model",
    ) -> None:
        self.scorer = SequenceClassifierScorer(
            model, batch_size=batch_size, max_length=max_length, torch_dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
        self.name = name

    def to(self, device: str | torch.device) -> RewardModel:
        self.scorer.to(device)
        return self

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        return self.scorer.score(list(prompts), list(completions))
