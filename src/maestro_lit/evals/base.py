"""The Benchmark contract: load items, generate with the policy, score, return metrics.

Why one base class: the callback only needs ``evaluate(generate, max_new_tokens)``; each
adapter only writes ``parse`` (published format -> items) and ``score`` (items -> metrics).
Generation goes through a ``generate(conversations, max_new_tokens) -> list[str]`` callable
(the LightningModule's ``generate_chat``), so tests pass a fake and every benchmark
generates all its items in one batch per turn.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from maestro_lit.evals.io import Record, load_hub, read_records, sample_path
from maestro_lit.evals.judges.base import Tagged

Message = dict[str, str]
GenerateFn = Callable[[list[list[Message]], int], list[str]]


@dataclass
class BenchmarkResult:
    """Metrics of one run plus bookkeeping; ``failed`` counts unparseable answers/judge replies."""

    name: str
    metrics: dict[str, float]
    failed: int
    n_items: int
    seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)


def user(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def run_generate(generate: GenerateFn, conversations: list[list[Message]], max_new_tokens: int) -> list[str]:
    """Call ``generate`` once for all conversations and check it answered each one."""
    if not conversations:
        return []
    outputs = list(generate(conversations, max_new_tokens))
    if len(outputs) != len(conversations):
        raise RuntimeError(f"generate returned {len(outputs)} answers for {len(conversations)} conversations")
    return [o if isinstance(o, str) else str(o) for o in outputs]


class Benchmark(ABC):
    """Base adapter. Subclasses set ``default_name``, ``sample`` and implement parse/score.

    Args:
        path: a file in the benchmark's published format; default the shipped sample.
        hub_id: a Hugging Face dataset id, used instead of ``path`` (needs network).
        hub_config / hub_split: dataset config and split for ``hub_id``.
        limit: evaluate only the first ``limit`` items.
        enabled: switch the benchmark off in YAML without deleting its block.
        max_new_tokens: per-benchmark override of the callback's generation budget.
        name: metric namespace, ``bench/<name>/<metric>``.
    """

    default_name: ClassVar[str] = "benchmark"
    sample: ClassVar[tuple[str, ...]] = ()
    hub_default_split: ClassVar[str] = "test"

    def __init__(
        self,
        path: str | None = None,
        hub_id: str | None = None,
        hub_config: str | None = None,
        hub_split: str | None = None,
        limit: int | None = None,
        enabled: bool = True,
        max_new_tokens: int | None = None,
        name: str | None = None,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {limit}")
        self.path = path
        self.hub_id, self.hub_config, self.hub_split = hub_id, hub_config, hub_split
        self.limit, self.enabled, self.max_new_tokens = limit, enabled, max_new_tokens
        self.name = name or self.default_name
        self._items: list[Any] | None = None

    # -- loading -----------------------------------------------------------------------
    def resolved_path(self) -> Path:
        return Path(self.path) if self.path else sample_path(*self.sample)

    def read(self) -> list[Record]:
        """Raw records from the hub id or the file; subclasses with two files override."""
        if self.hub_id:
            return load_hub(self.hub_id, self.hub_config, self.hub_split or self.hub_default_split)
        return read_records(self.resolved_path())

    @abstractmethod
    def parse(self, records: list[Record]) -> list[Any]:
        """Validate records and turn them into items; fail with the record's ``where``."""

    def items(self) -> list[Any]:
        if self._items is None:
            self._items = self.parse(self.read())
        return self._items if self.limit is None else self._items[: self.limit]

    def check(self) -> None:
        """Check the configuration of every judge this benchmark holds (``Tagged.check``); ``ValueError`` names it."""
        for value in vars(self).values():
            if isinstance(value, Tagged):
                value.check()

    # -- scoring -----------------------------------------------------------------------
    @abstractmethod
    def score(
        self, items: Sequence[Any], generate: GenerateFn, max_new_tokens: int
    ) -> tuple[dict[str, float], int, list[dict[str, Any]]]:
        """Generate and score: (metrics, number of failed items, per-item records)."""

    def to(self, device: Any) -> Benchmark:
        """Move model-backed scorers (judges, encoders) next to the policy."""
        for value in vars(self).values():
            if hasattr(value, "to") and not isinstance(value, (str, Path)) and value is not self:
                value.to(device)
        return self

    def evaluate(self, generate: GenerateFn, max_new_tokens: int = 64) -> BenchmarkResult:
        start = time.perf_counter()
        items = self.items()
        metrics, failed, records = self.score(items, generate, self.max_new_tokens or max_new_tokens)
        metrics = {**metrics, "failed": float(failed), "n_items": float(len(items))}
        return BenchmarkResult(self.name, metrics, failed, len(items), time.perf_counter() - start, records)
