"""Test-only callback: SIGKILL this process at a chosen point of a chosen step (a hard crash), for the fault matrix.

Points, none of which assumes how the project writes its files:
- ``train``: from a timer thread, ``delay`` seconds into the step (wherever the step then is);
- ``ckpt_write``: while Lightning's CheckpointIO writes a checkpoint: half the bytes are on disk;
- ``adapter_write``: while peft writes an adapter folder: its config is there, its weights are not.
"""

import os
import signal
import threading
from pathlib import Path

import peft.peft_model
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(Callback):
    """``skip``: matching writes of the step to let through first (0: the step file, 1: ``last.ckpt``)."""

    def __init__(self, step: int, point: str = "train", delay: float = 0.0, skip: int = 0) -> None:
        self.step, self.point, self.delay, self.skip = step, point, delay, skip
        self.trainer = None

    def _due(self) -> bool:
        if self.trainer is None or getattr(self.trainer.lightning_module, "rollouts_done", -1) != self.step:
            return False
        self.skip -= 1
        return self.skip < 0

    def setup(self, trainer, pl_module, stage):
        self.trainer = trainer
        if self.point == "ckpt_write":
            original = TorchCheckpointIO.save_checkpoint

            def save_checkpoint(io, checkpoint, path, storage_options=None):
                original(io, checkpoint, path, storage_options)
                if self._due():
                    size = Path(path).stat().st_size
                    with open(path, "r+b") as fh:
                        fh.truncate(size // 2)
                    _die()

            TorchCheckpointIO.save_checkpoint = save_checkpoint
        elif self.point == "adapter_write":
            original_save_file = peft.peft_model.safe_save_file

            def save_file(tensors, filename, *args, **kwargs):
                if self._due():
                    _die()
                return original_save_file(tensors, filename, *args, **kwargs)

            peft.peft_model.safe_save_file = save_file

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.point == "train" and pl_module.rollouts_done == self.step - 1:
            threading.Timer(self.delay, _die).start()
