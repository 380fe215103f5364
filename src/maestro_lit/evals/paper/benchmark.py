"""``PaperTask``: one of the paper's seven tasks as a ``Benchmark`` for the existing ``BenchmarkCallback``.

Why an adapter and not a new callback: the callback already schedules evaluation (fit end,
every N steps, ``validate``), generates greedily through ``generate_chat`` in eval mode, logs
``bench/<name>/<metric>`` and writes ``benchmarks.csv``/``benchmarks.md``/per-item JSONL to
the run folder, which is what ``compare`` reads. This class adds the task data (NOVER's
prepared format, one split), the answer extraction, the deterministic metrics and the 3-vote
judge. Metrics (shares in percent unless said otherwise):

- ``preference`` (``preference_proxy`` with the stand-in): ``votes.summarise``, 100 × the mean item
  outcome over the decided items (3 votes per item; a pairwise vote asks both A/B orders, so a
  pairwise item costs 6 judge requests and a position-inconsistent vote is a tie worth half);
- ``unparsed_share`` (fraction of judge votes without a verdict), ``undecided`` (items);
- ``judge_false_accept`` (``judge_false_accept_proxy``; reference-judged tasks only): the negative
  control. For ``control_share`` of the items (at least ``min_controls``, chosen by ``control_seed``)
  the judge also sees another item's reference as the answer, which a working judge rejects; this
  is the share of those controls it accepted (0–1, over the decided ones), ``n_controls`` how
  many were asked (3 requests each). Above ``false_accept_warn`` (default 0.2) a warning says
  the preference cannot be trusted: a judge that always says YES reports 1.0;
- ``letter_accuracy`` over the multiple-choice items (``n_multiple_choice`` of them);
- ``rouge_l`` (×100) or ``chrf``/``bleu`` (0–100), per the task's spec;
- ``completion_words`` (mean words per completion) and ``format_rate`` (% with an ``<answer>``).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import maestro_lit.evals.paper.metrics as M
from maestro_lit.data.prepared import read_prepared
from maestro_lit.data.task_specs import task_spec
from maestro_lit.evals.base import Benchmark, GenerateFn, run_generate, user
from maestro_lit.evals.io import Record
from maestro_lit.evals.judges.vote_prompts import JudgeItem
from maestro_lit.evals.judges.votes import FALSE_ACCEPT_WARN, ProxyVoteJudge, VoteJudge, summarise

log = logging.getLogger(__name__)
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
        control_share: share of the items given a negative control (reference-judged tasks; 0 = none).
        min_controls: at least this many controls (capped at the number of items).
        control_seed: picks the control items and their foils, so a rerun asks the same controls.
        false_accept_warn: warn when the judge accepts more than this share of the controls.
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
        control_share: float = 0.2,
        min_controls: int = 5,
        control_seed: int = 0,
        false_accept_warn: float = FALSE_ACCEPT_WARN,
    ) -> None:
        if not 0 <= control_share <= 1 or min_controls < 0 or not 0 <= false_accept_warn <= 1:
            raise ValueError("PaperTask needs control_share and false_accept_warn in [0, 1] and min_controls >= 0")
        self.control_share, self.min_controls, self.control_seed = control_share, min_controls, control_seed
        self.false_accept_warn = false_accept_warn
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

    def controls(self, items: Sequence[TaskItem]) -> list[tuple[int, int]]:
        """(item, foil) index pairs: the item's question and reference, another item's reference as the answer.

        Reference-judged tasks only. A foil's reference differs from the item's (and, on a
        multiple-choice item, names other letters), so the right verdict is always NO.
        """
        n = len(items)
        if self.spec.judging != "reference" or self.control_share <= 0 or n < 2:
            return []
        rng = random.Random(self.control_seed)
        count = min(n, max(self.min_controls, math.ceil(self.control_share * n)))
        pairs = []
        for i in sorted(rng.sample(range(n), count)):
            mine = " ".join(items[i].reference.lower().split())
            foils = [
                j
                for j in range(n)
                if j != i
                and " ".join(items[j].reference.lower().split()) != mine
                and not (items[i].letters and items[j].letters == items[i].letters)
            ]
            if foils:
                pairs.append((i, rng.choice(foils)))
        return pairs

    def score(
        self, items: Sequence[TaskItem], generate: GenerateFn, max_new_tokens: int
    ) -> tuple[dict[str, float], int, list[dict[str, Any]]]:
        completions = run_generate(generate, [user(item.prompt) for item in items], max_new_tokens)
        answers = [M.answer_text(c) for c in completions]
        judged = [
            JudgeItem(judge_question(i.prompt), i.reference, a, self.spec.judging, self.spec.category)
            for i, a in zip(items, answers)
        ]
        controls = self.controls(items)
        asked = judged + [
            JudgeItem(
                judge_question(items[i].prompt),
                items[i].reference,
                items[j].reference,
                self.spec.judging,
                self.spec.category,
            )
            for i, j in controls
        ]
        verdicts = self.judge.verdicts(asked)  # one batch: the controls share the judge's deadline
        verdicts, control_verdicts = verdicts[: len(judged)], verdicts[len(judged) :]
        summary = summarise(verdicts)
        metrics: dict[str, float] = {
            self.judge.metric("preference"): summary.preference,
            self.judge.metric("unparsed_share"): summary.unparsed_share,
            "undecided": float(summary.undecided),
            "completion_words": _mean([M.word_count(c) for c in completions]),
            "format_rate": 100.0 * _mean([M.extract_answer(c) is not None for c in completions]),
        }
        if controls:
            accepted = [v.outcome for v in control_verdicts if v.outcome is not None]
            false_accept = _mean(accepted)
            metrics[self.judge.metric("judge_false_accept")] = false_accept
            metrics["n_controls"] = float(len(controls))
            if false_accept > self.false_accept_warn:
                log.warning(
                    "bench/%s: the judge accepted %.0f%% of %d negative controls (another item's reference given as "
                    "the answer; false_accept_warn=%g): its %s of %.1f cannot be trusted",
                    self.name,
                    100 * false_accept,
                    len(accepted),
                    self.false_accept_warn,
                    self.judge.metric("preference"),
                    summary.preference,
                )
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
                "outcome": v.outcome,
            }
            for i, c, a, p, v in zip(items, completions, answers, picked, verdicts)
        ]
        records += [
            {
                "where": items[i].where,
                "control": True,
                "reference": items[i].reference,
                "answer": items[j].reference,
                "foil_from": items[j].where,
                "votes": list(v.votes),
                "accepted": v.favourable,
            }
            for (i, j), v in zip(controls, control_verdicts)
        ]
        return metrics, summary.undecided, records

    def to(self, device: Any) -> PaperTask:
        self.judge.to(device)
        return self


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan
