"""What the views show, independent of the logger that shows them.

Pure functions of a ``StepRecord`` (or of pooled counts): the rows of the completion table, the same
table in markdown for loggers that show text, the stacked-bar figure of the Conductor's actions per
prompt category, and the TensorBoard custom-scalars layout that opens a run on its training story.
Each logger adapter (``view_adapters``) turns these into its own table, image or layout.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from maestro_lit.train.records import StepRecord


def _score(value: float) -> float | None:
    """A JSON-safe score: a missing one (NaN) becomes ``None``."""
    value = float(value)
    return value if math.isfinite(value) else None


def completion_rows(record: StepRecord, limit: int | None = None) -> list[dict[str, Any]]:
    """One plain dict per completion (JSON-ready): step, prompt, completion, each component's score
    (``None`` = missing), the scalar reward, the advantage, the Conductor's action and the category."""
    actions, names = record.actions, list(record.action_names)
    count = len(record.completions) if limit is None else min(limit, len(record.completions))
    rows = []
    for i in range(count):
        rows.append(
            {
                "step": int(record.step),
                "prompt": record.prompts[i],
                "completion": record.completions[i],
                "rewards": {n: _score(v) for n, v in zip(record.component_names, record.raw_rewards[i].tolist())},
                "scalar_reward": _score(record.scalar_rewards[i]),
                "advantage": _score(record.advantages[i]),
                "action": names[int(actions[i])] if actions is not None and names else "static",
                "category": None if record.categories is None else record.categories[i],
            }
        )
    return rows


def table_columns(record: StepRecord) -> list[str]:
    """The completion table's columns: prompt, completion, one per component, scalar and action."""
    return ["prompt", "completion", *record.component_names, "scalar", "action"]


def table_cells(row: dict[str, Any]) -> list[Any]:
    """One ``completion_rows`` row as the table's cells (a missing score stays ``None``)."""
    return [row["prompt"], row["completion"], *row["rewards"].values(), row["scalar_reward"], row["action"]]


def _markdown_cell(value: Any) -> str:
    if value is None:
        return "nan"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A markdown table, for loggers that show text but no tables (TensorBoard's TEXT tab)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def completion_table(record: StepRecord, limit: int = 8) -> str:
    """A markdown table of sample completions with their component rewards and chosen action."""
    return markdown_table(table_columns(record), [table_cells(r) for r in completion_rows(record, limit)])


def action_figure(counts: dict[str, Counter], action_names: list[str]):
    """Stacked bars: one bar per prompt category, segments = share of each Conductor action."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    categories = sorted(counts)
    figure = Figure(figsize=(1.6 + 1.1 * len(categories), 3.6), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    bottoms = [0.0] * len(categories)
    for k, name in enumerate(action_names):
        shares = [counts[c][k] / max(sum(counts[c].values()), 1) for c in categories]
        axes.bar(categories, shares, bottom=bottoms, label=name)
        bottoms = [b + s for b, s in zip(bottoms, shares)]
    axes.set_ylim(0, 1)
    axes.set_ylabel("share of completions")
    axes.set_title("Conductor actions by prompt category")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return figure


def _exact(tag: str) -> str:
    """A custom-scalars tag regex that matches ``tag`` only."""
    return "^" + re.escape(tag) + "$"


def _per_category(prefix: str, component: str) -> str:
    """A regex for ``<prefix>/<any category>/weight/<component>``: one line per category in a chart."""
    return f"^{prefix}/[^/]+/weight/{re.escape(component)}$"


def scalar_layout(component_names: list[str]) -> dict[str, dict[str, list]]:
    """TensorBoard's custom-scalars layout (``SummaryWriter.add_custom_scalars``): the training story first.

    Charts are regexes over the scalar tags the module logs (docs/design.md §1 step 8), so they
    fill in whatever categories the data has: the reward components and the scalar reward, KL and
    the learning rate, the Conductor's mean weight per component, and for each component its weight
    per prompt category over steps, in training and in validation (the paper's Figure 3 as curves).
    """
    story: dict[str, list] = {
        "reward components": ["Multiline", ["^train/reward/[^/]+$"]],
        "scalar reward": ["Multiline", [_exact("train/scalar_reward")]],
        "KL to the reference": ["Multiline", [_exact("train/kl")]],
        "learning rate": ["Multiline", [_exact("train/lr")]],
        "Conductor weights": ["Multiline", ["^conductor/weight/[^/]+$"]],
        "validation rewards": ["Multiline", ["^val/reward/[^/]+$"]],
    }
    per_category = {
        f"weight of {n} per category": ["Multiline", [_per_category("conductor", n)]] for n in component_names
    }
    per_category_val = {
        f"weight of {n} per category (validation)": ["Multiline", [_per_category("val/conductor", n)]]
        for n in component_names
    }
    return {
        "1. training story": story,
        "2. Conductor weights per category": per_category,
        "3. Conductor weights per category (validation)": per_category_val,
    }
