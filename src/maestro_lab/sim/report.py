"""results.md for one simulator comparison."""

from __future__ import annotations

from collections.abc import Sequence

from maestro_lab.sim.compare import Summary, action_conditional, mean_weights
from maestro_lab.sim.loop import RunResult, SimConfig
from maestro_lab.sim.methods import CANDIDATES, METHODS
from maestro_lab.sim.world import World, static_check

# world, true weights and SimConfig defaults frozen before the first comparison run
WORLD_FIXED_AT = "2026-11-26 10:03 UTC"


def _pm(x: tuple[float, float], digits: int = 3) -> str:
    return f"{x[0]:.{digits}f} ± {x[1]:.{digits}f}"


def results_markdown(
    summaries: dict[str, Summary],
    results: dict[str, list[RunResult]],
    world: World,
    config: SimConfig,
    seeds: Sequence[int],
    command: str,
    date: str,
    seconds: float,
) -> str:
    check = static_check(world)
    cats = list(world.categories)
    lines = [
        "# Simulator comparison",
        "",
        f"Command: `{command}` — run {date}, {len(seeds)} seeds per method ({seeds[0]}–{seeds[-1]}), "
        f"{seconds:.0f} s in all.",
        f"World and true weights fixed at {WORLD_FIXED_AT}, before the first comparison run.",
        f"Config: {config}.",
        "",
        "No-training check (best single weighting on a 0.1 simplex grid, "
        "each category served by the type it makes best): "
        f"best static utility {check.best_static_utility:.3f} "
        f"at w = {tuple(round(x, 2) for x in check.best_static_weights)}, "
        f"oracle {check.oracle_utility:.3f}; best type per category: {check.best_type_per_category}.",
        "",
        "True utility at the end of training (mean ± std over seeds); "
        "gap closure = (U − U_static)/(U_oracle − U_static); "
        "MI = I(category; action) in bits over the last quarter of training "
        "(argmax weight for methods without actions); "
        "MI type = I(response type; action | category): "
        "how much the action follows the completion's own type beyond its prompt; "
        "length in words and redundancy are the expected response-type features of the final policy.",
        "",
        "| method | U | " + " | ".join(cats) + " | gap closure | MI (bits) | MI type (bits) | length | redundancy |",
        "|---|---|" + "---|" * len(cats) + "---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        per = " | ".join(_pm(s.per_category[c]) for c in cats)
        lines.append(
            f"| {name} | {_pm(s.utility)} | {per} | {s.gap_closure:.2f} | {_pm(s.mi, 2)} | {_pm(s.type_mi, 2)} | "
            f"{_pm(s.length, 0)} | {_pm(s.redundancy)} |"
        )
    lines += ["", "Methods:", ""]
    notes = {n: m.note for n, m in {**METHODS, **CANDIDATES}.items()}
    lines += [f"- `{name}`: {notes.get(name, '')}" for name in summaries]
    lines += ["", "Mean weight on (" + ", ".join(world.components) + ") per category, last quarter of training:", ""]
    lines += ["| method | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
    for name, runs in results.items():
        w = mean_weights(runs)
        lines.append(
            f"| {name} | "
            + " | ".join("(" + ", ".join(f"{x:.2f}" for x in w[i]) + ")" for i in range(len(cats)))
            + " |"
        )
    lines += ["", "Final policy's most likely response type per category (share of seeds):", ""]
    lines += ["| method | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
    for name, runs in results.items():
        cells = []
        for i in range(len(cats)):
            tops = [int(r.type_probs[i].argmax()) for r in runs]
            best = max(set(tops), key=tops.count)
            cells.append(f"{world.type_names[best]} ({tops.count(best)}/{len(tops)})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name in [n for n, runs in results.items() if runs[0].action_names]:
        cond = action_conditional(results[name])
        lines += ["", f"`{name}`: action distribution per category (rows), last quarter, pooled over seeds:", ""]
        lines += ["| category | " + " | ".join(results[name][0].action_names) + " |", "|---|" + "---|" * cond.shape[1]]
        lines += [f"| {c} | " + " | ".join(f"{x:.2f}" for x in cond[i]) + " |" for i, c in enumerate(cats)]
    return "\n".join(lines) + "\n"
