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
from lightning.pytorch.callbacks import Callback, ModelCheckpoint


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


class ExceptionCheckpoint(Callback):
    """Save ``on_exception.ckpt`` (+ its adapter folder) when a run dies with trained state.

    Written into the run's own folder (``dirpath``, else the checkpoint callback's folder, else
    ``<log_dir>/checkpoints``), never the working directory, and only once a rollout has been
    trained on (``global_step > 0``): an error in setup or in the first step leaves nothing behind.
    It is a separate file, so the last good ``last.ckpt`` is never overwritten by the state of a
    failing step. Deliberately not Lightning's ``OnExceptionCheckpoint``: that class makes every
    plain ``fit`` resume from ``ckpt_path="last"``; here resuming is always asked for (``--ckpt_path``).
    """

    def __init__(self, dirpath: str | None = None, filename: str = "on_exception") -> None:
        self.dirpath, self.filename = dirpath, filename
        self.ckpt_path: str | None = None  # set once a crash checkpoint is written

    def run_dirpath(self, trainer: Any) -> str:
        if self.dirpath:
            return self.dirpath
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.dirpath:
            return checkpoint.dirpath
        return os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if trainer.global_step == 0:
            return  # nothing trained yet: a checkpoint would only shadow the next fresh run
        self.ckpt_path = os.path.join(self.run_dirpath(trainer), self.filename + ModelCheckpoint.FILE_EXTENSION)
        trainer.save_checkpoint(self.ckpt_path)
        _save_adapter(trainer, self.ckpt_path)
