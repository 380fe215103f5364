"""The end-of-run summary: what a finished ``fit`` tells the user, printed after the last progress bar (by the CLI)
and saved as ``summary.md`` in the run folder.

Why: a run otherwise ends on progress bars, and the user is left to find the run folder, the checkpoint, the task
table and the Conductor's choices. The summary names the run folder and the last checkpoint, shows the headline
training metrics first → last, the paper tasks' latest evaluation (the ``compare`` cells, read from the run's
``benchmarks.csv``), the scalariser's
mean weight per reward and prompt category, and the ``tensorboard --logdir …`` command.

"First" and "last" are means over the first and the last ``window`` training steps (10 by default): one step's
8-64 completions are too few to read a trend from. The first window is checkpointed, so a resumed run still
compares against the run's start. The weights are the training choices (sampled, as the policy was trained on
them), averaged over the last window; the paper's Figure 3 uses the evaluation weights, logged as
``val/conductor/<category>/weight/<reward>``.

A ``summary.md`` that this callback did not write (it starts with another line) is left alone; the text is then
only printed.
"""

from __future__ import annotations

import math
import os
from collections import deque
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from maestro_lit import atomic_io
from maestro_lit.data.task_specs import TASKS
from maestro_lit.evals.compare import cell, read_benchmarks
from maestro_lit.evals.report import CSV_NAME

FILE_NAME = "summary.md"
TITLE = "# Run summary"
SCALAR, LENGTH, COMPONENT = "train/scalar_reward", "train/completion_length", "train/reward/"  # TensorBoard's tags
NO_CATEGORY = "(none)"


def shown_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working folder when it lies below it (shorter to read and to paste), else absolute."""
    absolute = Path(path).expanduser().absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4g}"


def _steps(window: list[dict[str, Any]]) -> str:
    first, last = window[0]["step"], window[-1]["step"]
    return f"step {first}" if first == last else f"steps {first}-{last}"


def step_means(record: Any) -> dict[str, Any]:
    """The headline numbers of one ``StepRecord``: scalar reward, each component's mean score, completion length."""
    values = {SCALAR: float(torch.nanmean(record.scalar_rewards.float()))}
    for m, name in enumerate(record.component_names):
        values[COMPONENT + name] = float(torch.nanmean(record.raw_rewards[:, m].float()))
    values[LENGTH] = float(record.completion_lengths.float().mean())
    return {"step": int(record.step), "values": values}


def step_weights(record: Any) -> dict[str, Any]:
    """Sums of the scalariser's weights per prompt category in one step, and the rows counted."""
    weights = record.choice.weights.detach().float().cpu()
    categories = record.categories or [None] * weights.shape[0]
    sums: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for row, category in zip(weights, categories):
        key = NO_CATEGORY if category is None else str(category)
        sums[key] = [a + float(b) for a, b in zip(sums.get(key, [0.0] * len(row)), row)]
        counts[key] = counts.get(key, 0) + 1
    return {"step": int(record.step), "names": list(record.component_names), "sums": sums, "counts": counts}


def split_windows(
    first: list[dict[str, Any]], last: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first and last windows without a shared step: when the run is shorter than two windows, its steps are
    split in halves (one step: both windows are that step)."""
    if not first or not last or first[-1]["step"] < last[0]["step"]:
        return first, last
    steps = sorted({entry["step"]: entry for entry in first + last}.items())
    entries = [entry for _, entry in steps]
    if len(entries) == 1:
        return entries, entries
    half = len(entries) // 2
    return entries[:half], entries[half:]


def metrics_table(first: list[dict[str, Any]], last: list[dict[str, Any]]) -> list[str]:
    first, last = split_windows(first, last)

    def mean(window: list[dict[str, Any]], key: str) -> float:
        values = [entry["values"][key] for entry in window if not math.isnan(entry["values"].get(key, math.nan))]
        return sum(values) / len(values) if values else math.nan

    keys = list(dict.fromkeys(key for entry in first + last for key in entry["values"]))
    lines = [f"## Training: mean of {_steps(first)} → {_steps(last)}", "", "| metric | first → last |", "|---|---|"]
    lines += [f"| {key} | {_number(mean(first, key))} → {_number(mean(last, key))} |" for key in keys]
    return lines


def weights_table(window: list[dict[str, Any]], scalarizer: str) -> list[str]:
    names = window[-1]["names"]
    sums: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for entry in window:
        if entry["names"] != names:
            continue
        for category, values in entry["sums"].items():
            sums[category] = [a + b for a, b in zip(sums.get(category, [0.0] * len(names)), values)]
            counts[category] = counts.get(category, 0) + entry["counts"][category]
    lines = [
        f"## {scalarizer} weights per category: mean over the completions of {_steps(window)}",
        "",
        "| category | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for category in sorted(sums):
        lines.append(f"| {category} | " + " | ".join(f"{s / counts[category]:.3f}" for s in sums[category]) + " |")
    return lines


def task_table(run_dir: Path) -> list[str]:
    """The paper tasks' latest evaluation in ``run_dir``'s ``benchmarks.csv``, one ``compare`` cell per task."""
    path = run_dir / CSV_NAME
    if not path.is_file():
        return []
    try:
        tasks = read_benchmarks(path)
    except ValueError as err:  # a damaged table names itself; the rest of the summary stands
        return [f"Tasks: {err}"]
    if not tasks:
        return []
    lines = [
        f"## Tasks ({shown_path(path)}; † offline proxy judge, a smoke signal)",
        "",
        "| task | preference % (metrics) |",
        "|---|---|",
    ]
    lines += [f"| {TASKS[name].title} | {cell(tasks[name])} |" for name in TASKS if name in tasks]
    return lines


class EndOfRunSummary(Callback):
    """Collects the headline numbers of every training step; at the end of ``fit`` writes ``summary.md`` in the run
    folder and keeps the text in ``text`` for the CLI to print (module docstring). ``window``: training steps
    averaged for "first" and "last"."""

    def __init__(self, window: int = 10) -> None:
        if window < 1:
            raise ValueError(f"summary.window must be >= 1, got {window}")
        self.window = window
        self.first: list[dict[str, Any]] = []
        self.last: deque[dict[str, Any]] = deque(maxlen=window)
        self.weights: deque[dict[str, Any]] = deque(maxlen=window)
        self.text: str | None = None
        self.path: Path | None = None

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        record = getattr(pl_module, "last_step", None)
        if record is None or (self.last and self.last[-1]["step"] == record.step):
            return
        means = step_means(record)
        if len(self.first) < self.window:
            self.first.append(means)
        self.last.append(means)
        self.weights.append(step_weights(record))

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        # trainer.log_dir broadcasts from rank 0: every rank asks before the others return
        run_dir = Path(getattr(trainer, "log_dir", None) or trainer.default_root_dir)
        if not getattr(trainer, "is_global_zero", True):
            return
        self.text = self.render(trainer, pl_module, run_dir)
        target = run_dir / FILE_NAME
        if target.exists() and not target.read_text(encoding="utf-8", errors="replace").startswith(TITLE):
            return  # not ours: never overwritten
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_io.write_text(target, self.text)
        self.path = target

    def render(self, trainer: Any, pl_module: Any, run_dir: Path) -> str:
        steps = getattr(pl_module, "rollouts_done", None)
        lines = [TITLE, "", f"- run folder: {shown_path(run_dir)}"]
        checkpoint = last_checkpoint(trainer)
        lines.append(f"- checkpoint: {shown_path(checkpoint) if checkpoint else 'none written'}")
        if steps is not None:
            lines.append(f"- training steps done: {steps}")
        if self.last:
            lines += ["", *metrics_table(self.first, list(self.last))]
        else:
            lines += ["", "No training step ran in this fit."]
        table = task_table(run_dir)
        if table:
            lines += ["", *table]
        if self.weights:
            scalarizer = type(getattr(pl_module, "scalarizer", None)).__name__
            lines += ["", *weights_table(list(self.weights), scalarizer)]
        logdirs = [logger.log_dir for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if logdirs:
            lines += ["", "TensorBoard (the training curves, completions and the Conductor's choices):", ""]
            lines += [f"    tensorboard --logdir {shown_path(logdir)}" for logdir in logdirs]
        return "\n".join(lines) + "\n"

    def state_dict(self) -> dict[str, Any]:
        return {"first": list(self.first), "last": list(self.last), "weights": list(self.weights)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.first = list(state_dict.get("first", []))[: self.window]
        self.last = deque(state_dict.get("last", []), maxlen=self.window)
        self.weights = deque(state_dict.get("weights", []), maxlen=self.window)


def last_checkpoint(trainer: Any) -> str | None:
    """The newest checkpoint file a checkpoint callback of this fit wrote (its ``last``, else its best)."""
    for callback in getattr(trainer, "checkpoint_callbacks", []):
        if isinstance(callback, ModelCheckpoint):
            for path in (callback.last_model_path, callback.best_model_path):
                if path and os.path.isfile(path):
                    return path
    return None
