"""IFEval: rule-checked instruction following, strict and loose, prompt- and instruction-level.

Published format (``input_data.jsonl``): ``{"key", "prompt", "instruction_id_list": [...],
"kwargs": [{...}, ...]}`` with one kwargs dict per instruction. Hub: ``google/IFEval``, split
``train``. The checkers live in ``maestro_lit.text.instructions`` (shared with the
VerifiableConstraints reward); loading fails up front, listing every unsupported id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from maestro_lit.evals.aggregate import mean_or_nan
from maestro_lit.evals.base import Benchmark, GenerateFn, run_generate, user
from maestro_lit.evals.io import BenchmarkDataError, Record, field
from maestro_lit.text.instructions import (
    SUPPORTED_INSTRUCTIONS,
    check_instruction,
    check_instruction_loose,
    unsupported,
)


@dataclass
class IFEvalItem:
    key: str
    prompt: str
    instruction_ids: list[str]
    kwargs: list[dict[str, Any]]


def _check_kwargs(instruction_id: str, kwargs: dict[str, Any], where: str) -> None:
    """Run the checker once on a dummy answer so bad kwargs fail at load time, with the line."""
    try:
        check_instruction(instruction_id, "x", kwargs)
    except (ValueError, TypeError, re.error) as err:
        raise BenchmarkDataError(f"{where}: field 'kwargs' for {instruction_id}: {err}") from err


class IFEval(Benchmark):
    default_name = "ifeval"
    sample = ("ifeval", "input_data.jsonl")
    hub_default_split = "train"

    def parse(self, records: list[Record]) -> list[IFEvalItem]:
        items, missing = [], set()
        for where, row in records:
            prompt = field(row, "prompt", where)
            ids = field(row, "instruction_id_list", where, list)
            kwargs = field(row, "kwargs", where, list)
            if len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
                raise BenchmarkDataError(
                    f"{where}: field 'kwargs' must hold one object per instruction id ({len(ids)})"
                )
            missing.update(unsupported(ids))
            for instruction_id, kw in zip(ids, kwargs):
                if instruction_id in SUPPORTED_INSTRUCTIONS:
                    _check_kwargs(instruction_id, kw, where)
            items.append(IFEvalItem(str(row.get("key", len(items))), prompt, [str(i) for i in ids], kwargs))
        if missing:
            source = records[0][0].rsplit(":", 1)[0] if records else "IFEval"
            raise BenchmarkDataError(f"{source}: unsupported IFEval instruction id(s): {', '.join(sorted(missing))}")
        return items

    def score(self, items: Sequence[IFEvalItem], generate: GenerateFn, max_new_tokens: int):
        answers = run_generate(generate, [user(it.prompt) for it in items], max_new_tokens)
        strict, loose, records = [], [], []
        for it, answer in zip(items, answers):
            s = [check_instruction(i, answer, kw) for i, kw in zip(it.instruction_ids, it.kwargs)]
            loose_row = [check_instruction_loose(i, answer, kw) for i, kw in zip(it.instruction_ids, it.kwargs)]
            strict.append(s)
            loose.append(loose_row)
            records.append({"key": it.key, "answer": answer, "strict": s, "loose": loose_row})
        flat = lambda rows: [float(x) for row in rows for x in row]  # noqa: E731
        metrics = {
            "prompt_strict": mean_or_nan([float(all(r)) for r in strict]),
            "inst_strict": mean_or_nan(flat(strict)),
            "prompt_loose": mean_or_nan([float(all(r)) for r in loose]),
            "inst_loose": mean_or_nan(flat(loose)),
        }
        return metrics, 0, records
