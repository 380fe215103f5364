"""The testbed's ground truth: which observable reward components matter, per prompt category.

The true utility of a completion is ``sum_m w[category, m] * raw_m`` over the raw (not
z-scored) scores of the observable components, each in [0, 1]. Training methods never see
it; it is used only for evaluation and by the oracle scalariser. The components and weights
live in one JSON file (``assets/testbed/true_weights.json``) so that the design is data,
fixed before any comparison run, and cannot drift from the code.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from maestro_lab.paths import TESTBED_ASSETS
from maestro_lit.rewards.base import RewardComponent, as_score_tensor

ASSETS = TESTBED_ASSETS["v1"]
TRUE_WEIGHTS = ASSETS / "true_weights.json"
TRAIN_PROMPTS = ASSETS / "train.jsonl"
HELDOUT_PROMPTS = ASSETS / "heldout.jsonl"


def load_spec(path: str | Path | None = None) -> dict[str, Any]:
    """The JSON spec: ``components`` (name -> class_path/init_args) and ``weights`` (category -> name -> w)."""
    spec = json.loads(Path(path or TRUE_WEIGHTS).read_text(encoding="utf-8"))
    names = list(spec["components"])
    for category, row in spec["weights"].items():
        if set(row) != set(names):
            raise ValueError(f"true weights for {category!r} name {sorted(row)}, expected the components {names}")
        if any(w < 0 for w in row.values()) or abs(sum(row.values()) - 1.0) > 1e-6:
            raise ValueError(f"true weights for {category!r} must be non-negative and sum to 1, got {row}")
    return spec


def build_component(entry: dict[str, Any]) -> RewardComponent:
    module, _, name = entry["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**entry.get("init_args", {}))


def weight_table(spec: dict[str, Any], component_names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Category -> weight vector ordered like ``component_names`` (which must be the spec's names)."""
    if set(component_names) != set(spec["components"]):
        raise ValueError(
            f"components {list(component_names)} do not match the true-utility components {list(spec['components'])}"
        )
    return {c: torch.tensor([float(row[n]) for n in component_names]) for c, row in spec["weights"].items()}


def rows_for(table: dict[str, torch.Tensor], categories: Sequence[Any]) -> torch.Tensor:
    """Stack the weight vector of each item's category; an unknown category is an error, not a guess."""
    missing = sorted({str(c) for c in categories if c not in table})
    if missing:
        raise KeyError(f"no true weights for categories {missing}; known: {sorted(table)}")
    return torch.stack([table[c] for c in categories])


class TrueUtility:
    """Scores completions with the spec's own components and combines them with the category weights."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.spec = load_spec(path)
        self.names = list(self.spec["components"])
        self.components = [build_component(self.spec["components"][n]) for n in self.names]
        self.table = weight_table(self.spec, self.names)

    @property
    def categories(self) -> list[str]:
        return list(self.table)

    def components_matrix(
        self, prompts: Sequence[str], completions: Sequence[str], columns: dict[str, list]
    ) -> torch.Tensor:
        """Raw component scores [N, K] in spec order."""
        return torch.stack(
            [
                as_score_tensor(n, c(list(prompts), list(completions), **columns), len(completions))
                for n, c in zip(self.names, self.components)
            ],
            dim=-1,
        )

    def combine(self, raw: torch.Tensor, categories: Sequence[Any]) -> torch.Tensor:
        """Utility [N] from raw scores [N, K] (spec order); a missing (NaN) score counts as 0."""
        return (rows_for(self.table, categories) * torch.nan_to_num(raw.float().cpu(), nan=0.0)).sum(-1)

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], columns: dict[str, list]) -> torch.Tensor:
        return self.combine(self.components_matrix(prompts, completions, columns), columns["category"])
