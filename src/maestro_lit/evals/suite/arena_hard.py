"""Arena-Hard-Auto: pairwise win rate against a baseline model's answers.

Published format (v0.1): ``question.jsonl`` rows ``{"question_id", "category", "cluster",
"turns": [{"content"}]}`` and ``model_answer/<baseline>.jsonl`` rows ``{"question_id",
"model_id", "choices": [{"turns": [{"content"}]}]}``. The v2.0 layout (``uid`` + ``prompt``;
answers with ``messages``) is read too. Arena-Hard judges each pair twice with the positions
swapped (``both_orders``) and reports a Bradley-Terry win rate; with one model against one
baseline we report the plain win rate over both games, ties counted half and ``>>`` counted
as an ordinary win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from maestro_lit.evals.aggregate import win_rate
from maestro_lit.evals.base import Benchmark, GenerateFn, run_generate, user
from maestro_lit.evals.io import BenchmarkDataError, Record, field, read_jsonl, sample_path
from maestro_lit.evals.judges.base import Judge, PairRequest
from maestro_lit.evals.judges.prompts import ARENA_HARD
from maestro_lit.evals.judges.proxy import ProxyJudge


@dataclass
class ArenaItem:
    question_id: str
    question: str
    baseline: str


def _question(row: dict, where: str) -> tuple[str, str]:
    if "uid" in row:  # v2.0
        return str(row["uid"]), field(row, "prompt", where)
    qid = str(field(row, "question_id", where, (str, int)))
    turns = field(row, "turns", where, list)
    if not turns or not isinstance(turns[0], dict) or not isinstance(turns[0].get("content"), str):
        raise BenchmarkDataError(f"{where}: missing field 'turns[0].content'")
    return qid, turns[0]["content"]


def _answer(row: dict, where: str) -> tuple[str, str]:
    if "uid" in row:  # v2.0: last assistant message, content either str or {"answer": str}
        messages = field(row, "messages", where, list)
        content = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
        content = content.get("answer") if isinstance(content, dict) else content
        if not isinstance(content, str):
            raise BenchmarkDataError(f"{where}: missing field 'messages[-1].content'")
        return str(row["uid"]), content
    qid = str(field(row, "question_id", where, (str, int)))
    choices = field(row, "choices", where, list)
    try:
        return qid, str(choices[0]["turns"][0]["content"])
    except (IndexError, KeyError, TypeError):
        raise BenchmarkDataError(f"{where}: missing field 'choices[0].turns[0].content'") from None


class ArenaHard(Benchmark):
    default_name = "arena_hard"
    sample = ("arena_hard", "question.jsonl")

    def __init__(
        self,
        baseline_path: Optional[str] = None,
        judge: Optional[Judge] = None,
        both_orders: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.baseline_path = baseline_path
        self.judge = judge or ProxyJudge()
        self.both_orders = both_orders

    def read(self) -> list[Record]:
        questions = super().read()
        default = sample_path("arena_hard", "model_answer", "gpt-4-0314.jsonl")
        self._baseline_records = read_jsonl(Path(self.baseline_path) if self.baseline_path else default)
        return questions

    def parse(self, records: list[Record]) -> list[ArenaItem]:
        baselines = dict(_answer(row, where) for where, row in self._baseline_records)
        items = []
        for where, row in records:
            qid, question = _question(row, where)
            if qid not in baselines:
                raise BenchmarkDataError(f"{where}: no baseline answer for question_id '{qid}'")
            items.append(ArenaItem(qid, question, baselines[qid]))
        return items

    def score(self, items: Sequence[ArenaItem], generate: GenerateFn, max_new_tokens: int):
        answers = run_generate(generate, [user(it.question) for it in items], max_new_tokens)
        # Game 1 puts the baseline in slot A, as Arena-Hard does; game 2 swaps.
        orders = [False, True] if self.both_orders else [False]
        requests = [
            PairRequest(it.question, a, it.baseline, first, {"question": it.question})
            for first in orders
            for it, a in zip(items, answers)
        ]
        outcomes = self.judge.compare(requests, ARENA_HARD)
        n = len(items)
        per_item = [[outcomes[g * n + i] for g in range(len(orders))] for i in range(n)]
        rate, _ = win_rate(outcomes)
        failed = sum(1 for games in per_item if any(o is None for o in games))
        records = [
            {"question_id": it.question_id, "answer": a, "outcomes": g} for it, a, g in zip(items, answers, per_item)
        ]
        return {self.judge.metric("win_rate"): rate}, failed, records
