"""Scalarisers only the simulator needs: the oracle (true weights per category) and random weights.

``DirichletWeights`` is a local stand-in for the project's ``RandomWeights`` until that lands:
a fresh weight vector per completion, drawn uniformly from the simplex (Dirichlet(1)), the
paper's "Random-Weights" baseline read in its simplest way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.conductor import Scalarization, Scalarizer


class OracleWeights(Scalarizer):
    """Each completion is weighted with its category's true weights (zero on columns not in the truth)."""

    def __init__(
        self, true_weights: dict[str, Sequence[float]], truth_components: Sequence[str], category_column: str = "category"
    ) -> None:
        super().__init__()
        self.true_weights, self.truth_components, self.category_column = true_weights, list(truth_components), category_column

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        super().bind(component_names, hidden_size)
        index = [list(component_names).index(n) for n in self.truth_components]
        self.table = {}
        for category, w in self.true_weights.items():
            row = torch.zeros(len(component_names))
            row[index] = torch.tensor([float(x) for x in w])
            self.table[category] = row / row.sum()

    def choose(self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1) -> Scalarization:
        return Scalarization(weights=torch.stack([self.table[c] for c in columns[self.category_column]]))


class DirichletWeights(Scalarizer):
    """A uniform-on-the-simplex weight vector per completion (greedy: the equal weights)."""

    def choose(self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1) -> Scalarization:
        n, m = hidden.shape[0], len(self.component_names)
        if greedy:
            return Scalarization(weights=torch.full((n, m), 1.0 / m))
        draws = -torch.log(torch.rand(n, m).clamp(min=1e-12))  # Exp(1) draws, normalised = Dirichlet(1)
        return Scalarization(weights=draws / draws.sum(-1, keepdim=True))
