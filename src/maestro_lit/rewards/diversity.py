"""Lexical diversity / creativity proxies: distinct-n within a completion, novelty w.r.t. the prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import RewardComponent
from maestro_lit.text.ngrams import distinct_n, novelty

__all__ = ["DistinctN", "Novelty", "distinct_n"]


class DistinctN(RewardComponent):
    """Mean of distinct-1..distinct-n: high for varied wording, low for loops and repetition."""

    def __init__(self, n: int = 2, name: str = "diversity") -> None:
        if n < 1:
            raise ValueError(f"DistinctN.n must be >= 1, got {n}")
        self.n, self.name = n, name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        scores = [sum(distinct_n(c, k) for k in range(1, self.n + 1)) / self.n for c in completions]
        return torch.tensor(scores, dtype=torch.float32)


class Novelty(RewardComponent):
    """Share of the completion's distinct n-grams absent from its prompt.

    Rewards answers that add content instead of echoing the question back; distinct-n alone
    cannot see that, because a restated prompt can be perfectly non-repetitive. NaN for
    completions shorter than ``n`` words.
    """

    def __init__(self, n: int = 2, name: str = "novelty") -> None:
        if n < 1:
            raise ValueError(f"Novelty.n must be >= 1, got {n}")
        self.n, self.name = n, name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        return torch.tensor([novelty(c, p, self.n) for p, c in zip(prompts, completions)], dtype=torch.float32)
