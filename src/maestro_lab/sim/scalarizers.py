"""The scalariser only the simulator can have: the oracle, which reads the category's true weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.conductor.base import Scalarization, Scalarizer


class OracleWeights(Scalarizer):
    """Each completion is weighted with its category's true weights (zero on columns not in the truth)."""

    def __init__(
        self,
        true_weights: dict[str, Sequence[float]],
        truth_components: Sequence[str],
        category_column: str = "category",
    ) -> None:
        super().__init__()
        self.true_weights, self.truth_components, self.category_column = (
            true_weights,
            list(truth_components),
            category_column,
        )

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        super().bind(component_names, hidden_size)
        index = [list(component_names).index(n) for n in self.truth_components]
        self.table = {}
        for category, w in self.true_weights.items():
            row = torch.zeros(len(component_names))
            row[index] = torch.tensor([float(x) for x in w])
            self.table[category] = row / row.sum()

    def choose(
        self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1
    ) -> Scalarization:
        return Scalarization(weights=torch.stack([self.table[c] for c in columns[self.category_column]]))
