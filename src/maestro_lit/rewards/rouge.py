"""ROUGE-L F-measure against the item's reference answer, computed by torchmetrics.

torchmetrics (not a hand-written LCS) so the number matches what papers and the benchmark
code report. Items without a reference score NaN, which the trainer masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics.functional.text.rouge import rouge_score

from maestro_lit.rewards.base import RewardComponent
from maestro_lit.rewards.columns import column, is_missing


class RougeL(RewardComponent):
    """Per-completion ROUGE-L F1 against ``columns[reference_column]``; NaN where it is missing."""

    def __init__(self, reference_column: str = "reference", use_stemmer: bool = False, name: str = "rouge_l") -> None:
        self.reference_column, self.use_stemmer, self.name = reference_column, use_stemmer, name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        references = column(columns, self.reference_column, len(completions))
        scores = torch.full((len(completions),), float("nan"), dtype=torch.float32)
        for i, (completion, reference) in enumerate(zip(completions, references)):
            if not is_missing(reference):
                # One call per pair: the batched functional form returns only the corpus mean.
                result = rouge_score(completion, str(reference), rouge_keys="rougeL", use_stemmer=self.use_stemmer)
                scores[i] = float(result["rougeL_fmeasure"])
        return scores
