"""Offline proxy judge: sentence-embedding similarity, named ``proxy`` in every metric.

Why it exists: the official judges are GPT-4-class models we cannot call offline. This gives
a cheap, deterministic signal that moves with answer quality on everyday prompts, and the
``proxy`` tag keeps anyone from reading it as the official number.

- grade: ``1 + 9 * max(0, cos(answer, reference))`` -- similarity to the reference answer
  when the benchmark has one, else to the prompt (which then carries any criteria); 1-10 so
  it reads on the MT-Bench scale.
- compare: both answers are scored against the prompt; the closer one wins, and a gap
  within ``tie_margin`` is a tie.

The seven tasks' stand-in is ``votes.ProxyVoteJudge``: lexical votes against a reference, which
every task item has. Both carry the ``PROXY`` tag because the tag says "offline stand-in, not the
official judge"; they never meet on one metric, as this one scores the suite's grades and win
rates and that one the tasks' preference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from maestro_lit.evals.aggregate import outcome_from_scores
from maestro_lit.evals.judges.base import PROXY, GradeRequest, Judge, JudgePrompt, PairRequest

_ENCODERS: dict[Optional[str], Any] = {}


def shared_encoder(name_or_path: Optional[str] = None):
    """One ``SentenceEncoder`` per model for all benchmarks, so the weights load once."""
    if name_or_path not in _ENCODERS:
        from maestro_lit.text.encoder import SentenceEncoder

        _ENCODERS[name_or_path] = SentenceEncoder(name_or_path)
    return _ENCODERS[name_or_path]


class ProxyJudge(Judge):
    tag = PROXY

    def __init__(self, encoder: Optional[str] = None, tie_margin: float = 0.02) -> None:
        self.encoder_name, self.tie_margin = encoder, tie_margin
        self._encoder = None
        self._device: Any = None

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = shared_encoder(self.encoder_name)
            if self._device is not None:
                self._encoder.to(self._device)
        return self._encoder

    def to(self, device: Any) -> ProxyJudge:
        self._device = device
        if self._encoder is not None:
            self._encoder.to(device)
        return self

    def grade(self, requests: Sequence[GradeRequest], prompt: JudgePrompt | None = None) -> list[Optional[float]]:
        if not requests:
            return []
        anchors = [r.reference if r.reference else r.prompt for r in requests]
        sims = self.encoder.cosine([r.answer for r in requests], anchors)
        return [1.0 + 9.0 * max(0.0, float(s)) for s in sims]

    def compare(self, requests: Sequence[PairRequest], prompt: JudgePrompt | None = None) -> list[Optional[float]]:
        if not requests:
            return []
        n = len(requests)
        texts = [r.answer for r in requests] + [r.baseline for r in requests]
        sims = self.encoder.cosine(texts, [r.prompt for r in requests] * 2)
        return [outcome_from_scores(float(sims[i]), float(sims[n + i]), self.tie_margin) for i in range(n)]
