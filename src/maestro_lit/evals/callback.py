"""Lightning callback that runs the benchmark adapters on the policy being trained.

When it runs: every ``every_n_train_steps`` training batches (counted by the callback, since
``trainer.global_step`` counts policy updates, μ × num_minibatches per batch), once at the
end of fit (skipped if the last batch just ran it), and under ``trainer.validate`` (once per
validate call, never during fit's own validation or the sanity check). Files are read and every
judge's configuration is checked (``Benchmark.check``: an API key variable that is unset, a
malformed judge URL, a missing local judge model) at ``setup``, so either fails before training
with one message naming the benchmark and the setting, not after it.

Only global rank 0 generates and scores; other ranks wait at a barrier. Metrics go to
``bench/<name>/<metric>``: through ``pl_module.log_dict`` under validate (so they appear in the
results table), straight to ``trainer.loggers`` at the module's ``rollouts_done`` (the project's
step counter, see ``MaestroModule``; ``trainer.global_step`` for other modules) otherwise (Lightning
forbids ``self.log`` in ``on_train_end``). Tables land in ``output_dir`` or ``trainer.log_dir``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch.callbacks import Callback

from maestro_lit.evals.base import Benchmark, BenchmarkResult
from maestro_lit.evals.report import write_all


class BenchmarkCallback(Callback):
    def __init__(
        self,
        benchmarks: list[Benchmark],
        every_n_train_steps: Optional[int] = None,
        max_new_tokens: int = 64,
        output_dir: Optional[str] = None,
        progress_bar: bool = True,
        run_at_fit_end: bool = True,
        run_on_validate: bool = True,
    ) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1 or None, got {every_n_train_steps}")
        names = [b.name for b in benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmark names must be unique, got {names}; set `name:` on duplicates")
        self.benchmarks = benchmarks
        self.every_n_train_steps, self.max_new_tokens = every_n_train_steps, max_new_tokens
        self.output_dir, self.progress_bar = output_dir, progress_bar
        self.run_at_fit_end, self.run_on_validate = run_at_fit_end, run_on_validate
        self.train_batches = 0
        self._last_run_batch: Optional[int] = None
        self._validate_done = False
        self.last_results: list[BenchmarkResult] = []

    @property
    def enabled(self) -> list[Benchmark]:
        return [b for b in self.benchmarks if b.enabled]

    # -- hooks ---------------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        for benchmark in self.enabled:
            try:
                benchmark.check()
            except ValueError as err:
                raise ValueError(f"{type(self).__name__}, benchmark {benchmark.name!r}: {err}") from None
            benchmark.items()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        # MaestroModule's step counter when there is one (it survives resume); else count here
        self.train_batches = (
            int(pl_module.rollouts_done) if hasattr(pl_module, "rollouts_done") else self.train_batches + 1
        )
        if self.every_n_train_steps and self.train_batches % self.every_n_train_steps == 0:
            self.run(trainer, pl_module, "train_step")
            self._last_run_batch = self.train_batches

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.run_at_fit_end and self._last_run_batch != self.train_batches:
            self.run(trainer, pl_module, "fit_end")
            self._last_run_batch = self.train_batches

    def _validating(self, trainer: Any) -> bool:
        return (
            self.run_on_validate
            and str(getattr(trainer.state, "fn", "")) in ("validate", "TrainerFn.VALIDATING")
            and not getattr(trainer, "sanity_checking", False)
        )

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._validate_done = False

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._validating(trainer) and not self._validate_done:
            self._validate_done = True
            self.run(trainer, pl_module, "validate", use_log_dict=True)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._validating(trainer) and not self._validate_done:  # epoch-end hook was skipped
            self._validate_done = True
            self.run(trainer, pl_module, "validate")

    def state_dict(self) -> dict[str, Any]:
        return {"train_batches": self.train_batches, "last_run_batch": self._last_run_batch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_batches = int(state_dict.get("train_batches", 0))
        self._last_run_batch = state_dict.get("last_run_batch")

    # -- running -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _progress(self, total: int) -> Iterator[Any]:
        """A Rich progress bar, or ``None`` when disabled or another live display owns the console."""
        if not self.progress_bar:
            yield None
            return
        from rich.errors import LiveError
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("[bold]bench[/] {task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        )
        try:
            progress.start()
        except LiveError:
            yield None
            return
        try:
            yield progress
        finally:
            progress.stop()

    def evaluate(self, pl_module: Any) -> list[BenchmarkResult]:
        """Run every enabled benchmark with ``pl_module.generate_chat``; no logging."""
        benchmarks = self.enabled
        device = getattr(pl_module, "device", None)
        was_training = bool(getattr(pl_module, "training", False))
        if hasattr(pl_module, "eval"):
            pl_module.eval()
        results = []
        try:
            with self._progress(len(benchmarks)) as progress, torch.no_grad():
                task = progress.add_task("", total=len(benchmarks)) if progress else None
                for benchmark in benchmarks:
                    if progress:
                        progress.update(task, description=benchmark.name)
                    if device is not None:
                        benchmark.to(device)
                    results.append(benchmark.evaluate(pl_module.generate_chat, self.max_new_tokens))
                    if progress:
                        progress.advance(task)
        finally:
            if was_training and hasattr(pl_module, "train"):
                pl_module.train()
        return results

    def run(self, trainer: Any, pl_module: Any, trigger: str, use_log_dict: bool = False) -> list[BenchmarkResult]:
        if not self.enabled:
            return []
        if not getattr(trainer, "is_global_zero", True):
            trainer.strategy.barrier()
            return []
        results = self.evaluate(pl_module)
        metrics = {
            f"bench/{r.name}/{k}": float(v) for r in results for k, v in {**r.metrics, "seconds": r.seconds}.items()
        }
        step = int(
            pl_module.rollouts_done if hasattr(pl_module, "rollouts_done") else getattr(trainer, "global_step", 0)
        )
        if use_log_dict:
            pl_module.log_dict(metrics, rank_zero_only=True)
        else:
            for logger in getattr(trainer, "loggers", None) or []:
                logger.log_metrics(metrics, step=step)
        run_dir = self.output_dir or getattr(trainer, "log_dir", None) or getattr(trainer, "default_root_dir", ".")
        write_all(Path(run_dir), results, step, trigger)
        self.last_results = results
        if getattr(trainer, "world_size", 1) > 1:
            trainer.strategy.barrier()
        return results
