"""Creative writing, WritingBench-style: per-criterion judge scores plus n-gram diversity.

Published format (WritingBench ``benchmark_all.jsonl``): ``{"index", "domain1", "domain2",
"lang", "query", "checklist": [{"name", "criteria_description", "1-2", ..., "9-10"}]}``.
WritingBench scores every criterion 1-10 with its critic prompt; an item's score is the mean
of its criteria. Diversity metrics need no judge: distinct-1/2 (unique n-grams / n-grams, per
output, averaged) and redundancy (share of repeated 3-grams), from ``maestro_lit.text.ngrams``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from maestro_lit.evals.aggregate import mean_or_nan
from maestro_lit.evals.base import Benchmark, GenerateFn, run_generate, user
from maestro_lit.evals.io import BenchmarkDataError, Record, field
from maestro_lit.evals.judges.base import GradeRequest, Judge
from maestro_lit.evals.judges.prompts import WRITING_BENCH
from maestro_lit.evals.judges.proxy import ProxyJudge


@dataclass
class WritingItem:
    index: str
    query: str
    criteria: list[dict[str, Any]]


def criterion_text(criterion: dict[str, Any]) -> str:
    return json.dumps(criterion, ensure_ascii=False)


class CreativeWriting(Benchmark):
    default_name = "creative_writing"
    sample = ("creative_writing", "benchmark.jsonl")

    def __init__(self, judge: Optional[Judge] = None, redundancy_n: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.judge = judge or ProxyJudge()
        self.redundancy_n = redundancy_n

    def parse(self, records: list[Record]) -> list[WritingItem]:
        items = []
        for where, row in records:
            query = field(row, "query", where)
            checklist = field(row, "checklist", where, list)
            if not checklist:
                raise BenchmarkDataError(f"{where}: field 'checklist' is empty")
            for k, criterion in enumerate(checklist):
                if not isinstance(criterion, dict):
                    raise BenchmarkDataError(f"{where}: field 'checklist[{k}]' should be an object")
                for key in ("name", "criteria_description"):
                    if not isinstance(criterion.get(key), str):
                        raise BenchmarkDataError(f"{where}: missing field 'checklist[{k}].{key}'")
            items.append(WritingItem(str(row.get("index", len(items))), query, checklist))
        return items

    def score(self, items: Sequence[WritingItem], generate: GenerateFn, max_new_tokens: int):
        from maestro_lit.text.ngrams import distinct_n, repeated_ngram_rate

        answers = run_generate(generate, [user(it.query) for it in items], max_new_tokens)
        requests, owner = [], []
        for i, (it, answer) in enumerate(zip(items, answers)):
            for criterion in it.criteria:
                text = criterion_text(criterion)
                anchor = f"{it.query}\n{criterion['name']}: {criterion['criteria_description']}"
                requests.append(
                    GradeRequest(anchor, answer, None, {"question": it.query, "answer": answer, "criteria": text})
                )
                owner.append(i)
        grades = self.judge.grade(requests, WRITING_BENCH)
        per_item: list[list[Optional[float]]] = [[] for _ in items]
        for i, g in zip(owner, grades):
            per_item[i].append(g)
        failed = sum(1 for gs in per_item if any(g is None for g in gs))
        item_scores = [mean_or_nan(gs) for gs in per_item]
        metrics = {
            self.judge.metric("score"): mean_or_nan([s for s in item_scores if s == s]),
            "distinct_1": mean_or_nan([distinct_n(a, 1) for a in answers]),
            "distinct_2": mean_or_nan([distinct_n(a, 2) for a in answers]),
            "redundancy": mean_or_nan([repeated_ngram_rate(a, self.redundancy_n) for a in answers]),
        }
        records = [{"index": it.index, "answer": a, "grades": gs} for it, a, gs in zip(items, answers, per_item)]
        return metrics, failed, records
