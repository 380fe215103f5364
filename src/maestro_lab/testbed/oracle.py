"""The oracle scalariser: each item is weighted with its category's true weights.

It reads the ``category`` column, which the other methods also receive but cannot map to
the truth; it is the upper bound that tells us how much a perfect prompt-dependent
trade-off is worth in this testbed. It has no parameters and no actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lab.testbed.truth import load_spec, rows_for, weight_table
from maestro_lit.conductor.base import Scalarization, Scalarizer


class CategoryWeights(Scalarizer):
    """Per-category weight vectors: from ``weights`` ({category: {component: w}}) or the true-weights file."""

    def __init__(
        self,
        weights: dict[str, dict[str, float]] | None = None,
        weights_path: str | None = None,
        category_column: str = "category",
    ) -> None:
        super().__init__()
        self.requested, self.weights_path, self.category_column = weights, weights_path, category_column

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        super().bind(component_names, hidden_size)
        spec = load_spec(self.weights_path)
        if self.requested is not None:
            spec = {"components": {n: {} for n in component_names}, "weights": self.requested}
        table = weight_table(spec, component_names)
        self.table = {c: w / w.sum() for c, w in table.items()}

    def choose(
        self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1
    ) -> Scalarization:
        categories = columns.get(self.category_column)
        if categories is None:
            raise KeyError(f"CategoryWeights needs the {self.category_column!r} column on every prompt")
        return Scalarization(weights=rows_for(self.table, categories).to(hidden.device))
