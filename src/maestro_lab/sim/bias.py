"""The meta-reward's bias in the simulator: ``python -m maestro_lab.sim.bias --seeds 20 --out results/sim_bias``.

Two experiments, designed before their first run (docs/results.md, "The meta-reward's bias"):

- **A, the null world**: the paper's five components carry no information about utility (drawn independently of
  the response type), but format validity differs by category. Does the paper preset learn category-dependent
  actions anyway (MI between category and action; weights per category, the picture of the paper's Fig. 3)?
- **B, the default world** (``world.py``): the paper preset under paper-literal, ``paper.yaml``'s and centred
  normalisations beside equal weights, the trusted Conductor and the oracle: true utility and gap closure.

``--experiments control`` runs A's Conductors in a null world whose categories all fail the format at the same
rate: what the pooled MI is when nothing but random drift can tie actions to categories.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from maestro_lab.sim.compare import action_conditional, compare, mean_weights, mi_bits, summarise, type_mi_bits
from maestro_lab.sim.loop import RunResult, SimConfig
from maestro_lab.sim.methods import METHODS, Method
from maestro_lab.sim.world import World, build_world
from maestro_lab.testbed.metrics import mutual_information_bits

PAPER_COMPONENTS = ("ppl", "fmt", "ent", "len", "pref")
FORMAT_FAILURE_RATES = {"reasoning": 0.05, "explain": 0.15, "chat": 0.30, "creative": 0.45}
# The control: every category fails at the mean rate, so no category can be told apart by its failures.
CONTROL_FAILURE_RATES = dict.fromkeys(
    FORMAT_FAILURE_RATES, sum(FORMAT_FAILURE_RATES.values()) / len(FORMAT_FAILURE_RATES)
)

# The three normalisation sets over (ppl, fmt, ent, len, pref): the rewards files' modes.
NULL_WORLD_NORMALIZATIONS = {
    "paper_literal": ("rank", "none", "rank", "none", "none"),
    "paper_yaml": ("rank", "zscore", "rank", "zscore", "zscore"),
    "centered": ("rank_centered", "zscore", "rank_centered", "zscore", "zscore"),
}
# The same three over the default world's (detail, brevity, format, preference): detail plays ppl.
DEFAULT_WORLD_NORMALIZATIONS = {
    "paper_literal": ("rank", "none", "none", "none"),
    "paper_yaml": ("rank", "zscore", "zscore", "zscore"),
    "centered": ("rank_centered", "zscore", "zscore", "zscore"),
}


@dataclass
class NullFormatWorld(World):
    """Scores independent of the response type; a completion fails the format with its category's rate.

    ``ppl`` N(0, 1) if valid, else NaN; ``fmt`` 1/0; ``ent`` N(0, 1); ``len`` U(0, 1) if valid, else 0; ``pref``
    N(0, 1). True utility 0 everywhere: nothing here can teach which trade-off a category wants.
    """

    failure_rates: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # [C]

    def scores(
        self, types: torch.Tensor, generator: torch.Generator | None = None, categories: torch.Tensor | None = None
    ) -> torch.Tensor:
        if categories is None:
            raise ValueError("NullFormatWorld.scores needs each completion's category")
        n = types.shape[0]
        valid = torch.rand(n, generator=generator) >= self.failure_rates[categories]
        nan = torch.full((n,), float("nan"))
        ppl = torch.where(valid, torch.randn(n, generator=generator), nan)
        fmt = valid.float()
        ent = torch.randn(n, generator=generator)
        length = torch.where(valid, torch.rand(n, generator=generator), torch.zeros(n))
        pref = torch.randn(n, generator=generator)
        return torch.stack([ppl, fmt, ent, length, pref], dim=-1)


def build_null_world(
    hidden_size: int = 32, embed_seed: int = 1234, failure_rates: dict[str, float] | None = None
) -> NullFormatWorld:
    """The null world; ``failure_rates`` (category → rate) defaults to ``FORMAT_FAILURE_RATES``."""
    rates = FORMAT_FAILURE_RATES if failure_rates is None else failure_rates
    base = build_world(hidden_size=hidden_size, embed_seed=embed_seed)  # its types and type embeddings
    c, k = len(rates), len(PAPER_COMPONENTS)
    g = torch.Generator().manual_seed(embed_seed + 1)
    return NullFormatWorld(
        categories=tuple(rates),
        components=PAPER_COMPONENTS,
        types=base.types,
        means=torch.zeros(len(base.types), k),
        true_weights=torch.zeros(c, k),
        noise=0.0,
        hidden_size=hidden_size,
        embed_category=torch.randn(c, hidden_size, generator=g),
        embed_type=base.embed_type,
        failure_rates=torch.tensor(list(rates.values())),
    )


def maestro_with(normalizations: dict[str, tuple[str, ...]]) -> list[Method]:
    """The paper preset (sim lr) under each normalisation set."""
    paper = METHODS["maestro"]
    return [
        Method(f"maestro/{name}", paper.model, note=f"{paper.note}; normalisations {modes}", normalizations=modes)
        for name, modes in normalizations.items()
    ]


def default_world_methods() -> list[Method]:
    today = DEFAULT_WORLD_NORMALIZATIONS["paper_yaml"]
    others = [METHODS[name] for name in ("equal", "trusted", "oracle")]
    return maestro_with(DEFAULT_WORLD_NORMALIZATIONS) + [
        Method(m.name, m.model, m.trusted_share, m.keep_file_lr, m.note, normalizations=today) for m in others
    ]


def pooled_mi_bits(runs: list[RunResult]) -> float:
    """I(category; action) of the (category, action) counts summed over seeds: the part every seed shares.

    A Conductor whose head drifts at random gives each seed its own category preferences (MI per run > 0); only
    a systematic pull, the same in every seed, survives the pooling."""
    return mutual_information_bits(torch.stack([r.action_joint for r in runs]).sum(0).double())


def unscaled(methods: list[Method]) -> list[Method]:
    """The same methods with ``scale_rewards: none``: advantages centred, not divided by the group's std."""
    return [
        Method(f"{m.name}+unscaled", m.model, m.trusted_share, m.keep_file_lr, m.note, m.normalizations, "none")
        for m in methods
    ]


LABEL_FRACTIONS = (0.05, 0.10, 0.25, 0.50)


def fraction_methods() -> list[Method]:
    """``trusted`` with each labelled share, beside ``equal`` and ``oracle`` (the gap's ends); z-score for all."""
    trusted = METHODS["trusted"]
    sweep = [
        Method(f"trusted/{share:.0%}", trusted.model, share, note=f"TrustedConductor, {share:.0%} of prompts labelled")
        for share in LABEL_FRACTIONS
    ]
    return [METHODS["equal"], *sweep, METHODS["oracle"]]


def fractions_markdown(results: dict[str, list[RunResult]], world: World) -> list[str]:
    summaries = summarise(results, world)
    lines = [
        "### C. Label fraction: the trusted Conductor against the share of prompts with a trusted score",
        "",
        "| method | U | gap closure | MI cat (bits) |",
        "|---|---|---|---|",
    ]
    for name, s in summaries.items():
        lines.append(f"| {name} | {s.utility[0]:.3f} ± {s.utility[1]:.3f} | {s.gap_closure:.2f} | {s.mi[0]:.2f} |")
    return lines


def _pm(values: list[float], digits: int = 3) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {std:.{digits}f}"


def null_world_markdown(
    results: dict[str, list[RunResult]], world: NullFormatWorld, title: str = "A. Null world"
) -> list[str]:
    cats = list(world.categories)
    rates = ", ".join(f"{c} {float(r):.1%}" for c, r in zip(cats, world.failure_rates))
    lines = [
        f"### {title} (format failures: {rates})",
        "",
        "| normalisation | MI category–action, per run (bits) | MI pooled over seeds (bits) | "
        "MI type–action \\| category (bits) |",
        "|---|---|---|---|",
    ]
    for name, runs in results.items():
        per_run, types = _pm([mi_bits(r) for r in runs]), _pm([type_mi_bits(r) for r in runs])
        lines.append(f"| {name} | {per_run} | {pooled_mi_bits(runs):.3f} | {types} |")
    for name, runs in results.items():
        cond, w = action_conditional(runs), mean_weights(runs)
        lines += ["", f"`{name}`: action share per category (last quarter, pooled over seeds) and mean weights", ""]
        lines += ["| category | " + " | ".join(runs[0].action_names) + " |", "|---|" + "---|" * cond.shape[1]]
        lines += [f"| {c} | " + " | ".join(f"{x:.3f}" for x in cond[i]) + " |" for i, c in enumerate(cats)]
        lines.append("| mean weight, all | " + " | ".join(f"{x:.3f}" for x in w.mean(0)) + " |")
    return lines


def default_world_markdown(results: dict[str, list[RunResult]], world: World) -> list[str]:
    summaries = summarise(results, world)
    cats = list(world.categories)
    lines = [
        "### B. Default world: six methods",
        "",
        "| method | U | " + " | ".join(cats) + " | gap closure | MI cat (bits) | MI cat pooled | MI type (bits) |",
        "|---|---|" + "---|" * len(cats) + "---|---|---|---|",
    ]
    for name, s in summaries.items():
        per = " | ".join(f"{s.per_category[c][0]:.3f}" for c in cats)
        lines.append(
            f"| {name} | {s.utility[0]:.3f} ± {s.utility[1]:.3f} | {per} | {s.gap_closure:.2f} | "
            f"{s.mi[0]:.2f} | {pooled_mi_bits(results[name]):.2f} | {s.type_mi[0]:.2f} |"
        )
    for name in [n for n in results if n.startswith("maestro/")]:
        cond = action_conditional(results[name])
        lines += ["", f"`{name}`: action share per category, last quarter, pooled over seeds:", ""]
        lines += ["| category | " + " | ".join(results[name][0].action_names) + " |", "|---|" + "---|" * cond.shape[1]]
        lines += [f"| {c} | " + " | ".join(f"{x:.2f}" for x in cond[i]) + " |" for i, c in enumerate(cats)]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m maestro_lab.sim.bias", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per method (0..N-1)")
    parser.add_argument("--steps", type=int, default=SimConfig.steps)
    parser.add_argument(
        "--experiments",
        nargs="+",
        default=["null", "default"],
        choices=["null", "default", "fractions", "unscaled", "control"],
    )
    parser.add_argument("--out", type=Path, default=Path("results/sim_bias"))
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    torch.set_num_threads(1)
    config, seeds, started = SimConfig(steps=args.steps), list(range(args.seeds)), time.time()
    lines: list[str] = []
    progress = lambda name, runs: print(f"{name}: {statistics.fmean(mi_bits(r) for r in runs):.3f} bits", flush=True)  # noqa: E731
    if "null" in args.experiments:
        world = build_null_world()
        lines += null_world_markdown(
            compare(maestro_with(NULL_WORLD_NORMALIZATIONS), seeds, world, config, progress), world
        )
    if "default" in args.experiments:
        world = build_world()
        lines += [""] + default_world_markdown(compare(default_world_methods(), seeds, world, config, progress), world)
    if "unscaled" in args.experiments:  # added after A and B had run: centring without the group-std division
        world = build_null_world()
        methods = unscaled(maestro_with({k: NULL_WORLD_NORMALIZATIONS[k] for k in ("paper_yaml", "centered")}))
        lines += [""] + null_world_markdown(compare(methods, seeds, world, config, progress), world)
        world = build_world()
        methods = unscaled(maestro_with({k: DEFAULT_WORLD_NORMALIZATIONS[k] for k in ("paper_yaml", "centered")}))
        lines += [""] + default_world_markdown(compare(methods, seeds, world, config, progress), world)
    if "control" in args.experiments:  # added after A-C had run: the pooled MI's floor for drifting Conductors
        world = build_null_world(failure_rates=CONTROL_FAILURE_RATES)
        methods = maestro_with(NULL_WORLD_NORMALIZATIONS) + unscaled(
            maestro_with({k: NULL_WORLD_NORMALIZATIONS[k] for k in ("paper_yaml", "centered")})
        )
        title = "Control null world, one failure rate for every category"
        lines += [""] + null_world_markdown(compare(methods, seeds, world, config, progress), world, title)
    if "fractions" in args.experiments:
        world = build_world()
        lines += [""] + fractions_markdown(compare(fraction_methods(), seeds, world, config, progress), world)
    command = "python -m maestro_lab.sim.bias " + " ".join(sys.argv[1:] if argv is None else argv)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# The meta-reward's bias in the simulator",
        "",
        f"Command: `{command}`, run {date}, {len(seeds)} seeds, {time.time() - started:.0f} s. Config: {config}.",
        "",
    ]
    text = "\n".join(head + lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
