"""``PaperTask``: one of the paper's seven tasks as a ``Benchmark`` for the existing ``BenchmarkCallback``.

Why an adapter and not a new callback: the callback already schedules evaluation (fit end,
every N steps, ``validate``), generates greedily through ``generate_chat`` in eval mode, logs
``bench/<name>/<metric>`` and writes ``benchmarks.csv``/``benchmarks.md``/per-item JSONL to
the run folder, which is what ``compare`` reads. This class adds the task data (NOVER's
prepared format, one split), the answer extraction, the deterministic metrics and the 3-vote
judge. Metrics (shares in percent unless said otherwise):

- ``preference`` (``preference_proxy`` with the stand-in): ``votes.summarise``;
- ``unparsed_share`` (fraction of judge votes without a verdict), ``undecided`` (items);
- ``letter_accuracy`` over the multiple-choice items (``n_multiple_choice`` of them);
- ``rouge_l`` (×100) or ``chrf``/``bleu`` (0–100), per the task's spec;
- ``completion_words`` (mean words per completion) and ``format_rate`` (% with an ``<answer>``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import maestro_lit.evals.paper.metrics as M
from maestro_lit.data.prepared import read_prepared
from maestro_lit.data.task_specs import task_spec
from maestro_lit.evals.base import Benchmark, GenerateFn, run_generate, user
from maestro_lit.evals.io import Record
from maestro_lit.evals.judges.vote_prompts import JudgeItem
from maestro_lit.evals.judges.votes import ProxyVoteJudge, VoteJudge, summarise

_INSTRUCTION = "\n\nAnswer the question and return in the following format:"


@dataclass(frozen=True)
class TaskItem:
    where: str
    prompt: str
    reference: str
    letters: Optional[tuple[str, ...]]  # the reference's option letter(s) on multiple-choice items


def judge_question(prompt: str) -> str:
    """The task as the judge sees it: the prompt without NOVER's output-format instruction."""
    return prompt.split(_INSTRUCTION)[0].strip()


class PaperTask(Benchmark):
    """One of ``natural_reasoning, general_thoughts, webinstruct, ss_gen, emobench, tombench, opus_books``.

    Args:
        task: the task name (sets category, judging kind and metrics).
        path: prepared file (CSV/JSONL/Parquet); default the shipped sample.
        split: which split to evaluate (the paper: ``test``).
        judge: a ``VoteJudge``; default the offline ``ProxyVoteJudge`` (metric names say ``proxy``).
        hub_id / hub_config: a hub dataset instead of ``path`` (e.g. NOVER's NOVEReason).
        limit: the first ``limit`` items of the split (a configured sample).
    """

    def __init__(
        self,
        task: str,
        path: Optional[str] = None,
        split: str = "test",
        judge: Optional[VoteJudge] = None,
        hub_id: Optional[str] = None,
        hub_config: Optional[str] = None,
        limit: Optional[int] = None,
        enabled: bool = True,
        max_new_tokens: Optional[int] = None,
        name: Optional[str] = None,
    ) -> None:
        self.spec = task_spec(task)
        super().__init__(path, hub_id, hub_config, split, limit, enabled, max_new_tokens, name or task)
        self.split = split
        self.judge = judge if judge is not None else ProxyVoteJudge()

    def read(self) -> list[Record]:
        source = self.hub_id or self.path or str(self.spec.sample)
        return read_prepared(source, self.split, self.spec.name, self.hub_config)

    def parse(self, records: list[Record]) -> list[TaskItem]:
        items = []
        for where, row in records:
            reference = str(row.get("reference") or "")
            letters = M.reference_letters(reference, row["prompt"]) if "letter" in self.spec.metrics else None
            items.append(TaskItem(where, row["prompt"], reference, letters))
        return items

    def score(
        self, items: Sequence[TaskItem], generate: GenerateFn, max_new_tokens: int
    ) -> tuple[dict[str, float], int, list[dict[str, Any]]]:
        completions = run_generate(generate, [user(item.prompt) for item in items], max_new_tokens)
        answers = [M.answer_text(c) for c in completions]
        judged = [
            JudgeItem(judge_question(i.prompt), i.reference, a, self.spec.judging, self.spec.category)
            for i, a in zip(items, answers)
        ]
        verdicts = self.judge.verdicts(judged)
        summary = summarise(verdicts)
        metrics: dict[str, float] = {
            self.judge.metric("preference"): summary.preference,
            self.judge.metric("unparsed_share"): summary.unparsed_share,
            "undecided": float(summary.undecided),
            "completion_words": _mean([M.word_count(c) for c in completions]),
            "format_rate": 100.0 * _mean([M.extract_answer(c) is not None for c in completions]),
        }
        picked = [M.answer_letters(a, i.letters) if i.letters else None for i, a in zip(items, answers)]
        if "letter" in self.spec.metrics:
            hits = [p == i.letters for i, p in zip(items, picked) if i.letters]
            metrics["letter_accuracy"] = 100.0 * _mean(hits)
            metrics["n_multiple_choice"] = float(len(hits))
        if "rouge_l" in self.spec.metrics:
            metrics["rouge_l"] = 100.0 * _mean([M.rouge_l(a, i.reference) for i, a in zip(items, answers)])
        if "chrf" in self.spec.metrics:
            metrics["chrf"] = M.chrf(answers, [i.reference for i in items])
        if "bleu" in self.spec.metrics:
            metrics["bleu"] = M.bleu(answers, [i.reference for i in items])
        records = [
            {
                "where": i.where,
                "reference": i.reference,
                "completion": c,
                "answer": a,
                "letters": p,
                "votes": list(v.votes),
                "favourable": v.favourable,
            }
            for i, c, a, p, v in zip(items, completions, answers, picked, verdicts)
        ]
        return metrics, summary.undecided, records

    def to(self, device: Any) -> PaperTask:
        self.judge.to(device)
        return self


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan
