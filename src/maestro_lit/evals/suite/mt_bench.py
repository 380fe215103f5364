"""MT-Bench: two-turn generation, single-answer grades 1-10 per turn.

Published format (FastChat ``data/mt_bench/question.jsonl``): ``{"question_id", "category",
"turns": [q1, q2], "reference": [r1, r2]?}``. Turn 1 is generated for all questions in one
batch, then the conversation (user q1, assistant a1, user q2) for all in a second batch.
Grading follows FastChat: math/reasoning/coding questions with a reference use the
reference-guided prompts; turn 2 is graded with the whole conversation shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from maestro_lit.evals.aggregate import mean_or_nan
from maestro_lit.evals.base import Benchmark, GenerateFn, run_generate, user
from maestro_lit.evals.io import BenchmarkDataError, Record, field
from maestro_lit.evals.judges.base import GradeRequest, Judge, JudgePrompt
from maestro_lit.evals.judges.prompts import MT_BENCH_MULTI, MT_BENCH_MULTI_REF, MT_BENCH_SINGLE, MT_BENCH_SINGLE_REF
from maestro_lit.evals.judges.proxy import ProxyJudge

NEED_REF_CATEGORIES = ("math", "reasoning", "coding")


@dataclass
class MTItem:
    question_id: str
    category: str
    turns: list[str]
    reference: Optional[list[str]]


def conversation(item: MTItem, first_answer: str) -> list[dict[str, str]]:
    """The turn-2 conversation: user q1, assistant a1, user q2."""
    return [
        {"role": "user", "content": item.turns[0]},
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": item.turns[1]},
    ]


class MTBench(Benchmark):
    default_name = "mt_bench"
    sample = ("mt_bench", "question.jsonl")
    hub_default_split = "train"

    def __init__(self, judge: Optional[Judge] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.judge = judge or ProxyJudge()

    def parse(self, records: list[Record]) -> list[MTItem]:
        items = []
        for where, row in records:
            turns = field(row, "turns", where, list)
            if len(turns) != 2 or not all(isinstance(t, str) for t in turns):
                raise BenchmarkDataError(f"{where}: field 'turns' must hold two strings, got {len(turns)} entries")
            reference = row.get("reference")
            if reference is not None and (not isinstance(reference, list) or len(reference) < 2):
                raise BenchmarkDataError(f"{where}: field 'reference' must be a list of two answers")
            qid = str(field(row, "question_id", where, (str, int)))
            items.append(MTItem(qid, str(row.get("category", "")), turns, reference))
        return items

    def _grade(self, requests: list[tuple[GradeRequest, JudgePrompt]]) -> list[Optional[float]]:
        """Grade in one judge call per prompt template, results back in input order."""
        out: list[Optional[float]] = [None] * len(requests)
        for template in {p.name: p for _, p in requests}.values():
            idx = [i for i, (_, p) in enumerate(requests) if p.name == template.name]
            for i, grade in zip(idx, self.judge.grade([requests[i][0] for i in idx], template)):
                out[i] = grade
        return out

    def score(self, items: Sequence[MTItem], generate: GenerateFn, max_new_tokens: int):
        first = run_generate(generate, [user(it.turns[0]) for it in items], max_new_tokens)
        second = run_generate(generate, [conversation(it, a1) for it, a1 in zip(items, first)], max_new_tokens)
        requests: list[tuple[GradeRequest, JudgePrompt]] = []
        for it, a1, a2 in zip(items, first, second):
            use_ref = it.reference is not None and it.category in NEED_REF_CATEGORIES
            refs = it.reference if use_ref else [None, None]
            fields = {"question_1": it.turns[0], "answer_1": a1, "question_2": it.turns[1], "answer_2": a2}
            if use_ref:
                fields.update(ref_answer_1=refs[0], ref_answer_2=refs[1])
            flat = f"User: {it.turns[0]}\nAssistant: {a1}\nUser: {it.turns[1]}"
            requests.append(
                (GradeRequest(it.turns[0], a1, refs[0], fields), MT_BENCH_SINGLE_REF if use_ref else MT_BENCH_SINGLE)
            )
            requests.append(
                (GradeRequest(flat, a2, refs[1], fields), MT_BENCH_MULTI_REF if use_ref else MT_BENCH_MULTI)
            )
        grades = self._grade(requests)
        turn1, turn2 = grades[0::2], grades[1::2]
        failed = sum(1 for g1, g2 in zip(turn1, turn2) if g1 is None or g2 is None)
        metrics = {
            self.judge.metric("score_turn1"): mean_or_nan(turn1),
            self.judge.metric("score_turn2"): mean_or_nan(turn2),
            self.judge.metric("score"): mean_or_nan(grades),
        }
        records = [
            {"question_id": it.question_id, "answers": [a1, a2], "grades": [g1, g2]}
            for it, a1, a2, g1, g2 in zip(items, first, second, turn1, turn2)
        ]
        return metrics, failed, records
