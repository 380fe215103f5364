"""The paper's setup: what the Conductor costs against Equal-Weights, and what ``ppl``'s reference forward costs.

    python perf/paper_overhead.py [--repeats 3 --steps 12 --warmup 2 --threads 1] [--task natural_reasoning]

Both contenders compose the same files as a paper run (base/cpu + models/tiny + rewards/paper +
methods/<m> + tasks/<task>); only the method file differs (``maestro`` = the paper preset,
``equal`` = uniform weights), so the ratio is the Conductor's cost on the five rewards. Rounds
alternate order; ratios are medians of per-round ratios. The task's prompts are in NOVER's
format so that some completions are valid and ``ppl`` runs its forward.

Columns: step time (wall, CPU) and its ratio to ``equal``; ``outer ms`` (the Conductor: choice,
buffering, its update every M steps); ``ppl fwd ms`` = ``time/rewards/reference_nll`` (the one
batched no-grad reference forward, 0 on steps where no completion was valid) and its share of
the step; ``Conductor share`` = (outer ms − equal's outer ms) / equal's wall step, the Conductor's
own cost, free of the completion-length noise below; ``ppl scored`` = share of steps on which
``ppl`` scored any completion; ``fmt`` = mean format validity. Goal: maestro vs equal ≤ 1.03.

The contenders train differently after the first update (different weights, different
completions), so the step-time ratio carries completion-length noise; ``outer ms`` and the
phase shares are each run's own costs.
"""

from __future__ import annotations

import math

import benchutil as bu

METHODS = ("maestro", "equal")


def configs(method: str, task: str) -> list[str]:
    names = ["base/cpu", "models/tiny", "rewards/paper", f"methods/{method}", f"tasks/{task}"]
    return [a for n in names for a in ("--config", f"configs/{n}.yaml")]


def outer(run: dict) -> list[float]:
    return run["phases"]["outer"]


def pooled(runs: list[dict], pick) -> float:
    return bu.median([x for run in runs for x in pick(run)])


def main() -> None:
    parser = bu.harness_parser(__doc__.splitlines()[0], repeats=3, steps=12)
    parser.add_argument(
        "--task", default="natural_reasoning", help="a configs/tasks/ file whose prompts are in NOVER's format"
    )
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = bu.parse_harness_args(parser)

    sets = ["--set", f"model.sampling.max_new_tokens={args.max_new_tokens}"]
    contenders = {
        m: [
            "perf/maestro_run.py",
            *configs(m, args.task),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            *sets,
        ]
        for m in METHODS
    }
    results = bu.alternate(contenders, args.repeats)
    rows = []
    for name, runs in results.items():
        step = bu.pooled_median(runs)
        ppl_fwd = [x for run in runs for x in run["phases"]["rewards/reference_nll"]]
        ppl_share = bu.median(
            [f / s for run in runs for f, s in zip(run["phases"]["rewards/reference_nll"], run["step_s"])]
        )
        scored = sum(not math.isnan(x) for run in runs for x in run["rewards"]["ppl"]) / max(
            1, sum(len(r["rewards"]["ppl"]) for r in runs)
        )
        fmt = sum(x for run in runs for x in run["rewards"]["fmt"]) / max(
            1, sum(len(r["rewards"]["fmt"]) for r in runs)
        )
        rows.append(
            [
                name,
                step,
                bu.paired_ratio(runs, results["equal"]),
                bu.pooled_median(runs, "cpu_s"),
                bu.paired_ratio(runs, results["equal"], "cpu_s"),
                f"{pooled(runs, outer) * 1e3:.2f}",
                f"{100 * (pooled(runs, outer) - pooled(results['equal'], outer)) / bu.pooled_median(results['equal']):.2f} %",  # noqa: E501
                f"{pooled(runs, lambda r: r['phases']['rewards']) * 1e3:.1f}",
                f"{bu.median(ppl_fwd) * 1e3:.1f}",
                f"{100 * ppl_share:.1f} %",
                f"{100 * scored:.0f} %",
                f"{fmt:.2f}",
                pooled(runs, lambda r: r["completion_length"]),
            ]
        )
    print(
        f"\n{bu.today()} · {bu.machine()} · tasks/{args.task} · "
        f"{args.repeats} rounds x {args.steps - args.warmup} timed steps"
    )
    headers = [
        "run",
        "wall s/step",
        "wall vs equal",
        "CPU s/step",
        "CPU vs equal",
        "outer ms",
        "Conductor share",
        "rewards ms",
        "ppl fwd ms",
        "ppl fwd share",
        "ppl scored",
        "fmt",
        "completion len",
    ]
    print(bu.table(headers, rows))


if __name__ == "__main__":
    main()
