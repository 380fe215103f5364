"""Pure functions behind the testbed numbers: summaries of one held-out evaluation, the
Conductor's per-category action distribution, and the category–action mutual information.

Kept free of Lightning so the tests can check them on hand-made inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from maestro_lit.text.ngrams import repeated_ngram_rate


def redundancy(completions: Sequence[str], n: int = 3) -> torch.Tensor:
    """Share of repeated word n-grams per completion (0 = no loop, toward 1 = a loop)."""
    return torch.tensor([repeated_ngram_rate(c, n) for c in completions], dtype=torch.float32)


def word_lengths(completions: Sequence[str]) -> torch.Tensor:
    return torch.tensor([len(c.split()) for c in completions], dtype=torch.float32)


def per_category_mean(values: torch.Tensor, categories: Sequence[str], order: Sequence[str]) -> dict[str, float]:
    out = {}
    for c in order:
        rows = torch.tensor([x == c for x in categories])
        out[c] = float(values[rows].mean()) if rows.any() else float("nan")
    return out


def joint_from_probs(probs: torch.Tensor, categories: Sequence[str], order: Sequence[str]) -> torch.Tensor:
    """p(c, a) = (1/N) sum_i [c_i = c] probs_i(a); ``probs`` is [N, K] (one-hot for argmax actions)."""
    joint = torch.zeros(len(order), probs.shape[1], dtype=torch.float64)
    for i, c in enumerate(categories):
        joint[order.index(c)] += probs[i].double()
    return joint / max(len(categories), 1)


def mutual_information_bits(joint: torch.Tensor) -> float:
    """I(C; A) in bits of a joint distribution table [C, K] (0 when A does not depend on C)."""
    joint = joint / joint.sum()
    pc, pa = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    mask = joint > 0
    return float((joint[mask] * (joint[mask] / (pc @ pa)[mask]).log()).sum() / math.log(2))


def conditional(joint: torch.Tensor) -> torch.Tensor:
    """p(a | c) rows from a joint table; an empty category row stays zero."""
    return joint / joint.sum(1, keepdim=True).clamp(min=1e-12)


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Correlation, NaN when either side is constant (no information either way)."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = (x.norm() * y.norm()).item()
    return float((x * y).sum() / denom) if denom > 1e-12 else float("nan")


def nearest_action(table: torch.Tensor, target: torch.Tensor) -> int:
    """Index of the action-table row closest (L1) to a weight vector: the 'right' action for a category."""
    return int((table.float() - target.float()).abs().sum(-1).argmin())


def style_shares(
    completions: Sequence[str], categories: Sequence[str], order: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per category, the share of answers in each warm-up style (``behaviours.style_of``): what the policy
    learned to do."""
    from maestro_lab.testbed.behaviours import STYLES, style_of

    names = [*STYLES, "other"]
    counts = torch.zeros(len(order), len(names), dtype=torch.float64)
    for completion, category in zip(completions, categories):
        counts[order.index(category), names.index(style_of(completion))] += 1
    return {c: dict(zip(names, map(float, row))) for c, row in zip(order, conditional(counts))}
