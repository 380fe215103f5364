"""Redundancy: penalise repeated n-grams, the looping that RL-tuned policies drift into.

The reward is ``1 - repeated_ngram_rate`` so that higher is better like every other
component; its per-component mean in the training log therefore falls as redundancy rises,
which makes the paper's "less redundant generation" claim measurable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import RewardComponent
from maestro_lit.text.ngrams import repeated_ngram_rate


class Redundancy(RewardComponent):
    """``1 - (share of n-gram occurrences that repeat an earlier one)``; 1 for non-repeating text.

    Completions shorter than ``n`` words have no n-grams and score 1 (nothing repeated);
    pair this with ``LengthBand`` so that short answers are not favoured for free.
    """

    def __init__(self, n: int = 3, name: str = "redundancy") -> None:
        if n < 1:
            raise ValueError(f"Redundancy.n must be >= 1, got {n}")
        self.n, self.name = n, name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        return torch.tensor([1.0 - repeated_ngram_rate(c, self.n) for c in completions], dtype=torch.float32)
