"""``RunInfo``: writes ``run_info.json`` (method, task, training seconds, steps) to the run folder at fit end.

Why a file: ``compare`` builds the paper's Table 2 from run folders alone. Training time is
the sum of wall-clock time spent inside training batches (``on_train_batch_start`` to
``on_train_batch_end``: rollout, scoring, updates, Conductor), so validation and evaluation
runs do not count; list this callback before ``BenchmarkCallback`` so an evaluation that runs
at a batch end is not counted either. ``method`` defaults to the scalarizer's class name.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.callbacks import Callback

FILE_NAME = "run_info.json"


class RunInfo(Callback):
    def __init__(self, method: Optional[str] = None, output_dir: Optional[str] = None) -> None:
        self.method, self.output_dir = method, output_dir
        self.train_seconds, self.batches = 0.0, 0
        self._batch_start: Optional[float] = None

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._batch_start is not None:
            self.train_seconds += time.perf_counter() - self._batch_start
            self.batches += 1
            self._batch_start = None

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        # trainer.log_dir broadcasts from rank 0: every rank must ask, or rank 0 waits forever under DDP
        folder = Path(self.output_dir or getattr(trainer, "log_dir", None) or trainer.default_root_dir)
        if not getattr(trainer, "is_global_zero", True):
            return
        datamodule = getattr(trainer, "datamodule", None)
        info = {
            "method": self.method or type(getattr(pl_module, "scalarizer", pl_module)).__name__,
            "task": getattr(datamodule, "task", None),
            "train_seconds": self.train_seconds,
            "train_batches": self.batches,
            "global_step": int(getattr(trainer, "global_step", 0)),
        }
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FILE_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    def state_dict(self) -> dict[str, Any]:
        return {"train_seconds": self.train_seconds, "batches": self.batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_seconds = float(state_dict.get("train_seconds", 0.0))
        self.batches = int(state_dict.get("batches", 0))
