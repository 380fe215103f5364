"""Conciseness: reward completions whose word count falls inside a target band."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import Normalization, RewardComponent


class LengthBand(RewardComponent):
    """1 inside ``[min_words, max_words]``, falling linearly to 0 at ``falloff`` words outside.

    A band (rather than "shorter is better") keeps the policy from collapsing to empty
    answers, which a plain length penalty rewards.
    """

    def __init__(
        self,
        min_words: int = 5,
        max_words: int = 20,
        falloff: int = 20,
        name: str = "length",
        normalization: Normalization = "zscore",
    ) -> None:
        if not 0 <= min_words <= max_words:
            raise ValueError(f"LengthBand needs 0 <= min_words <= max_words, got {min_words}, {max_words}")
        if falloff <= 0:
            raise ValueError(f"LengthBand.falloff must be positive, got {falloff}")
        self.min_words, self.max_words, self.falloff, self.name = min_words, max_words, falloff, name
        self.normalization = normalization

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        words = torch.tensor([len(c.split()) for c in completions], dtype=torch.float32)
        distance = (self.min_words - words).clamp(min=0) + (words - self.max_words).clamp(min=0)
        return (1.0 - distance / self.falloff).clamp(min=0.0)
