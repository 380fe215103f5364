"""python -m maestro_lab.sim --seeds 20 --out results/sim: results.md, results.csv, curves.csv, figure.png."""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

from maestro_lab.sim.compare import compare, summarise, write_csv
from maestro_lab.sim.figure import plot
from maestro_lab.sim.loop import SimConfig
from maestro_lab.sim.methods import ALIASES, CANDIDATES, METHODS
from maestro_lab.sim.report import results_markdown
from maestro_lab.sim.world import build_world


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m maestro_lab.sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=20, help="seeds per method (0..N-1)")
    parser.add_argument(
        "--methods", nargs="+", default=[*METHODS, *CANDIDATES], choices=[*METHODS, *CANDIDATES, *ALIASES]
    )
    parser.add_argument("--steps", type=int, default=SimConfig.steps)
    parser.add_argument("--out", type=Path, default=Path("results/sim"))
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    world, config, seeds = build_world(), SimConfig(steps=args.steps), list(range(args.seeds))
    started = time.time()
    results = compare(
        [{**METHODS, **CANDIDATES}[ALIASES.get(m, m)] for m in args.methods],
        seeds,
        world,
        config,
        progress=lambda name, runs: print(f"{name}: {sum(r.utility for r in runs) / len(runs):.3f}", flush=True),
    )
    summaries = summarise(results, world)
    write_csv(results, world, args.out)
    plot(results, world, args.out / "figure.png")
    command = "python -m maestro_lab.sim " + " ".join(sys.argv[1:] if argv is None else argv)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = results_markdown(summaries, results, world, config, seeds, command, date, time.time() - started)
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
