"""Views that scalars cannot give — distributions, the Conductor's choices, sample completions — through any logger.

The module logs means and shares as scalars every step; this callback adds what a mean
hides. It reads ``pl_module.last_step`` (a ``StepRecord``) after every training step, pools
the window of ``every_n_steps`` steps (one step's 8–64 completions make a noisy histogram),
and shows through each of the trainer's loggers, by that logger's adapter (``view_adapters``):

- ``train/advantages``, ``train/completion_lengths`` and ``train/reward_hist/<name>``
  histograms (a collapsed advantage histogram means no learning signal);
- ``conductor/actions_by_category``: a stacked-bar figure of the Conductor's action shares
  per prompt category (absent for the static and single-reward baselines);
- ``samples/completions``: a table of sample completions with their component rewards, scalar
  reward and action, every ``log_completions_every_n_steps`` steps; the same steps' completions,
  all of them, are appended to ``completions.jsonl`` in the run folder whatever the loggers;
- TensorBoard's custom-scalars page (``scalar_layout``), written once at fit start, so the first
  page of a run is its training story: reward components, KL, the Conductor's weights per category;
- extra hyperparameters (data batch size, learning rates, scalariser settings) merged into
  ``pl_module.run_summary`` before the module logs it, so the HPARAMS tab can tell runs apart;
- optionally ``hp_metric`` at the end of fit, copied from a logged metric such as
  ``val/reward/length``, so the HPARAMS table has a column worth sorting by.

A logger that cannot show a view (MLflow has no histograms; a logger with no adapter shows none)
gets one warning at fit start naming what it misses; a view that fails while a run trains warns
once and is not tried again on that logger, so a view never stops training.

Steps are ``pl_module.rollouts_done`` (training steps done, see ``MaestroModule``), not
``trainer.global_step``, which advances μ × num_minibatches times per step.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch.callbacks import Callback

from maestro_lit.callbacks.completions_log import FILE_NAME, append_completions
from maestro_lit.callbacks.view_adapters import (
    FIGURE,
    HISTOGRAM,
    LAYOUT,
    TABLE,
    VIEWS,
    ViewAdapter,
    adapter_for,
    default_adapters,
)
from maestro_lit.callbacks.view_content import action_figure, completion_rows, scalar_layout, table_cells, table_columns
from maestro_lit.train.records import StepRecord

_SCALARIZER_FIELDS = ("temperature", "entropy_coef", "emphasis", "normalize_hidden", "component")


class LoggerViews(Callback):
    """Histograms, the per-category action figure, the completion table and ``completions.jsonl``, for any logger."""

    def __init__(
        self,
        every_n_steps: int = 10,
        hp_metric: Optional[str] = None,
        log_completions_every_n_steps: int = 10,
        table_rows: int = 8,
        adapters: Optional[list[ViewAdapter]] = None,
        custom_scalars: bool = True,
    ) -> None:
        """``log_completions_every_n_steps``: 0 turns the completion table and ``completions.jsonl`` off.
        ``table_rows``: completions shown in the logger's table (the file holds every completion of the step).
        ``adapters``: how each kind of logger shows the views, first match wins (default: TensorBoard, W&B,
        MLflow). ``custom_scalars``: write TensorBoard's custom-scalars layout at fit start."""
        if every_n_steps < 1:
            raise ValueError(f"views.every_n_steps must be >= 1, got {every_n_steps}")
        if log_completions_every_n_steps < 0:
            raise ValueError(f"views.log_completions_every_n_steps must be >= 0, got {log_completions_every_n_steps}")
        if table_rows < 1:
            raise ValueError(f"views.table_rows must be >= 1, got {table_rows}")
        self.every_n_steps, self.hp_metric = every_n_steps, hp_metric
        self.log_completions_every_n_steps, self.table_rows = log_completions_every_n_steps, table_rows
        self.adapters = list(adapters) if adapters is not None else default_adapters()
        self.custom_scalars = custom_scalars
        self.batches = 0  # the last step seen (``pl_module.rollouts_done``)
        self.completions_path: Path | None = None
        self._bound: list[tuple[Any, ViewAdapter]] = []  # (logger, its adapter)
        self._failed: set[tuple[int, str]] = set()  # (logger index, view) that raised once
        self._reset()

    def _reset(self) -> None:
        self._advantages: list[torch.Tensor] = []
        self._lengths: list[torch.Tensor] = []
        self._rewards: list[torch.Tensor] = []
        self._actions: dict[str, Counter] = {}

    # -- binding loggers ----------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        # trainer.log_dir broadcasts from rank 0: every rank must ask, or rank 0 waits forever under DDP
        folder = getattr(trainer, "log_dir", None) or getattr(trainer, "default_root_dir", ".")
        self.completions_path = Path(folder) / FILE_NAME

    def bind(self, trainer: Any) -> None:
        """Give each logger its adapter; warn once per logger for the views it cannot show."""
        self._bound, self._failed = [], set()
        for logger in getattr(trainer, "loggers", None) or []:
            adapter = adapter_for(logger, self.adapters)
            missing = [view for view in VIEWS if adapter is None or view not in adapter.shows]
            if missing:
                warnings.warn(
                    f"views: {type(logger).__name__} cannot show the {', '.join(missing)}"
                    f"{'' if adapter else ' (no adapter in views.adapters serves it)'}; "
                    f"the completions are in {self.completions_path}",
                    stacklevel=2,
                )
            if adapter is not None:
                self._bound.append((logger, adapter))

    def _show(self, view: str, call: Any) -> None:
        """``call(logger, adapter)`` for every logger whose adapter shows ``view``; a failure warns once."""
        for index, (logger, adapter) in enumerate(self._bound):
            if view not in adapter.shows or (index, view) in self._failed:
                continue
            try:
                call(logger, adapter)
            except Exception as err:  # a view must never stop training
                self._failed.add((index, view))
                name = type(logger).__name__
                warnings.warn(f"views: {name} failed to show the {view} ({err!r}); not retried", stacklevel=2)

    # -- hparams and layout -------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Runs before the module's own ``on_fit_start``, which logs ``run_summary``."""
        if trainer.is_global_zero:
            self.bind(trainer)
            if self.custom_scalars:
                layout = scalar_layout(list(getattr(pl_module, "component_names", [])))
                self._show(LAYOUT, lambda logger, adapter: adapter.layout(logger, layout))
        summary = getattr(pl_module, "run_summary", None)
        if not isinstance(summary, dict):
            return
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "batch_size"):
            summary.setdefault("data", {"batch_size": datamodule.batch_size, "seed": getattr(datamodule, "seed", None)})
        conductor = getattr(getattr(pl_module, "conductor_optim", None), "optimizer", None)  # the module's own
        optimizers = zip(("policy", "conductor"), [*trainer.optimizers[:1], *([conductor] if conductor else [])])
        summary.setdefault("optim", {f"{n}_lr": opt.param_groups[0]["lr"] for n, opt in optimizers})
        scalarizer = getattr(pl_module, "scalarizer", None)
        fields = {
            f: getattr(scalarizer, f)
            for f in _SCALARIZER_FIELDS
            if isinstance(getattr(scalarizer, f, None), (bool, int, float, str))
        }
        if fields:
            summary.setdefault("scalarizer_args", fields)

    # -- collecting and writing ---------------------------------------------------------------
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.batches = int(pl_module.rollouts_done)
        record: StepRecord | None = pl_module.last_step
        if record is not None:
            self._collect(record)
            every = self.log_completions_every_n_steps
            if every and self.batches % every == 0 and trainer.is_global_zero:
                self.write_completions(record)
        if self.batches % self.every_n_steps == 0:
            if trainer.is_global_zero:
                self.write(pl_module)
            self._reset()

    def write_completions(self, record: StepRecord) -> None:
        """The step's completions: all of them to ``completions.jsonl``, the first ``table_rows`` to the loggers."""
        rows = completion_rows(record)
        if self.completions_path is not None:
            append_completions(self.completions_path, rows)
        columns, cells = table_columns(record), [table_cells(row) for row in rows[: self.table_rows]]
        step = self.batches
        self._show(TABLE, lambda logger, adapter: adapter.table(logger, "samples/completions", columns, cells, step))

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

    def histograms(self, pl_module: Any) -> dict[str, torch.Tensor]:
        """The window's pooled histograms by tag (a component with no finite score has none)."""
        if not self._advantages:
            return {}
        values = {"train/advantages": torch.cat(self._advantages), "train/completion_lengths": torch.cat(self._lengths)}
        raw = torch.cat(self._rewards)
        for m, name in enumerate(getattr(pl_module, "component_names", [])):
            column = raw[:, m]
            column = column[torch.isfinite(column)]
            if column.numel():
                values[f"train/reward_hist/{name}"] = column
        return values

    def write(self, pl_module: Any) -> None:
        """Show the pooled window: histograms and, when the Conductor chose actions, the action figure."""
        if not self._bound or not self._advantages:
            return
        step = self.batches
        for tag, values in self.histograms(pl_module).items():
            self._show(HISTOGRAM, lambda logger, adapter, t=tag, v=values: adapter.histogram(logger, t, v, step))
        if self._actions and any(FIGURE in adapter.shows for _, adapter in self._bound):
            figure = action_figure(self._actions, list(pl_module.scalarizer.action_names))
            key = "conductor/actions_by_category"
            self._show(FIGURE, lambda logger, adapter: adapter.figure(logger, key, figure, step))
        for logger, adapter in self._bound:
            adapter.flush(logger)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.batches % self.every_n_steps and trainer.is_global_zero:
            self.write(pl_module)  # the last, partial window
        self._reset()
        value = trainer.callback_metrics.get(self.hp_metric) if self.hp_metric else None
        if value is not None and trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics({"hp_metric": float(value)}, step=self.batches)

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches = int(state_dict.get("batches", 0))
