"""EQ-Bench v2: predict the intensity (0-10) of four emotions in a dialogue; no judge.

Published format (``eq_bench_v2_questions_171.json``): a JSON object keyed by question id,
each ``{"prompt", "reference_answer_fullscale": {"emotion1": "Angry", "emotion1_score": 7,
... "emotion4_score": 0}}`` (``reference_answer`` is the v1 key, used when the v2 one is absent).

Scoring, the published v2 ("fullscale") formula: for each of the four emotions the absolute
difference d between the model's number and the reference is scaled -- 0 if d == 0,
``6.5 / (1 + e^(-1.2 (d - 4)))`` if d <= 5, else d -- and the item scores
``10 - 0.7477 * sum(scaled)`` (0.7477 makes random answers score about zero). The benchmark
score is the mean item score times 10. An answer that does not name exactly the four reference
emotions with numbers is a failed item. When the answer has a "Revised scores:" section (the
v2 prompt's critique-and-revise format) those numbers are used, else the first ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from maestro_lit.evals.aggregate import mean_or_nan
from maestro_lit.evals.base import Benchmark, GenerateFn, run_generate, user
from maestro_lit.evals.io import BenchmarkDataError, Record, field, read_json

_LINE = re.compile(r"^[\s*\-#]*([A-Za-z][A-Za-z' \-]*?)\s*\**\s*:\s*\**\s*(\d+(?:\.\d+)?)", re.MULTILINE)
ADJUST = 0.7477


@dataclass
class EQItem:
    question_id: str
    prompt: str
    reference: dict[str, float]  # lower-cased emotion -> reference intensity


def scaled_difference(d: float) -> float:
    if d == 0:
        return 0.0
    if d <= 5:
        return 6.5 * (1.0 / (1.0 + math.e ** (-1.2 * (d - 4))))
    return d


def fullscale_score(reference: dict[str, float], answer: dict[str, float]) -> Optional[float]:
    """The v2 item score; ``None`` unless ``answer`` names exactly the reference emotions."""
    if len(answer) != len(reference) or set(answer) != set(reference):
        return None
    tally = sum(scaled_difference(abs(answer[e] - reference[e])) for e in reference)
    return 10.0 - tally * ADJUST


def parse_answer(text: str) -> dict[str, float]:
    """``{"angry": 7.0, ...}`` from "Emotion: number" lines (revised section when present)."""
    lower = text.lower()
    if "revised scores:" in lower:
        text = text[lower.rindex("revised scores:") + len("revised scores:") :]
    elif "critique:" in lower:
        text = text[: lower.index("critique:")]
    found: dict[str, float] = {}
    for name, value in _LINE.findall(text):
        key = name.strip().lower()
        if key in ("first pass scores", "revised scores", "critique"):
            continue
        found[key] = float(value)
    return found


class EQBench(Benchmark):
    default_name = "eq_bench"
    sample = ("eq_bench", "eq_bench_v2_questions.json")

    def read(self) -> list[Record]:
        if self.hub_id:
            return super().read()
        path = self.resolved_path()
        data = read_json(path)
        if not isinstance(data, dict):
            raise BenchmarkDataError(f"{path}: expected a JSON object keyed by question id, got {type(data).__name__}")
        return [
            (f"{path}[{key!r}]", {"question_id": key, **row} if isinstance(row, dict) else {"question_id": key})
            for key, row in data.items()
        ]

    def parse(self, records: list[Record]) -> list[EQItem]:
        items = []
        for where, row in records:
            prompt = field(row, "prompt", where)
            key = "reference_answer_fullscale" if "reference_answer_fullscale" in row else "reference_answer"
            ref = field(row, key, where, dict)
            reference: dict[str, float] = {}
            for i in range(1, 5):
                name = ref.get(f"emotion{i}")
                value = ref.get(f"emotion{i}_score")
                if not isinstance(name, str):
                    raise BenchmarkDataError(f"{where}: missing field '{key}.emotion{i}'")
                if not isinstance(value, (int, float, str)) or not str(value).replace(".", "", 1).isdigit():
                    raise BenchmarkDataError(f"{where}: missing field '{key}.emotion{i}_score'")
                reference[name.strip().lower()] = float(value)
            items.append(EQItem(str(row.get("question_id", len(items))), prompt, reference))
        return items

    def score(self, items: Sequence[EQItem], generate: GenerateFn, max_new_tokens: int):
        answers = run_generate(generate, [user(it.prompt) for it in items], max_new_tokens)
        scores = [fullscale_score(it.reference, parse_answer(a)) for it, a in zip(items, answers)]
        failed = sum(1 for s in scores if s is None)
        metrics = {"score": 10.0 * mean_or_nan(scores), "parsed_fraction": 1.0 - failed / max(1, len(items))}
        records = [
            {"question_id": it.question_id, "answer": a, "item_score": s} for it, a, s in zip(items, answers, scores)
        ]
        return metrics, failed, records
