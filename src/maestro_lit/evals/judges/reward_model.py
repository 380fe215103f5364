"""Reward-model judge: any HF sequence-classification reward model scores (prompt, answer).

Why: a strong open reward model (e.g. Skywork-Reward) is the closest offline stand-in for
an LLM judge. Grades are raw reward-model scores (not 1-10), so metrics carry the ``rm`` tag.
Pairwise: the higher-scored answer wins; a gap within ``tie_margin`` is a tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

from maestro_lit.evals.aggregate import outcome_from_scores
from maestro_lit.evals.judges.base import GradeRequest, Judge, JudgePrompt, PairRequest

_SCORERS: dict[tuple, Any] = {}


def shared_scorer(name_or_path: str, batch_size: int, max_length: int):
    """One scorer per (model, settings) for all benchmarks: a 3B judge should load once, not once per benchmark."""
    key = (name_or_path, batch_size, max_length)
    if key not in _SCORERS:
        from maestro_lit.text.seqcls import SequenceClassifierScorer

        _SCORERS[key] = SequenceClassifierScorer(name_or_path, batch_size=batch_size, max_length=max_length)
    return _SCORERS[key]


class RewardModelJudge(Judge):
    tag = "rm"

    def __init__(self, name_or_path: str, batch_size: int = 8, max_length: int = 1024, tie_margin: float = 0.0) -> None:
        self.scorer = shared_scorer(name_or_path, batch_size, max_length)
        self.tie_margin = tie_margin

    def to(self, device: Any) -> RewardModelJudge:
        self.scorer.to(device)
        return self

    @staticmethod
    def _clean(values) -> list[Optional[float]]:
        return [None if math.isnan(float(v)) else float(v) for v in values]

    def grade(self, requests: Sequence[GradeRequest], prompt: JudgePrompt | None = None) -> list[Optional[float]]:
        if not requests:
            return []
        return self._clean(self.scorer.score([r.prompt for r in requests], [r.answer for r in requests]))

    def compare(self, requests: Sequence[PairRequest], prompt: JudgePrompt | None = None) -> list[Optional[float]]:
        if not requests:
            return []
        n = len(requests)
        scores = self._clean(
            self.scorer.score(
                [r.prompt for r in requests] * 2, [r.answer for r in requests] + [r.baseline for r in requests]
            )
        )
        return [
            None
            if scores[i] is None or scores[n + i] is None
            else outcome_from_scores(scores[i], scores[n + i], self.tie_margin)
            for i in range(n)
        ]
