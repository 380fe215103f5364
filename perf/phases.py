"""Where a step's time goes: median seconds per phase (``time/*`` metrics) and peak memory, per config.

    python perf/phases.py [--repeats 2 --steps 15 --warmup 3 --threads 1] [--variant NAME=CONFIG[,key=value...] ...]

Default variants: the three quickstart configs, the MAESTRO one with HF ``generate`` instead
of the project's decode loop, and with β = 0.04 (adds the adapter-off reference forward). ``other`` is step
time minus the five phases: Lightning's loop, ``log_dict``, the data loader, callbacks.
Peak memory is the child process's peak RSS, and ``torch.cuda.max_memory_allocated`` on GPU.
"""

from __future__ import annotations

import benchutil as bu
from maestro_run import PHASES

VARIANTS = {
    "maestro": "tests/configs/two_rewards.yaml",
    "static": "tests/configs/two_rewards.yaml+configs/methods/static.yaml",
    "single": "tests/configs/two_rewards.yaml+configs/methods/single.yaml",
    "maestro+generate": "tests/configs/two_rewards.yaml,model.rollout.engine=generate",
    "maestro+beta": "tests/configs/two_rewards.yaml,model.grpo_settings.beta=0.04",
}


def argv(spec: str, steps: int, warmup: int) -> list[str]:
    config, *sets = spec.split(",")
    return [
        "perf/maestro_run.py",
        *[a for c in config.split("+") for a in ("--config", c)],
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
        *[a for s in sets for a in ("--set", s)],
    ]


def main() -> None:
    parser = bu.harness_parser(__doc__.splitlines()[0], repeats=2, steps=15)
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME=CONFIG[+CONFIG...][,key=value...]; replaces the defaults"
    )
    args = bu.parse_harness_args(parser)
    variants = dict(v.split("=", 1) for v in args.variant) if args.variant else VARIANTS

    results = bu.alternate({name: argv(spec, args.steps, args.warmup) for name, spec in variants.items()}, args.repeats)
    rows = []
    for name, runs in results.items():
        step = bu.median([x for run in runs for x in run["step_s"]])
        phases = [bu.median([x for run in runs for x in run["phases"][p]]) for p in PHASES]
        gpu = max((run["peak_gpu_mb"] or 0) for run in runs)
        rows.append(
            [
                name,
                step,
                *phases,
                step - sum(phases),
                f"{max(run['peak_rss_mb'] for run in runs):.0f}",
                f"{gpu:.0f}" if gpu else "-",
            ]
        )
    print(
        f"\n{bu.today()} · {bu.machine()} · {args.repeats} runs x {args.steps - args.warmup} timed steps each; "
        "medians in seconds"
    )
    print(bu.table(["config", "step", *PHASES, "other", "peak RSS MB", "peak GPU MB"], rows))


if __name__ == "__main__":
    main()
