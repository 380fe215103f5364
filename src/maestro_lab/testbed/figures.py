"""Matplotlib figures: the Conductor's per-category action distribution and the learning curves.

Agg backend, so figures render on a headless CPU box and in TensorBoard.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def action_figure(probs: dict[str, dict[str, float]], argmax: dict[str, dict[str, float]], mi_bits: float):
    """Grouped bars: for each category, mean π(a | h) (solid) and the share of argmax actions (hatched)."""
    categories = list(probs)
    actions = list(next(iter(probs.values())))
    x, width = np.arange(len(categories)), 0.8 / max(len(actions), 1)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, a in enumerate(actions):
        ax.bar(x + k * width, [probs[c][a] for c in categories], width, label=a, color=f"C{k}")
        ax.bar(x + k * width, [argmax[c][a] for c in categories], width * 0.35, color="none", edgecolor="k", hatch="//")
    ax.set_xticks(x + width * (len(actions) - 1) / 2, categories)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share")
    ax.set_title(
        f"Conductor actions on held-out prompts (bars: mean prob, hatched: argmax); MI={mi_bits:.3f} bits", fontsize=8
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def learning_curves(
    curves: dict[str, list[dict[str, float]]],
    keys: Sequence[str],
    path: str,
    weights: dict[str, dict[str, dict[str, float]]] | None = None,
) -> None:
    """One panel per key; per method the mean over seeds with a ±1 std band. ``curves``: method -> rows
    with ``seed``, ``step`` and the keys. ``weights`` (method -> category -> component -> mean final
    evaluation weight) adds a second row: the weights each method puts on each component, per category."""
    rows = 2 if weights else 1
    fig, axes = plt.subplots(rows, len(keys), figsize=(4 * len(keys), 3.4 * rows), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for k, (method, points) in enumerate(curves.items()):
            steps = sorted({r["step"] for r in points})
            values = [[r[key] for r in points if r["step"] == s] for s in steps]
            mean = np.array([np.mean(v) for v in values])
            std = np.array([np.std(v) for v in values])
            ax.plot(steps, mean, label=method, color=f"C{k}")
            ax.fill_between(steps, mean - std, mean + std, color=f"C{k}", alpha=0.2)
        ax.set_title(key.replace("true_utility", "true utility"), fontsize=9)
        ax.set_xlabel("policy step")
    axes[0][0].legend(fontsize=8)
    if weights:
        _weight_panels(axes[1], weights)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _weight_panels(axes, weights: dict[str, dict[str, dict[str, float]]]) -> None:
    """Per category a panel of stacked bars: one bar per method, split by component weight."""
    methods = list(weights)
    categories = list(next(iter(weights.values())))
    components = list(next(iter(next(iter(weights.values())).values())))
    for ax in axes[len(categories) :]:
        ax.axis("off")
    for ax, category in zip(axes, categories):
        bottom = np.zeros(len(methods))
        for k, component in enumerate(components):
            heights = np.array([weights[m][category].get(component, 0.0) for m in methods])
            ax.bar(range(len(methods)), heights, bottom=bottom, label=component, color=f"C{k}", alpha=0.8)
            bottom += heights
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(f"evaluation weights: {category}", fontsize=9)
    axes[0].legend(fontsize=7)
