"""Checkpoint callbacks: a peft adapter beside every Lightning checkpoint, and one on a crash.

The Lightning ``.ckpt`` resumes training exactly; the adapter folder next to it
(``<name>.adapter/``, peft format, safetensors) is what other tools load without this
project (``PeftModel.from_pretrained(base, path)``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or not a checkpoint; never skipped silently."""


def adapter_dir(checkpoint_path: str | os.PathLike) -> Path:
    path = Path(checkpoint_path)
    return path.with_name(path.stem + ".adapter")


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Fail early, naming the file, when a checkpoint cannot be read with ``weights_only=True``."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises RuntimeError/UnpicklingError/EOFError for damaged files
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated or corrupt?): {err}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path} is not a Lightning checkpoint (no 'state_dict')")


def _save_adapter(trainer: Any, filepath: str) -> None:
    policy = getattr(trainer.lightning_module, "policy", None)
    if policy is not None and trainer.is_global_zero:
        policy.save_adapter(adapter_dir(filepath))


class AdapterCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that also writes the LoRA adapter in peft format beside each file."""

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        _save_adapter(trainer, filepath)

    def _remove_checkpoint(self, trainer: Any, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            shutil.rmtree(adapter_dir(filepath), ignore_errors=True)


class ExceptionCheckpoint(OnExceptionCheckpoint):
    """Save ``on_exception.ckpt`` when a run dies, in the run's checkpoint folder by default.

    It is a separate file, so the last good ``last.ckpt`` is never overwritten by the
    state of a failing step.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "on_exception") -> None:
        super().__init__(dirpath=dirpath or ".", filename=filename)
        self._dirpath_given = dirpath is not None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if not self._dirpath_given:
            checkpoint = trainer.checkpoint_callback
            self.dirpath = (checkpoint.dirpath if checkpoint and checkpoint.dirpath else None) or os.path.join(
                trainer.log_dir or trainer.default_root_dir, "checkpoints"
            )

    def on_exception(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        super().on_exception(trainer, *args, **kwargs)
        _save_adapter(trainer, self.ckpt_path)
