"""A small trusted signal for the testbed: the true utility, revealed on a fixed share of prompts.

It stands in for what a practitioner may have — human labels or a strong judge on a few
prompts — and feeds ``TrustedConductor``'s meta-reward. The share is chosen by a hash of the
prompt text, so the same prompts are labelled in every run and seed.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from maestro_lab.testbed.truth import TrueUtility
from maestro_lit.rewards.base import RewardComponent


def is_labelled(prompt: str, share: float) -> bool:
    return zlib.crc32(prompt.encode("utf-8")) % 10_000 < share * 10_000


class TrustedUtility(RewardComponent):
    """True utility on ``share`` of the prompts, NaN (no label) elsewhere."""

    def __init__(self, weights_path: str | None = None, share: float = 0.25, name: str = "trusted") -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"TrustedUtility.share must be in (0, 1], got {share}")
        self.truth = TrueUtility(Path(weights_path) if weights_path else None)
        self.share, self.name = share, name
        self.scored_fraction = share  # unlabelled prompts are missing by design, not a fault to warn about

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        labelled = torch.tensor([is_labelled(p, self.share) for p in prompts])
        scores = torch.full((len(prompts),), float("nan"))
        if labelled.any():
            rows = labelled.nonzero().flatten().tolist()
            subset = {k: [v[i] for i in rows] for k, v in columns.items() if isinstance(v, list)}
            scores[labelled] = self.truth([prompts[i] for i in rows], [completions[i] for i in rows], subset)
        return scores
