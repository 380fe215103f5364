"""Aggregate the per-run results of the comparison into results.md, results.png and CSV files.

``runs.csv`` holds one row per method x seed (final held-out numbers, wall time);
``curves.csv`` every evaluation point of every run; ``results.md`` the mean ± std over seeds
and the Conductor analysis; ``results.png`` the learning curves with ±1 std seed bands.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maestro_lab.testbed.figures import learning_curves
from maestro_lab.testbed.resolution import gap_closure, mean_std

SCALARS = ("true_utility", "length_words", "redundancy")


def _mean_std(values: Sequence[float]) -> str:
    values = [v for v in values if v == v]
    return "{:.3f} ± {:.3f}".format(*mean_std(values)) if values else "–"


def _mean(values: Sequence[float]) -> float:
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def run_row(result: dict[str, Any], categories: Sequence[str]) -> dict[str, Any]:
    final = result["final"]
    row = {
        "method": result["method"],
        "seed": result["seed"],
        "steps": result["steps"],
        "wall_s": round(result["wall_s"], 1),
    }
    row["true_utility_step0"] = result["curve"][0]["true_utility"]
    for key in (
        "true_utility",
        *[f"true_utility/{c}" for c in categories],
        "length_words",
        "length_tokens",
        "redundancy",
    ):
        row[key] = final.get(key, float("nan"))
    for key in ("mi_bits", "mi_bits_soft", "mi_weights_bits"):
        row[key] = final.get(key, "")
    for prefix in ("weights", "styles"):
        for category, shares in final.get(prefix, {}).items():
            row.update({f"{prefix}/{category}/{k}": v for k, v in shares.items()})
    for key, value in final.get("signal", {}).items():
        row[f"signal/{key}"] = value
    for category, probs in final.get("actions", {}).items():
        row.update({f"argmax/{category}/{a}": v for a, v in probs.items()})
    return row


def mean_tables(tables: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Cell-wise mean of category -> name -> value tables (one per seed); empty when a run has none."""
    if not tables or not all(tables):
        return {}
    return {c: {k: _mean([t[c][k] for t in tables]) for k in row} for c, row in tables[0].items()}


def _table_head(title: str, caption: str, first: str, columns: Sequence[str]) -> list[str]:
    return [
        f"### {title}",
        "",
        caption,
        "",
        f"| {first} | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]


def _runs_by_method(results: list[dict[str, Any]], key: str):
    """(method, its runs whose ``final`` has ``key``) in first-seen method order, methods without such runs skipped."""
    for method in dict.fromkeys(r["method"] for r in results):
        runs = [r for r in results if r["method"] == method and key in r["final"]]
        if runs:
            yield method, runs


def table_section(title: str, caption: str, tables: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Method rows, category columns, each cell the category's values joined by '/'."""
    tables = {m: t for m, t in tables.items() if t}
    if not tables:
        return []
    first = next(iter(tables.values()))
    names, categories = list(next(iter(first.values()))), list(first)
    lines = _table_head(title, caption.format(names="/".join(names)), "method", categories)
    for m, t in tables.items():
        lines.append(f"| {m} | " + " | ".join("/".join(f"{t[c][n]:.2f}" for n in names) for c in categories) + " |")
    return lines + [""]


def conductor_section(results: list[dict[str, Any]]) -> list[str]:
    """Per-category action distribution (mean over seeds) and MI, for methods with actions."""
    lines = []
    for method, runs in _runs_by_method(results, "actions"):
        names = runs[0]["final"]["action_names"]
        lines += _table_head(
            f"Conductor actions on held-out prompts: `{method}` ({len(runs)} seeds)",
            "Mean over seeds of mean π(a | h) per category, and in brackets the share of argmax (greedy) actions.",
            "category",
            names,
        )
        for category in runs[0]["final"]["actions"]:
            cells = [
                f"{_mean([r['final']['action_probs'][category][a] for r in runs]):.2f} "
                f"({_mean([r['final']['actions'][category][a] for r in runs]):.2f})"
                for a in names
            ]
            lines.append(f"| {category} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Mutual information I(category; action), bits (max log2(3) = 1.585): argmax actions "
            f"{_mean_std([r['final']['mi_bits'] for r in runs])}, "
            f"action probabilities {_mean_std([r['final']['mi_bits_soft'] for r in runs])}.",
            "",
        ]
        for r in runs:
            per = "; ".join(f"{c}: {max(p, key=p.get)} {max(p.values()):.2f}" for c, p in r["final"]["actions"].items())
            lines.append(f"- seed {r['seed']}: argmax action per category — {per}")
        lines.append("")
    return lines


def meta_section(results: list[dict[str, Any]]) -> list[str]:
    """Per Conductor method: the mean advantage per (category, sampled action), pooled over seeds, and whether
    the method's own meta-reward pushed toward each category's true-weight action."""
    lines = []
    for method, runs in _runs_by_method(results, "meta_reward_by_action"):
        names = runs[0]["final"]["action_names"]
        lines += _table_head(
            f"Training meta-reward by category and sampled action: `{method}`",
            "Mean advantage of training completions by the action sampled for them (what MAESTRO's meta-reward "
            "credits), pooled over steps and seeds; in brackets the number of completions.",
            "category",
            names,
        )
        for category in runs[0]["final"].get("actions") or runs[0]["final"]["meta_reward_by_action"]:
            cells = []
            for a in names:
                pairs = [r["final"]["meta_reward_by_action"].get(category, {}).get(a, [0.0, 0]) for r in runs]
                n = sum(count for _, count in pairs)
                cells.append(f"{sum(m * count for m, count in pairs) / n:+.3f} ({n})" if n else "–")
            lines.append(f"| {category} | " + " | ".join(cells) + " |")
        gaps = [r["final"].get("signal", {}).get("meta_gap", float("nan")) for r in runs]
        shares = [r["final"].get("signal", {}).get("oracle_action_share", float("nan")) for r in runs]
        lines += [
            "",
            "Is the meta-reward informative? Its own meta-reward (the advantage for MAESTRO, "
            "the centred agreement for trusted) of completions whose sampled action is the category's "
            f"true-weight action, minus the others': {_mean_std(gaps)} "
            "(positive = pushed toward the right action). "
            f"Share of sampled actions that were the right one: {_mean_std(shares)} "
            f"(chance {1 / len(names):.2f}).",
            "",
        ]
    return lines


def write_report(
    results: list[dict[str, Any]], out: Path, categories: Sequence[str], header: Sequence[str] = ()
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [run_row(r, categories) for r in results]
    write_csv(out / "runs.csv", rows)
    write_csv(
        out / "curves.csv", [{"method": r["method"], "seed": r["seed"], **p} for r in results for p in r["curve"]]
    )
    methods = list(dict.fromkeys(r["method"] for r in results))
    keys = ["true_utility", *[f"true_utility/{c}" for c in categories]]
    weights = {m: mean_tables([r["final"].get("weights") for r in results if r["method"] == m]) for m in methods}
    learning_curves(
        {m: [{"seed": r["seed"], **p} for r in results if r["method"] == m for p in r["curve"]] for m in methods},
        keys,
        str(out / "results.png"),
        weights if all(weights.values()) else None,
    )

    utility = {m: _mean([row["true_utility"] for row in rows if row["method"] == m]) for m in methods}
    static = next((m for m in ("equal", "static") if m in utility), None)
    cols = ["true utility", *categories, "gap closure", "MI (bits)", "words", "redundancy", "adv–true corr", "seeds"]
    lines = [
        *header,
        "",
        "## Held-out results (mean ± std over seeds)",
        "",
        "| method | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for m in methods:
        mine = [row for row in rows if row["method"] == m]
        closure = (
            gap_closure(utility[m], utility[static], utility["oracle"])
            if static and "oracle" in utility
            else float("nan")
        )
        mi = [row["mi_bits"] if row["mi_bits"] != "" else row["mi_weights_bits"] for row in mine]
        cells = [_mean_std([row[k] for row in mine]) for k in keys]
        cells += [f"{closure:+.2f}", _mean_std([v for v in mi if v != ""])]
        cells += [_mean_std([row[k] for row in mine]) for k in ("length_words", "redundancy", "signal/adv_true_corr")]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {len(mine)} |")
    before = _mean_std([row["true_utility_step0"] for row in rows])
    lines += [
        "",
        f"Before training (step 0, same model for every method): true utility {before}. "
        f"Gap closure = (U − U_{static}) / (U_oracle − U_{static}) of the seed means. MI: I(category; action) of the "
        "Conductor's argmax actions where it has actions, else I(category; the component weighted most).",
        "`words`: mean words per held-out completion; `redundancy`: share of repeated word trigrams (lower is better); "
        "`adv–true corr`: mean over training steps of the correlation between the method's advantages and the "
        "true-utility advantages of the same completions (how well the training signal points at the truth).",
        "",
    ]
    lines += table_section(
        "Evaluation weights per category", "Mean final weight per component (order: {names}), over seeds.", weights
    )
    styles = {m: mean_tables([r["final"].get("styles") for r in results if r["method"] == m]) for m in methods}
    if all(styles.values()):
        lines += table_section(
            "Answer styles per category",
            "Share of held-out answers in each warm-up style ({names}), over seeds.",
            styles,
        )
    lines += conductor_section(results)
    lines += meta_section(results)
    lines += [
        "Raw numbers: `runs.csv` (one row per run), `curves.csv` (every evaluation point); curves: `results.png`.",
        "",
    ]
    (out / "results.md").write_text("\n".join(lines))
