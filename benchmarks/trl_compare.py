"""maestro_lit (static weights) against TRL's GRPOTrainer on the same work: seconds per step.

    pip install -e ".[bench]"      # trl
    python benchmarks/trl_compare.py [--repeats 3 --steps 20 --warmup 3 --threads 1 --beta 0.0]

Each round runs every contender once in a fresh process, order alternating per round;
a run's step time is the median of its post-warm-up optimizer steps, measured inside the
training loop (wall and process-CPU time); a ratio is the median over rounds of
(run / TRL run of the same round), so load that drifts between rounds cancels. Contenders: ``ours`` = ``configs/quickstart_static.yaml`` as shipped
(LoRA not merged for rollout, like TRL), ``ours_merged`` = the same with
``grpo_settings.merge_adapters_for_rollout=true``, ``trl`` = ``benchmarks/trl_run.py``;
with ``--what-if`` also ``ours_merged`` plus changes not yet in the project, patched into
the benchmark child only (``maestro_run.PATCHES``): the fast rollout, lighter logging.
Matched and unmatched settings are listed in ``benchmarks/README.md``.
"""

from __future__ import annotations


import benchutil as bu

CONFIG = "configs/quickstart_static.yaml"


def contenders(steps: int, warmup: int, beta: float, what_if: bool) -> dict[str, list[str]]:
    common = ["--steps", str(steps), "--warmup", str(warmup)]
    ours = ["benchmarks/maestro_run.py", "--config", CONFIG, *common, "--set", f"model.grpo_settings.beta={beta}"]
    merged = [*ours, "--set", "model.grpo_settings.merge_adapters_for_rollout=true"]
    runs = {"ours": ours, "ours_merged": merged}
    if what_if:  # projected: project code patched inside the benchmark child only (see maestro_run.PATCHES)
        runs["ours_merged+fast_rollout"] = [*merged, "--patch", "fast_rollout"]
        runs["ours_merged+fast_rollout+no_log"] = [*merged, "--patch", "fast_rollout", "--patch", "no_log"]
    return {**runs, "trl": ["benchmarks/trl_run.py", *common, "--beta", str(beta)]}


def main() -> None:
    parser = bu.harness_parser(__doc__.splitlines()[0], repeats=3, steps=20)
    parser.add_argument("--beta", type=float, default=0.0)
    parser.add_argument("--what-if", action="store_true", help="add projected variants (fast rollout, lighter logging)")
    args = bu.parse_harness_args(parser)

    results = bu.alternate(contenders(args.steps, args.warmup, args.beta, args.what_if), args.repeats)
    rows = []
    for name, runs in results.items():
        length = bu.median([x for run in runs for x in run["completion_length"]])
        rss = max(run["peak_rss_mb"] for run in runs)
        rows.append([name, bu.pooled_median(runs), bu.paired_ratio(runs, results["trl"]), bu.pooled_median(runs, "cpu_s"),
                     bu.paired_ratio(runs, results["trl"], "cpu_s"), length, f"{rss:.0f}"])  # fmt: skip
    print(f"\n{bu.today()} · {bu.machine()} · B=4 G=4 max_new_tokens=32 beta={args.beta} · "
          f"{args.repeats} rounds x {args.steps - args.warmup} timed steps; ratios = median of per-round ratios")  # fmt: skip
    print(bu.table(["run", "wall s/step", "wall vs TRL", "CPU s/step", "CPU vs TRL", "completion len", "peak RSS MB"], rows))

if __name__ == "__main__":
    main()
