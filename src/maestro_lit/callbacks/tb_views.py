"""TensorBoard views that scalars cannot give: distributions and the Conductor's choices.

The module logs means and shares as scalars every step; this callback adds what a mean
hides. It reads ``pl_module.last_step`` (a ``StepRecord``) after every training step, pools
the window of ``every_n_steps`` steps (one step's 8–64 completions make a noisy histogram),
and then writes to the TensorBoard logger:

- ``train/advantages``, ``train/completion_lengths`` and ``train/reward_hist/<name>``
  histograms (a collapsed advantage histogram means no learning signal);
- ``conductor/actions_by_category``: a stacked-bar figure of the Conductor's action shares
  per prompt category (absent for the static and single-reward baselines);
- extra hyperparameters (data batch size, learning rates, scalariser settings) merged into
  ``pl_module.run_summary`` before the module logs it, so the HPARAMS tab can tell runs apart;
- ``samples/completions``: a markdown table of sample completions with their component
  rewards, scalar reward and action, every ``log_completions_every_n_steps`` steps;
- optionally ``hp_metric`` at the end of fit, copied from a logged metric such as
  ``val/reward/length``, so the HPARAMS table has a column worth sorting by.

Steps are ``pl_module.rollouts_done`` (training steps done, see ``MaestroModule``), not
``trainer.global_step``, which advances μ × num_minibatches times per step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Optional

import torch
from lightning.pytorch.callbacks import Callback

from maestro_lit.train.records import StepRecord

_SCALARIZER_FIELDS = ("temperature", "entropy_coef", "emphasis", "normalize_hidden", "component")


def _tensorboard(trainer: Any) -> Any:
    """The first logger's SummaryWriter that can draw histograms, or ``None``."""
    for logger in getattr(trainer, "loggers", None) or []:
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_histogram") and hasattr(experiment, "add_figure"):
            return experiment
    return None


def action_figure(counts: dict[str, Counter], action_names: list[str]):
    """Stacked bars: one bar per prompt category, segments = share of each Conductor action."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    categories = sorted(counts)
    figure = Figure(figsize=(1.6 + 1.1 * len(categories), 3.6), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    bottoms = [0.0] * len(categories)
    for k, name in enumerate(action_names):
        shares = [counts[c][k] / max(sum(counts[c].values()), 1) for c in categories]
        axes.bar(categories, shares, bottom=bottoms, label=name)
        bottoms = [b + s for b, s in zip(bottoms, shares)]
    axes.set_ylim(0, 1)
    axes.set_ylabel("share of completions")
    axes.set_title("Conductor actions by prompt category")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return figure


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def completion_table(record: StepRecord, limit: int = 8) -> str:
    """A markdown table of sample completions with their component rewards and chosen action."""
    header = ["prompt", "completion", *record.component_names, "scalar", "action"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    actions, names = record.actions, record.action_names
    for i in range(min(limit, len(record.completions))):
        action = names[int(actions[i])] if actions is not None else "static"
        scores = [f"{float(v):.3f}" for v in record.raw_rewards[i]]
        cells = [
            _cell(record.prompts[i]),
            _cell(record.completions[i]),
            *scores,
            f"{float(record.scalar_rewards[i]):.3f}",
            action,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class TensorBoardViews(Callback):
    """Histograms, the per-category action figure and richer hparams for TensorBoard."""

    def __init__(
        self, every_n_steps: int = 10, hp_metric: Optional[str] = None, log_completions_every_n_steps: int = 10
    ) -> None:
        """``log_completions_every_n_steps``: 0 turns the completion table off."""
        if every_n_steps < 1:
            raise ValueError(f"TensorBoardViews.every_n_steps must be >= 1, got {every_n_steps}")
        if log_completions_every_n_steps < 0:
            raise ValueError(
                f"TensorBoardViews.log_completions_every_n_steps must be >= 0, got {log_completions_every_n_steps}"
            )
        self.every_n_steps, self.hp_metric = every_n_steps, hp_metric
        self.log_completions_every_n_steps = log_completions_every_n_steps
        self.batches = 0  # the last step seen (``pl_module.rollouts_done``)
        self._reset()

    def _reset(self) -> None:
        self._advantages: list[torch.Tensor] = []
        self._lengths: list[torch.Tensor] = []
        self._rewards: list[torch.Tensor] = []
        self._actions: dict[str, Counter] = {}

    # -- hparams -------------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Runs before the module's own ``on_fit_start``, which logs ``run_summary``."""
        summary = getattr(pl_module, "run_summary", None)
        if not isinstance(summary, dict):
            return
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "batch_size"):
            summary.setdefault("data", {"batch_size": datamodule.batch_size, "seed": getattr(datamodule, "seed", None)})
        names = ("policy", "conductor")
        summary.setdefault("optim", {f"{n}_lr": opt.param_groups[0]["lr"] for n, opt in zip(names, trainer.optimizers)})
        scalarizer = getattr(pl_module, "scalarizer", None)
        fields = {
            f: getattr(scalarizer, f)
            for f in _SCALARIZER_FIELDS
            if isinstance(getattr(scalarizer, f, None), (bool, int, float, str))
        }
        if fields:
            summary.setdefault("scalarizer_args", fields)

    # -- collecting and writing ------------------------------------------------------------
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.batches = int(pl_module.rollouts_done)
        record: StepRecord | None = pl_module.last_step
        if record is not None:
            self._collect(record)
            every = self.log_completions_every_n_steps
            if every and self.batches % every == 0 and trainer.is_global_zero:
                self._write_completions(trainer, record)
        if self.batches % self.every_n_steps == 0:
            if trainer.is_global_zero:
                self.write(trainer, pl_module)
            self._reset()

    def _write_completions(self, trainer: Any, record: StepRecord) -> None:
        experiment = getattr(trainer.logger, "experiment", None)
        if hasattr(experiment, "add_text"):
            experiment.add_text("samples/completions", completion_table(record), global_step=self.batches)

    def _collect(self, record: StepRecord) -> None:
        self._advantages.append(record.advantages.detach().float().cpu())
        self._lengths.append(record.completion_lengths.detach().float().cpu())
        self._rewards.append(record.raw_rewards.detach().float().cpu())
        actions, names = record.actions, list(record.action_names)
        if actions is None or not names:
            return
        categories: Sequence = record.categories or ["all"] * len(actions)
        for category, action in zip(categories, actions.tolist()):
            self._actions.setdefault(str(category), Counter())[int(action)] += 1

    def write(self, trainer: Any, pl_module: Any) -> None:
        writer = _tensorboard(trainer)
        if writer is None or not self._advantages:
            return
        step = self.batches
        writer.add_histogram("train/advantages", torch.cat(self._advantages), step)
        writer.add_histogram("train/completion_lengths", torch.cat(self._lengths), step)
        if self._rewards:
            raw = torch.cat(self._rewards)
            for m, name in enumerate(getattr(pl_module, "component_names", [])):
                column = raw[:, m]
                column = column[torch.isfinite(column)]
                if column.numel():
                    writer.add_histogram(f"train/reward_hist/{name}", column, step)
        if self._actions:
            figure = action_figure(self._actions, list(pl_module.scalarizer.action_names))
            writer.add_figure("conductor/actions_by_category", figure, step, close=True)
        writer.flush()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.batches % self.every_n_steps and trainer.is_global_zero:
            self.write(trainer, pl_module)  # the last, partial window
        self._reset()
        value = trainer.callback_metrics.get(self.hp_metric) if self.hp_metric else None
        if value is not None and trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics({"hp_metric": float(value)}, step=self.batches)

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches = int(state_dict.get("batches", 0))
