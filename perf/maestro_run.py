r"""Child process: train maestro_lit for a few steps from a YAML config and report timings.

    python perf/maestro_run.py --config tests/configs/two_rewards.yaml --config configs/methods/static.yaml \
        --steps 12 --warmup 2 [--set key=value ...]

Runs through ``cli_main`` (the same path as ``python -m maestro_lit fit``), with logger,
checkpointing, progress bar and validation switched off so that only training steps run.
``--max-seconds`` bounds a run on a lent machine: training stops after the step that passes
the budget, so the result may hold fewer than ``--steps - --warmup`` timed steps (it says how many).
Prints one ``RESULT {json}`` line: seconds per step after warm-up, ``time/*`` phases per
step, mean completion length, peak RSS / CUDA memory, and the minibatches per pass (under
``num_minibatches: auto``, the planner's last choice). Used by the other harnesses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning as L

sys.path.insert(0, str(Path(__file__).parent))
from benchutil import StepClock, emit, peak_gpu_mb, peak_rss_mb  # noqa: E402

PHASES = ("rollout", "scoring", "rewards", "inner", "outer")
# parts of a phase above (``ppl``'s reference forward); 0 on steps without it
NESTED_PHASES = ("rewards/reference_nll",)


class StepRecorder(L.Callback):
    """Step-end clock plus the phase times and completion length of each step (from ``last_step``,
    which every step fills, unlike the logged metrics that follow ``log_every_n_steps``)."""

    def __init__(self, max_seconds: float | None = None, min_steps: int = 1) -> None:
        self.clock = StepClock()
        self.max_seconds, self.min_steps = max_seconds, min_steps
        self.phases: dict[str, list[float]] = {p: [] for p in PHASES + NESTED_PHASES}
        self.lengths: list[float] = []
        self.rewards: dict[str, list[float]] = {}  # mean raw score per component per step (NaN = none scored)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.clock.begin()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.clock.end()
        if self.max_seconds is not None and len(self.clock.ends) >= self.min_steps:
            elapsed = self.clock.ends[-1][0] - self.clock.start[0]
            # time budget spent: stop after this step
            trainer.should_stop = trainer.should_stop or elapsed >= self.max_seconds
        step = pl_module.last_step
        for phase in self.phases:
            self.phases[phase].append(float(step.phase_seconds.get(phase, 0.0)))
        self.lengths.append(float(step.completion_lengths.float().mean()))
        for name, column in zip(step.component_names, step.raw_rewards.T):
            self.rewards.setdefault(name, []).append(float(column.nanmean()))


def quiet_args(configs: list[str], steps: int, sets: list[str]) -> list[str]:
    """CLI args: the configs, then overrides that leave only the training steps running."""
    args = [
        "fit",
        *[a for c in configs for a in ("--config", c)],
        f"--trainer.max_steps={steps}",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.callbacks=[]",
        "--standard_callbacks=[]",
    ]
    return args + [f"--{s}" for s in sets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, action="append", help="repeat to compose, like the CLI's --config")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop after the first step that ends past this many seconds of training (at least warm-up + 1 steps run)",
    )
    parser.add_argument(
        "--set", action="append", default=[], help="extra CLI override, e.g. model.grpo_settings.beta=0.04"
    )
    args = parser.parse_args()

    from maestro_lit.cli import cli_main

    cli = cli_main(quiet_args(args.config, args.steps, args.set)[1:], run=False)
    recorder = StepRecorder(args.max_seconds, min_steps=args.warmup + 1)
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    keep = slice(args.warmup, None)
    plan = cli.model.updater.planner.plan
    emit(
        {
            **recorder.clock.result(args.warmup),
            "phases": {p: v[keep] for p, v in recorder.phases.items()},
            "completion_length": recorder.lengths[keep],
            "rewards": {name: values[keep] for name, values in recorder.rewards.items()},
            "peak_rss_mb": peak_rss_mb(),
            "peak_gpu_mb": peak_gpu_mb(),
            "num_minibatches": plan.num_minibatches if plan else cli.model.grpo_settings.num_minibatches,
        }
    )


if __name__ == "__main__":
    main()
