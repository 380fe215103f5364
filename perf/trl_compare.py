"""maestro_lit (static weights) against TRL's GRPOTrainer on the same work: seconds per step.

    pip install -e ".[bench]"      # trl
    python perf/trl_compare.py [--repeats 3 --steps 20 --warmup 3 --threads 1 --beta 0.0 --log-every 5 --unmerged]

Each round runs every contender once in a fresh process, order alternating per round;
a run's step time is the median of its post-warm-up optimizer steps, measured inside the
training loop (wall and process-CPU time); a ratio is the median over rounds of
(run / TRL run of the same round), so load that drifts between rounds cancels.
Contenders: ``ours`` = ``tests/configs/two_rewards.yaml`` + ``configs/methods/static.yaml`` as shipped
(LoRA merged for the rollout, the project's decode loop), ``ours_generate`` = the same with HF ``generate``
(``model.rollout.engine=generate``), ``trl`` = ``perf/trl_run.py``; with ``--unmerged`` also
``ours_unmerged_generate``, our loop the way TRL runs it (unmerged LoRA, HF ``generate``).
Both sides log metrics every ``--log-every`` steps (default: the config's ``log_every_n_steps``).
Matched and unmatched settings are listed in ``perf/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import benchutil as bu
import yaml

CONFIGS = ["tests/configs/two_rewards.yaml", "configs/methods/static.yaml"]


def config_log_every() -> int:
    return int(yaml.safe_load(Path(CONFIGS[0]).read_text())["trainer"].get("log_every_n_steps", 50))


def contenders(steps: int, warmup: int, beta: float, log_every: int, unmerged: bool) -> dict[str, list[str]]:
    common = ["--steps", str(steps), "--warmup", str(warmup)]
    ours = [
        "perf/maestro_run.py",
        *[a for c in CONFIGS for a in ("--config", c)],
        *common,
        "--set",
        f"model.grpo_settings.beta={beta}",
        "--set",
        f"trainer.log_every_n_steps={log_every}",
    ]
    hf_generate = [*ours, "--set", "model.rollout.engine=generate"]
    runs = {"ours": ours, "ours_generate": hf_generate}
    if unmerged:
        runs["ours_unmerged_generate"] = [*hf_generate, "--set", "model.sampling.merge_adapters_for_rollout=false"]
    return {**runs, "trl": ["perf/trl_run.py", *common, "--beta", str(beta), "--logging-steps", str(log_every)]}


def main() -> None:
    parser = bu.harness_parser(__doc__.splitlines()[0], repeats=3, steps=20)
    parser.add_argument("--beta", type=float, default=0.0)
    parser.add_argument(
        "--log-every", type=int, default=None, help="metric logging cadence for both sides; default: the config's"
    )
    parser.add_argument(
        "--unmerged", action="store_true", help="add ours_unmerged_generate (unmerged LoRA, HF generate: TRL's way)"
    )
    args = bu.parse_harness_args(parser)
    log_every = args.log_every or config_log_every()

    results = bu.alternate(contenders(args.steps, args.warmup, args.beta, log_every, args.unmerged), args.repeats)
    rows = []
    for name, runs in results.items():
        length = bu.median([x for run in runs for x in run["completion_length"]])
        rss = max(run["peak_rss_mb"] for run in runs)
        rows.append(
            [
                name,
                bu.pooled_median(runs),
                bu.paired_ratio(runs, results["trl"]),
                bu.pooled_median(runs, "cpu_s"),
                bu.paired_ratio(runs, results["trl"], "cpu_s"),
                length,
                f"{rss:.0f}",
            ]
        )
    print(
        f"\n{bu.today()} · {bu.machine()} · B=4 G=4 max_new_tokens=32 beta={args.beta} log every {log_every} · "
        f"{args.repeats} rounds x {args.steps - args.warmup} timed steps; ratios = median of per-round ratios"
    )
    print(
        bu.table(
            ["run", "wall s/step", "wall vs TRL", "CPU s/step", "CPU vs TRL", "completion len", "peak RSS MB"], rows
        )
    )


if __name__ == "__main__":
    main()
