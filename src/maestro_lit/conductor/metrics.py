"""The validation picture behind the paper's Figure 3: the mean weight each reward gets, per category.

Pure function of a ``Scalarization``, so it works for every scalariser (learned, static,
random, per-category) and is tested on hand-made tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from maestro_lit.conductor.base import Scalarization


def weight_metrics(
    choice: Scalarization, component_names: Sequence[str], categories: Sequence | None, prefix: str
) -> dict[str, torch.Tensor]:
    """``{prefix}/weight/<reward>`` over all rows and ``{prefix}/<category>/weight/<reward>`` per category.

    Rows whose category is ``None`` count only in the overall mean.
    """
    weights = choice.weights.detach().float()
    if weights.shape[-1] != len(component_names):
        raise ValueError(
            f"weights have {weights.shape[-1]} columns but there are {len(component_names)} reward components"
        )
    metrics = {f"{prefix}/weight/{name}": value for name, value in zip(component_names, weights.mean(dim=0))}
    if categories is None:
        return metrics
    if len(categories) != weights.shape[0]:
        raise ValueError(f"{len(categories)} categories for {weights.shape[0]} weight rows")
    for category in sorted({c for c in categories if c is not None}):
        rows = torch.tensor([c == category for c in categories], device=weights.device)
        means = weights[rows].mean(dim=0)
        metrics.update({f"{prefix}/{category}/weight/{name}": value for name, value in zip(component_names, means)})
    return metrics
