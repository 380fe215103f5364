"""Semantic similarity: cosine of sentence embeddings between completion and reference.

Rewards meaning rather than wording (ROUGE's blind spot). Without a reference the
completion is compared to its prompt instead, a relevance proxy, unless
``fallback_to_prompt=False``, in which case the score is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import RewardComponent
from maestro_lit.rewards.columns import column, is_missing
from maestro_lit.text.encoder import SentenceEncoder


class SemanticSimilarity(RewardComponent):
    """Cosine similarity in [-1, 1] under a sentence encoder (default: the shipped all-MiniLM-L6-v2)."""

    def __init__(
        self,
        model: str | None = None,
        reference_column: str = "reference",
        fallback_to_prompt: bool = True,
        batch_size: int = 32,
        max_length: int = 256,
        name: str = "similarity",
    ) -> None:
        self.encoder = SentenceEncoder(model, batch_size=batch_size, max_length=max_length)
        self.reference_column, self.fallback_to_prompt, self.name = reference_column, fallback_to_prompt, name

    def to(self, device: str | torch.device) -> SemanticSimilarity:
        self.encoder.to(device)
        return self

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> torch.Tensor:
        references = column(columns, self.reference_column, len(completions))
        targets = [
            str(r) if not is_missing(r) else (p if self.fallback_to_prompt else None)
            for p, r in zip(prompts, references)
        ]
        # G completions share one reference: embed each distinct text once.
        unique = list(dict.fromkeys([*completions, *(t for t in targets if t is not None)]))
        index = {text: i for i, text in enumerate(unique)}
        embeddings = self.encoder.encode(unique).float().cpu() if unique else torch.empty(0)
        scores = torch.full((len(completions),), float("nan"), dtype=torch.float32)
        for i, (completion, target) in enumerate(zip(completions, targets)):
            if target is not None:
                scores[i] = embeddings[index[completion]] @ embeddings[index[target]]
        return scores
