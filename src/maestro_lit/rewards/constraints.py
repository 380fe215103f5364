"""Verifiable constraints: the fraction of an item's rule checks that the completion passes.

The checks are the IFEval checkers of :mod:`maestro_lit.text.instructions`, so this reward
and the IFEval benchmark agree on what "followed the instruction" means. Each item states
its own constraints in dataset columns (all optional; a missing/None/empty value means
"no such constraint"):

- ``required_keywords: list[str]`` — every keyword appears (case-insensitive, literal);
- ``forbidden_words: list[str]`` — none appears as a whole word;
- ``min_words: int`` / ``max_words: int`` — inclusive word-count bounds;
- ``min_sentences: int`` / ``max_sentences: int`` — inclusive sentence-count bounds;
- ``json_format: bool`` — the whole completion parses as JSON (a ```json fence is allowed);
- ``end_phrase: str`` — the completion ends with this phrase;
- ``instruction_id_list: list[str]`` + ``kwargs: list[dict]`` — raw IFEval instructions,
  so IFEval-format rows work unchanged.

Each named column counts as one constraint (a list of keywords is one check, as in IFEval).
The score is passed / total, NaN for an item with no constraint (masked by the trainer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import RewardComponent
from maestro_lit.rewards.columns import column, is_missing
from maestro_lit.text.instructions import check_instruction, check_instruction_loose, require_supported

Check = tuple[str, dict[str, Any]]


def _literal(words: Any) -> list[str]:
    """IFEval's keyword checkers take regexes; users write plain words ("C++" must not crash)."""
    return [re.escape(str(w)) for w in ([words] if isinstance(words, str) else words)]


def _column_checks(row: dict[str, Any]) -> list[Check]:
    """Map this item's friendly columns onto IFEval (instruction id, kwargs) pairs."""
    checks: list[Check] = []
    if not is_missing(row["required_keywords"]):
        checks.append(("keywords:existence", {"keywords": _literal(row["required_keywords"])}))
    if not is_missing(row["forbidden_words"]):
        checks.append(("keywords:forbidden_words", {"forbidden_words": _literal(row["forbidden_words"])}))
    for unit in ("words", "sentences"):
        instruction, count_key = f"length_constraints:number_{unit}", f"num_{unit}"
        # IFEval relations are "at least" and strict "less than"; max is inclusive, hence +1.
        if not is_missing(row[f"min_{unit}"]):
            checks.append((instruction, {count_key: int(row[f"min_{unit}"]), "relation": "at least"}))
        if not is_missing(row[f"max_{unit}"]):
            checks.append((instruction, {count_key: int(row[f"max_{unit}"]) + 1, "relation": "less than"}))
    if not is_missing(row["json_format"]) and bool(row["json_format"]):
        checks.append(("detectable_format:json_format", {}))
    if not is_missing(row["end_phrase"]):
        checks.append(("startend:end_checker", {"end_phrase": str(row["end_phrase"])}))
    ids = row["instruction_id_list"]
    if not is_missing(ids):
        kwargs = row["kwargs"] if not is_missing(row["kwargs"]) else [{}] * len(ids)
        if len(kwargs) != len(ids):
            raise ValueError(f"instruction_id_list has {len(ids)} ids but kwargs has {len(kwargs)} entries")
        checks.extend((str(i), dict(k or {})) for i, k in zip(ids, kwargs))
    return checks


COLUMNS = (
    "required_keywords",
    "forbidden_words",
    "min_words",
    "max_words",
    "min_sentences",
    "max_sentences",
    "json_format",
    "end_phrase",
    "instruction_id_list",
    "kwargs",
)


class VerifiableConstraints(RewardComponent):
    """Fraction of the item's constraints satisfied (see module docstring for the columns).

    ``loose=True`` uses IFEval's loose protocol (also accept the response with its first/last
    line or asterisks removed), which forgives a preamble such as "Sure, here it is:".
    """

    def __init__(self, loose: bool = False, name: str = "constraints") -> None:
        self.loose, self.name = loose, name

    def checks(self, **row: Any) -> list[Check]:
        """The (IFEval id, kwargs) checks one item's columns describe; unsupported ids raise."""
        checks = _column_checks({key: row.get(key) for key in COLUMNS})
        require_supported(i for i, _ in checks)
        return checks

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        n = len(completions)
        table = {key: column(columns, key, n) for key in COLUMNS}
        check = check_instruction_loose if self.loose else check_instruction
        scores = torch.full((n,), float("nan"), dtype=torch.float32)
        for i, completion in enumerate(completions):
            checks = self.checks(**{key: values[i] for key, values in table.items()})
            if checks:
                scores[i] = sum(check(iid, completion, kw) for iid, kw in checks) / len(checks)
        return scores
