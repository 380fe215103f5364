"""``python -m maestro_lit.testbed``: every method x seed on the testbed, then the report.

Runs are made seed-major (all methods for seed 0, then seed 1, ...) so that an interrupted
comparison still compares every method; ``--resume`` reuses finished runs, ``--report-only``
rebuilds the report from what is on disk.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

from maestro_lit.testbed.report import write_report
from maestro_lit.testbed.runner import EXTRA_METHODS, METHODS, TESTBEDS, load_done, paths_for, run_dir, run_one
from maestro_lit.testbed.truth import TrueUtility

DEFAULT_STEPS, DEFAULT_EVAL_EVERY = 500, 50


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m maestro_lit.testbed", description=__doc__)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS + EXTRA_METHODS)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="policy steps per run")
    p.add_argument("--eval-every", type=int, default=DEFAULT_EVAL_EVERY, help="held-out evaluation interval (steps)")
    p.add_argument(
        "--testbed",
        default="v1",
        choices=sorted(TESTBEDS),
        help="v1: assets/testbed (default); v2: assets/testbed_v2, conflicting categories",
    )
    p.add_argument("--out", default=None, help="results folder (default results/testbed, or results/testbed_v2 for --testbed v2)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads; 1 avoids thread thrashing on a shared machine")
    p.add_argument("--smoke", action="store_true", help="2 steps, 1 seed, 8 new tokens: checks the plumbing only")
    p.add_argument("--resume", action="store_true", help="reuse finished runs with the same step count")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from finished runs on disk")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.seeds, args.eval_every = 2, 1, 2
    if args.out is None:
        args.out = "results/testbed" if args.testbed == "v1" else f"results/testbed_{args.testbed}"
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    out, started = Path(args.out), time.perf_counter()
    results = []
    for seed in range(args.seeds):
        for method in args.methods:
            done = load_done(out, method, seed, args.steps) if (args.resume or args.report_only) else None
            if done is None and not args.report_only:
                print(f"[testbed] {method} seed {seed}: {args.steps} steps -> {run_dir(out, method, seed)}", flush=True)
                done = run_one(method, seed, args.steps, args.eval_every, out, args.smoke, args.testbed)
                print(
                    f"[testbed] {method} seed {seed}: true utility {done['final']['true_utility']:.3f} in {done['wall_s']:.0f} s",
                    flush=True,
                )
            if done is not None:
                results.append(done)
    if not results:
        raise SystemExit(f"no finished runs under {out}")
    wall = sum(r["wall_s"] for r in results)
    given = " ".join(argv if argv is not None else sys.argv[1:])
    effective = (
        f"--methods {' '.join(args.methods)} --seeds {args.seeds} --steps {args.steps} --eval-every {args.eval_every} --out {args.out}"
    )
    if args.testbed != "v1":
        effective = f"--testbed {args.testbed} " + effective
    weights_file = paths_for(args.testbed)["weights"]
    truth = TrueUtility(weights_file)
    command = f"python -m maestro_lit.testbed {given}" + (f"` (effective: `{effective}`)" if given != effective else "`")
    header = [
        f"# Testbed{'' if args.testbed == 'v1' else ' ' + args.testbed} comparison: single / static / maestro / oracle", "",
        f"- command: `{command}",
        f"- date: {datetime.date.today().isoformat()}; host: {platform.machine()} CPU, Python {platform.python_version()}",
        f"- {args.steps} policy steps per run, held-out evaluation every {args.eval_every} steps; "
        f"{len(results)} runs, summed run wall time {wall / 60:.1f} min (this invocation: {(time.perf_counter() - started) / 60:.1f} min)",
        f"- true weights (`assets/{weights_file.parent.name}/true_weights.json`): `{json.dumps(truth.spec['weights'])}`",
    ]  # fmt: skip
    write_report(results, out, truth.categories, header)
    print(f"[testbed] wrote {out / 'results.md'}, {out / 'results.png'}, {out / 'runs.csv'}, {out / 'curves.csv'}", flush=True)
    return out


if __name__ == "__main__":
    main()
