"""Aggregating per-item judgements: pairwise win rates (ties = half) and the AlpacaEval
length-controlled variant.

Outcomes are from the evaluated model's side: 1 win, 0.5 tie, 0 loss, ``None`` failed
(unparseable judge reply). Failed items are left out of the rate and counted separately.

Length control, our simple reading of AlpacaEval 2.0 (Dubois et al. 2024): AlpacaEval fits a
GLM with a model term, a length term ``tanh(len diff / std)`` and an instruction term, then
predicts the win rate with the length difference set to zero. With one model against one
baseline we fit ``logit P(win) = a + b * tanh((len_model - len_ref) / std)`` by L2-regularised
logistic regression (ties are soft targets of 0.5, lengths in characters, no instruction
term) and report ``100 * sigmoid(a)``: the win rate of an answer as long as the reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch

Outcome = Optional[float]


def outcome_from_scores(model_score: float, baseline_score: float, tie_margin: float = 0.0) -> float:
    """1 / 0.5 / 0 by comparing two scalar scores; within ``tie_margin`` is a tie."""
    diff = model_score - baseline_score
    if abs(diff) <= tie_margin:
        return 0.5
    return 1.0 if diff > 0 else 0.0


def valid(outcomes: Sequence[Outcome]) -> list[float]:
    return [float(o) for o in outcomes if o is not None and not math.isnan(o)]


def win_rate(outcomes: Sequence[Outcome]) -> tuple[float, int]:
    """(win rate in percent, failed count); ties count half. NaN when nothing parsed."""
    ok = valid(outcomes)
    failed = len(outcomes) - len(ok)
    return (100.0 * sum(ok) / len(ok) if ok else float("nan")), failed


def mean_or_nan(values: Sequence[Optional[float]]) -> float:
    ok = valid(values)
    return sum(ok) / len(ok) if ok else float("nan")


def length_controlled_win_rate(
    outcomes: Sequence[Outcome],
    model_lengths: Sequence[int],
    reference_lengths: Sequence[int],
    l2: float = 1e-2,
    steps: int = 50,
) -> float:
    """Win rate (percent) predicted at zero length difference; see module docstring."""
    rows = [
        (o, m - r) for o, m, r in zip(outcomes, model_lengths, reference_lengths) if o is not None and not math.isnan(o)
    ]
    if not rows:
        return float("nan")
    y = torch.tensor([o for o, _ in rows], dtype=torch.float64)
    diff = torch.tensor([d for _, d in rows], dtype=torch.float64)
    std = diff.std(unbiased=False) if len(rows) > 1 else torch.tensor(0.0, dtype=torch.float64)
    feature = torch.tanh(diff / std) if std > 0 else torch.zeros_like(diff)
    x = torch.stack([torch.ones_like(feature), feature], dim=1)
    theta = torch.zeros(2, dtype=torch.float64)
    # Newton's method on the ridge-penalised log-loss: two parameters, converges in a few steps.
    for _ in range(steps):
        p = torch.sigmoid(x @ theta)
        grad = x.T @ (p - y) / len(rows) + l2 * theta
        hess = (x.T * (p * (1 - p))) @ x / len(rows) + l2 * torch.eye(2, dtype=torch.float64)
        step = torch.linalg.solve(hess, grad)
        theta = theta - step
        if step.abs().max() < 1e-10:
            break
    return float(100.0 * torch.sigmoid(theta[0]))
