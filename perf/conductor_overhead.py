"""What the Conductor costs: MAESTRO vs static-weight GRPO step time on the same config.

    python perf/conductor_overhead.py [--repeats 5 --steps 18 --warmup 3 --threads 1]

``tests/configs/two_rewards.yaml`` (Conductor) against the same file with the scalarizer swapped
for ``StaticWeights`` on the command line, so nothing else can differ. Rounds alternate
order; the ratio is the median of per-round ratios. Also printed: the ``time/outer``
phase (the Conductor's forward + REINFORCE step) and the median completion length. Goal ≤ 1.03.

The two runs train differently (the Conductor changes the weights and draws actions from
the global RNG), so after the first update they generate different completions and the
step-time ratio carries that noise; ``outer ms/step`` is the Conductor's own cost.
"""

from __future__ import annotations

import benchutil as bu

CONFIG = "tests/configs/two_rewards.yaml"
STATIC = [
    "--set",
    "model.scalarizer=maestro_lit.conductor.base.StaticWeights",
    "--set",
    "model.scalarizer.init_args.weights=[0.5,0.5]",
]


def main() -> None:
    parser = bu.harness_parser(__doc__.splitlines()[0], repeats=5, steps=18)
    args = bu.parse_harness_args(parser)

    base = ["perf/maestro_run.py", "--config", CONFIG, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    results = bu.alternate({"maestro": base, "static": [*base, *STATIC]}, args.repeats)
    rows = []
    for name, runs in results.items():
        outer = bu.median([x for run in runs for x in run["phases"]["outer"]])
        length = bu.median([x for run in runs for x in run["completion_length"]])
        rows.append(
            [
                name,
                bu.pooled_median(runs),
                bu.paired_ratio(runs, results["static"]),
                bu.pooled_median(runs, "cpu_s"),
                bu.paired_ratio(runs, results["static"], "cpu_s"),
                f"{outer * 1e3:.2f}",
                length,
            ]
        )
    print(
        f"\n{bu.today()} · {bu.machine()} · {CONFIG} · {args.repeats} rounds x {args.steps - args.warmup} timed steps"
    )
    print(
        bu.table(
            ["run", "wall s/step", "wall vs static", "CPU s/step", "CPU vs static", "outer ms/step", "completion len"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
