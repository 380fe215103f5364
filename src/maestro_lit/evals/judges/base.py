"""The judge contract shared by the pairwise and single-grade benchmarks.

Why requests carry both ``prompt`` and ``fields``: model-based judges (reward model, embedding
proxy) read a flat (prompt, answer) pair, while an LLM judge fills the benchmark's published
prompt template, which for MT-Bench turn 2 shows the whole conversation. Each adapter builds
both once and any judge picks what it needs. Judges return ``None`` for a failed item.

The paper's seven tasks judge by votes instead (``votes.VoteJudge``); both kinds share
``Tagged``, so a metric name says which kind of judge produced it the same way everywhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

ParseKind = Literal["score", "verdict"]
Messages = list[dict[str, str]]  # an OpenAI-style chat: [{"role": ..., "content": ...}, ...]
PROXY = "proxy"  # the tag of every offline stand-in, so no one reads its number as the official judge's


@dataclass(frozen=True)
class JudgePrompt:
    """A published judge prompt: system text, a ``str.format`` user template, reply parser."""

    name: str
    system: str
    user: str
    parse: ParseKind


@dataclass
class GradeRequest:
    """Grade one answer. ``reference`` is a gold answer when the benchmark has one."""

    prompt: str
    answer: str
    reference: Optional[str] = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class PairRequest:
    """Compare the model's ``answer`` with ``baseline``; ``model_first`` puts it in slot A."""

    prompt: str
    answer: str
    baseline: str
    model_first: bool = True
    fields: dict[str, str] = field(default_factory=dict)


class Tagged:
    """What every judge shares: a metric tag and a device move.

    ``tag`` is appended to metric names and says what kind of judge scored them: ``""`` an LLM
    judge, ``PROXY`` an offline stand-in (embedding or lexical; the metric's base name says which
    benchmark family), ``"rm"`` a reward model. ``evals.compare`` marks ``*_proxy`` numbers by it.
    """

    tag: str = ""

    def metric(self, base: str) -> str:
        """``base`` with this judge's tag, e.g. ``win_rate_proxy``."""
        return f"{base}_{self.tag}" if self.tag else base

    def to(self, device: Any) -> Tagged:
        return self

    def check(self) -> None:
        """Raise ``ValueError`` naming the setting when this judge cannot work (a missing key, URL or
        model path); the evaluation callbacks call it at setup, so the run stops before training."""


class Judge(Tagged, ABC):
    """Scores answers one by one (a grade) or against a baseline (a pairwise outcome)."""

    @abstractmethod
    def grade(self, requests: Sequence[GradeRequest], prompt: JudgePrompt) -> list[Optional[float]]:
        """One score per request (LLM judge: the 1-10 grade), ``None`` where it failed."""

    @abstractmethod
    def compare(self, requests: Sequence[PairRequest], prompt: JudgePrompt) -> list[Optional[float]]:
        """Model-side outcome per request: 1 win, 0.5 tie, 0 loss, ``None`` failed."""
