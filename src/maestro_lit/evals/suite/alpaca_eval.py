"""AlpacaEval 2.0: pairwise win rate against the reference outputs, plus a length-controlled rate.

Published format: a JSON list of ``{"instruction", "output", "generator", "dataset"}``
(``output`` is the reference, GPT-4 Turbo in 2.0). Hub: ``tatsu-lab/alpaca_eval`` with config
``alpaca_eval_gpt4_baseline``, split ``eval``. The model is shown to an LLM judge as Output (a)
(AlpacaEval randomises the order; we keep it fixed, set ``model_first=False`` to swap). The
length-controlled reading is documented in ``aggregate.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from maestro_lit.evals.aggregate import length_controlled_win_rate, win_rate
from maestro_lit.evals.base import Benchmark, GenerateFn, run_generate, user
from maestro_lit.evals.io import Record, field
from maestro_lit.evals.judges.base import Judge, PairRequest
from maestro_lit.evals.judges.prompts import ALPACA_EVAL
from maestro_lit.evals.judges.proxy import ProxyJudge


@dataclass
class AlpacaItem:
    instruction: str
    reference: str


class AlpacaEval(Benchmark):
    default_name = "alpaca_eval"
    sample = ("alpaca_eval", "alpaca_eval.json")
    hub_default_split = "eval"

    def __init__(self, judge: Optional[Judge] = None, model_first: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.judge = judge or ProxyJudge()
        self.model_first = model_first

    def parse(self, records: list[Record]) -> list[AlpacaItem]:
        return [AlpacaItem(field(row, "instruction", where), field(row, "output", where)) for where, row in records]

    def score(self, items: Sequence[AlpacaItem], generate: GenerateFn, max_new_tokens: int):
        answers = run_generate(generate, [user(it.instruction) for it in items], max_new_tokens)
        requests = [
            PairRequest(it.instruction, a, it.reference, self.model_first, {"question": it.instruction})
            for it, a in zip(items, answers)
        ]
        outcomes = self.judge.compare(requests, ALPACA_EVAL)
        rate, failed = win_rate(outcomes)
        lc = length_controlled_win_rate(outcomes, [len(a) for a in answers], [len(it.reference) for it in items])
        metrics = {
            self.judge.metric("win_rate"): rate,
            self.judge.metric("lc_win_rate"): lc,
            "avg_length": sum(map(len, answers)) / max(1, len(answers)),
        }
        records = [
            {"instruction": it.instruction, "answer": a, "outcome": o} for it, a, o in zip(items, answers, outcomes)
        ]
        return metrics, failed, records
