"""``python -m maestro_lab.testbed``: every method x seed on the testbed, then the report.

Runs are made seed-major (all methods for seed 0, then seed 1, ...) so that an interrupted
comparison still compares every method; ``--resume`` reuses finished runs, ``--report-only``
rebuilds the report from what is on disk.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from maestro_lab.testbed.report import write_report
from maestro_lab.testbed.resolution import Resolution, resolution
from maestro_lab.testbed.runner import (
    EXTRA_METHODS,
    METHODS,
    TESTBEDS,
    V3_PRESETS,
    load_done,
    paths_for,
    run_dir,
    run_one_threaded,
)
from maestro_lab.testbed.truth import TrueUtility

DEFAULT_STEPS, DEFAULT_EVAL_EVERY = 500, 50
V3_STEPS, V3_EVAL_EVERY = 150, 25  # v3: 8 completions per prompt, a faster policy lr; 24 runs in ~35 min with --jobs 2


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m maestro_lab.testbed", description=__doc__)
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        choices=sorted({*METHODS, *EXTRA_METHODS, *V3_PRESETS}),
        help="default: single static maestro oracle (v1, v2); every v3 method (v3)",
    )
    p.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1")
    p.add_argument(
        "--steps", type=int, default=None, help=f"policy steps per run (default {DEFAULT_STEPS}; v3: {V3_STEPS})"
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help=f"held-out evaluation interval (default {DEFAULT_EVAL_EVERY}; v3: {V3_EVAL_EVERY})",
    )
    p.add_argument(
        "--testbed",
        default="v1",
        choices=sorted(TESTBEDS),
        help=(
            "v1: assets/testbed (default); v2: assets/testbed_v2, conflicting categories; "
            "v3: assets/testbed_v3, a policy that can explore"
        ),
    )
    p.add_argument(
        "--out",
        default=None,
        help="results folder (default results/testbed, or results/testbed_<v> for --testbed v2/v3)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads per run; 1 avoids thread thrashing on a shared machine",
    )
    p.add_argument(
        "--jobs", type=int, default=1, help="runs at a time, each in its own process (e.g. 2 on a 2-core machine)"
    )
    p.add_argument("--smoke", action="store_true", help="2 steps, 1 seed, 8 new tokens: checks the plumbing only")
    p.add_argument("--resume", action="store_true", help="reuse finished runs with the same step count")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from finished runs on disk")
    args = p.parse_args(argv)
    v3 = args.testbed == "v3"
    args.steps = args.steps or (V3_STEPS if v3 else DEFAULT_STEPS)
    args.eval_every = args.eval_every or (V3_EVAL_EVERY if v3 else DEFAULT_EVAL_EVERY)
    if args.methods is None:
        args.methods = list(V3_PRESETS) if args.testbed == "v3" else list(METHODS)
    if args.smoke:
        args.steps, args.seeds, args.eval_every = 2, 1, 2
    if args.out is None:
        args.out = "results/testbed" if args.testbed == "v1" else f"results/testbed_{args.testbed}"
    return args


def run_all(
    pairs: list[tuple[str, int]], args: argparse.Namespace, out: Path, done_before: Sequence[dict] = ()
) -> list[dict]:
    """Finished runs of (method, seed) pairs, ``args.jobs`` at a time; ``done_before`` (this invocation's resolution
    check) and, with --resume/--report-only, runs on disk are reused."""
    results: dict[tuple[str, int], dict] = {(r["method"], r["seed"]): r for r in done_before}
    todo = []
    for method, seed in pairs:
        if (method, seed) in results:
            continue
        done = load_done(out, method, seed, args.steps) if (args.resume or args.report_only) else None
        if done is not None:
            results[method, seed] = done
        elif not args.report_only:
            todo.append((method, seed))
    run_args = lambda m, s: (m, s, args.steps, args.eval_every, out, args.smoke, args.testbed, args.threads)  # noqa: E731
    if args.jobs <= 1:
        for method, seed in todo:
            print(f"[testbed] {method} seed {seed}: {args.steps} steps -> {run_dir(out, method, seed)}", flush=True)
            results[method, seed] = _report(run_one_threaded(*run_args(method, seed)))
    elif todo:
        print(f"[testbed] {len(todo)} runs, {args.jobs} at a time, {args.steps} steps each -> {out}/runs", flush=True)
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_one_threaded, *run_args(m, s)) for m, s in todo]
            for future in as_completed(futures):
                result = _report(future.result())
                results[result["method"], result["seed"]] = result
    return [results[pair] for pair in pairs if pair in results]


def _report(done: dict) -> dict:
    print(
        f"[testbed] {done['method']} seed {done['seed']}: "
        f"true utility {done['final']['true_utility']:.3f} in {done['wall_s']:.0f} s",
        flush=True,
    )
    return done


def check_resolution(args: argparse.Namespace, out: Path) -> tuple[Resolution, list[dict]]:
    """v3: oracle and static (equal) weights on every seed first; stop unless the oracle leads by ≥ 5 seed stds.
    Returns the check and its runs (the comparison reuses them)."""
    # only v3 runs the check
    runs = run_all([(m, s) for s in range(args.seeds) for m in ("oracle", "equal")], args, out)
    check = resolution(
        [r["final"]["true_utility"] for r in runs if r["method"] == "oracle"],
        [r["final"]["true_utility"] for r in runs if r["method"] == "equal"],
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "resolution.md").write_text(
        f"# Resolution check ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {args.seeds} seeds)\n\n"
        f"{check.describe()}\n"
    )
    print(f"[testbed] resolution: {check.describe()}", flush=True)
    if not check.passed and not args.smoke:
        raise SystemExit(
            f"[testbed] resolution check failed ({out / 'resolution.md'}): "
            "the comparison would not resolve methods; not running it"
        )
    return check, runs


def main(argv: list[str] | None = None) -> Path:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    out, started = Path(args.out), time.perf_counter()
    check, checked = check_resolution(args, out) if args.testbed == "v3" and not args.report_only else (None, [])
    results = run_all([(m, s) for s in range(args.seeds) for m in args.methods], args, out, checked)
    if not results:
        raise SystemExit(f"no finished runs under {out}")
    wall = sum(r["wall_s"] for r in results)
    given = " ".join(argv if argv is not None else sys.argv[1:])
    effective = (
        f"--methods {' '.join(args.methods)} --seeds {args.seeds} --steps {args.steps} "
        f"--eval-every {args.eval_every} --out {args.out}"
    )
    if args.testbed != "v1":
        effective = f"--testbed {args.testbed} " + effective
    weights_file = paths_for(args.testbed)["weights"]
    truth = TrueUtility(weights_file)
    command = f"python -m maestro_lab.testbed {given}" + (
        f"` (effective: `{effective}`)" if given != effective else "`"
    )
    header = [
        f"# Testbed{'' if args.testbed == 'v1' else ' ' + args.testbed} comparison: {' / '.join(args.methods)}",
        "",
        f"- command: `{command}",
        f"- date: {datetime.date.today().isoformat()}; "
        f"host: {platform.machine()} CPU, Python {platform.python_version()}",
        f"- {args.steps} policy steps per run, held-out evaluation every {args.eval_every} steps; "
        f"{len(results)} runs, summed run wall time {wall / 60:.1f} min "
        f"(this invocation: {(time.perf_counter() - started) / 60:.1f} min)",
        f"- true weights (`assets/{weights_file.parent.name}/true_weights.json`): "
        f"`{json.dumps(truth.spec['weights'])}`",
    ]
    if check is not None:
        header.append(f"- resolution check (before the comparison, `resolution.md`): {check.describe()}")
    elif (out / "resolution.md").is_file():  # --report-only: the check that ran with the comparison
        header.append(
            f"- resolution check (`resolution.md`): {(out / 'resolution.md').read_text().strip().splitlines()[-1]}"
        )
    write_report(results, out, truth.categories, header)
    print(
        f"[testbed] wrote {out / 'results.md'}, {out / 'results.png'}, {out / 'runs.csv'}, {out / 'curves.csv'}",
        flush=True,
    )
    return out


if __name__ == "__main__":
    main()
