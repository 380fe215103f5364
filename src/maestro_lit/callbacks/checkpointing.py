"""Checkpoint callbacks: a peft adapter beside every Lightning checkpoint, and one on a crash.

The Lightning ``.ckpt`` resumes training exactly; the adapter folder next to it
(``<name>.adapter/``, peft format, safetensors) is what other tools load without this
project (``PeftModel.from_pretrained(base, path)``).

A checkpoint and its adapter are written as one unit (``save_unit``), so a full disk, an exception
or SIGKILL during a save leaves the previous good files and nothing half-written:

1. ``X.ckpt.tmp`` (Lightning's checkpoint) and ``X.adapter.tmp/`` are written and flushed;
2. ``X.ckpt.tmp`` is renamed ``X.ckpt.ready.tmp``: the commit point, both halves are complete;
3. the old ``X.adapter/`` is moved aside (``X.adapter.old.tmp``), ``X.adapter.tmp`` takes its name,
   ``X.ckpt.ready.tmp`` becomes ``X.ckpt`` and the old adapter is removed.

``recover_folder`` finishes a unit interrupted after step 2 and removes the leftovers of one
interrupted before it; the checkpoint callback runs it before ``--ckpt_path last`` is resolved and
when a fit starts. Every name in flight ends in ``.tmp``, which Lightning never takes for a checkpoint.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any
from weakref import proxy

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from maestro_lit import atomic_io
from maestro_lit.train.module_state import CheckpointError, allow_partial_resume

__all__ = ["AdapterCheckpoint", "CheckpointError", "ExceptionCheckpoint", "adapter_dir", "recover_folder", "save_unit"]

TMP, READY, OLD = ".tmp", ".ready.tmp", ".old.tmp"


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


def _unit(checkpoint_path: str | os.PathLike) -> tuple[Path, Path, Path, Path, Path, Path]:
    """(X.ckpt, X.ckpt.tmp, X.ckpt.ready.tmp, X.adapter, X.adapter.tmp, X.adapter.old.tmp)."""
    path = Path(checkpoint_path)
    adapter = adapter_dir(path)
    return path, Path(f"{path}{TMP}"), Path(f"{path}{READY}"), adapter, Path(f"{adapter}{TMP}"), Path(f"{adapter}{OLD}")


def _roll_forward(checkpoint_path: str | os.PathLike) -> None:
    """Step 3 of the module docstring; idempotent, so an interrupted roll-forward can be run again."""
    path, _, ready, adapter, tmp_adapter, old_adapter = _unit(checkpoint_path)
    if tmp_adapter.exists():
        if adapter.exists():
            if old_adapter.exists():
                atomic_io.remove(adapter)
            else:
                os.replace(adapter, old_adapter)
        os.replace(tmp_adapter, adapter)
    if ready.exists():
        if path.is_dir() and not path.is_symlink():  # a sharded checkpoint is a folder; os.replace needs it gone
            atomic_io.remove(path)
        os.replace(ready, path)
    atomic_io.fsync_dir(path.parent)
    atomic_io.remove(old_adapter)


def recover_unit(checkpoint_path: str | os.PathLike) -> None:
    """Finish a committed save of this name, or remove the halves of an uncommitted one."""
    path, tmp, ready, _, tmp_adapter, old_adapter = _unit(checkpoint_path)
    if ready.exists():
        _roll_forward(path)
    else:
        for leftover in (tmp, tmp_adapter, old_adapter):
            atomic_io.remove(leftover)


def recover_folder(dirpath: str | os.PathLike | None) -> None:
    """``recover_unit`` for every checkpoint save left in flight in ``dirpath`` (rank 0 only)."""
    if not dirpath or not Path(dirpath).is_dir():
        return
    for name in sorted(p.name for p in Path(dirpath).iterdir()):
        for suffix in (".ckpt" + READY, ".ckpt" + TMP, ".adapter" + TMP, ".adapter" + OLD):
            if name.endswith(suffix):
                recover_unit(Path(dirpath) / (name.removesuffix(suffix) + ".ckpt"))
                break


def save_unit(trainer: Any, filepath: str | os.PathLike, weights_only: bool = False) -> None:
    """Write checkpoint ``filepath`` and its adapter folder as one unit (module docstring).

    Called on every rank (``trainer.save_checkpoint`` may be collective); only rank 0 touches the
    files. A failure removes what it wrote and raises ``CheckpointError`` naming the file: the
    previous checkpoint of that name, adapter included, is unchanged.
    """
    path, tmp, ready, _, tmp_adapter, _ = _unit(filepath)
    zero = trainer.is_global_zero
    if zero:
        recover_unit(path)  # leftovers of an earlier interrupted save of this name
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        trainer.save_checkpoint(str(tmp), weights_only)
        policy = getattr(trainer.lightning_module, "policy", None)
        gathered = policy.gathered_weights(keep=zero) if policy is not None else None  # collective under FSDP2
        if zero:
            if policy is not None:
                policy.save_adapter(tmp_adapter, gathered)
                atomic_io.fsync_path(tmp_adapter)
            atomic_io.fsync_path(tmp)
            os.replace(tmp, ready)  # the commit point: both halves are complete
            atomic_io.fsync_dir(path.parent)
    except BaseException as err:
        if zero:
            atomic_io.remove(tmp)
            atomic_io.remove(tmp_adapter)
        if isinstance(err, Exception) and not isinstance(err, CheckpointError):
            message = f"could not write checkpoint {path}: {err}; the previous files of that name are unchanged"
            raise CheckpointError(message) from err
        raise
    if zero:
        _roll_forward(path)


def _rollouts(trainer: Any) -> int:
    """The project's step counter (``MaestroModule.rollouts_done``); Lightning's global_step for other modules."""
    rollouts = getattr(trainer.lightning_module, "rollouts_done", None)
    return rollouts if isinstance(rollouts, int) else trainer.global_step


class AdapterCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that also writes the LoRA adapter in peft format beside each file, atomically.

    Differences from Lightning's ModelCheckpoint, and why:

    - **Cadence and file names count rollouts** (``module.rollouts_done``, docs/design.md "one step
      counter"): ``every_n_train_steps: 50`` saves every 50 rollouts and ``step{step}`` names the rollout,
      whatever ``num_iterations`` × ``num_minibatches`` policy updates each rollout takes. Lightning's
      ``trainer.max_steps`` still counts policy updates (``trainer.global_step``); a warning at the start
      of fit says so when a rollout takes more than one update.
    - **The end of fit always saves the final state** as ``last.ckpt`` (or, without ``save_last``, as a
      step file), also when ``max_steps`` is not a multiple of ``every_n_train_steps``; so does SIGTERM
      (a preemption: the state between two steps is clean, and a requeued ``--ckpt_path last`` resumes it).
    - **Writes are atomic** (``save_unit``): the checkpoint and its adapter are one unit; a failed save
      leaves the previous one.
    - **No version counter** by default (``enable_version_counter: false``): a file of the same name is
      this run's own and is replaced, so ``last.ckpt`` is always the newest state and a resumed run
      never writes ``-v1`` duplicates. A fresh fit (no ``--ckpt_path``) into a folder that already holds
      checkpoints is refused instead of overwriting another run's files.

    Args:
        partial_resume: Resume (``--ckpt_path``) from a checkpoint trained with another scalariser
            (e.g. a Conductor run continued with ``configs/methods/equal.yaml``): the policy, its
            optimiser, the counters and the data position are resumed; the scalariser's tensors, buffer
            and optimiser state are dropped or start fresh. Off by default: such a mismatch is an error
            naming both sides. The policy's tensors must match either way.
        enable_version_counter: Lightning's ``-v1`` suffix for an existing file name; off (see above).
        kwargs: Lightning's ``ModelCheckpoint`` arguments.
    """

    def __init__(self, *, partial_resume: bool = False, enable_version_counter: bool = False, **kwargs: Any) -> None:
        super().__init__(enable_version_counter=enable_version_counter, **kwargs)
        self.partial_resume = partial_resume
        self._last_rollout_saved = 0  # no need to save before the first rollout

    # -- setup: recover, refuse to overwrite another run, say what max_steps counts -------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        with warnings.catch_warnings():  # a resume's own folder; a fresh fit into another's is refused (on_fit_start)
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        allow_partial_resume(pl_module, self.partial_resume)
        if trainer.is_global_zero:
            recover_folder(self.dirpath)
        grpo = getattr(pl_module, "grpo_settings", None)
        if grpo is not None and trainer.max_steps > 0:
            per_rollout = grpo.num_iterations * (1 if grpo.accumulate_minibatches else grpo.num_minibatches)
            if per_rollout > 1:
                rank_zero_warn(
                    "trainer.max_steps counts policy updates (Lightning's global_step), and each rollout takes "
                    f"num_iterations x num_minibatches = {per_rollout} of them: max_steps {trainer.max_steps} "
                    f"stops after about {-(-trainer.max_steps // per_rollout)} rollouts "
                    f"(set max_steps to rollouts x {per_rollout}). "
                    "checkpoint.every_n_train_steps, the file names and the logged step count rollouts.",
                    category=UserWarning,
                )

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """A fresh fit (``trainer.ckpt_path`` is known only now) never writes over another run's checkpoints."""
        if not trainer.is_global_zero or trainer.ckpt_path is not None or not (self.save_top_k != 0 or self.save_last):
            return
        existing = sorted(p.name for p in Path(self.dirpath).glob("*.ckpt")) if self.dirpath else []
        if existing:
            shown = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
            raise CheckpointError(
                f"checkpoint folder {self.dirpath} already holds checkpoints of an earlier run ({shown}); "
                "continue that run with --ckpt_path last, or give this run another checkpoint.dirpath"
            )

    def _find_last_checkpoints(self, trainer: Any) -> set[str]:
        if trainer.is_global_zero:  # --ckpt_path last is resolved before setup: finish interrupted saves first
            recover_folder(self.dirpath or self._ModelCheckpoint__resolve_ckpt_dir(trainer))
        return super()._find_last_checkpoints(trainer)

    # -- cadence by rollouts ----------------------------------------------------------------------------
    def _monitor_candidates(self, trainer: Any) -> dict[str, torch.Tensor]:
        candidates = super()._monitor_candidates(trainer)
        candidates["step"] = torch.tensor(_rollouts(trainer))
        return candidates

    def _should_skip_saving_checkpoint(self, trainer: Any) -> bool:
        return (
            bool(trainer.fast_dev_run)
            or trainer.state.fn != TrainerFn.FITTING
            or trainer.sanity_checking
            or self._last_rollout_saved == _rollouts(trainer)  # already saved this state
        )

    def _should_save_on_exception(self, trainer: Any) -> bool:
        return (
            self.save_on_exception
            and not bool(trainer.fast_dev_run)
            and not trainer.sanity_checking
            and self._last_rollout_saved != _rollouts(trainer)
        )

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if pl_module.automatic_optimization:
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        due = self._every_n_train_steps >= 1 and _rollouts(trainer) % self._every_n_train_steps == 0
        interval = self._train_time_interval
        if interval is not None and not due:
            now = time.monotonic()
            due = self._last_time_checked is not None and now - self._last_time_checked >= interval.total_seconds()
            due = trainer.strategy.broadcast(due)
        if not due or self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor is not None and self.monitor not in candidates:
            self._defer_save_until_validation = True
            return
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)
        self._last_time_checked = time.monotonic()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """The final state is always saved, whatever the cadence (class docstring)."""
        self._save_final(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):  # preemption between two steps: keep the clean state
            self._save_final(trainer)
        else:
            super().on_exception(trainer, pl_module, exception)

    def _save_final(self, trainer: Any) -> None:
        if _rollouts(trainer) == 0 or self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.save_last:
            self._save_last_checkpoint(trainer, candidates)
        elif self.save_top_k != 0 and self.monitor is None:
            self._save_topk_checkpoint(trainer, candidates)

    # -- the files: one atomic unit per checkpoint -------------------------------------------------------
    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        save_unit(trainer, filepath, self.save_weights_only)
        self._last_global_step_saved = trainer.global_step
        self._last_rollout_saved = _rollouts(trainer)
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _remove_checkpoint(self, trainer: Any, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            atomic_io.remove(adapter_dir(filepath))


class ExceptionCheckpoint(Callback):
    """Save ``on_exception.ckpt`` (+ its adapter folder) when a run dies with trained state.

    Written into the run's own folder (``dirpath``, else the checkpoint callback's folder, else
    ``<log_dir>/checkpoints``), never the working directory, and only once a rollout has been
    trained on: an error in setup or in the first step leaves nothing behind.
    It is a separate file, so the last good ``last.ckpt`` is never overwritten by the state of a
    failing step. Deliberately not Lightning's ``OnExceptionCheckpoint``: that class makes every
    plain ``fit`` resume from ``ckpt_path="last"``; here resuming is always asked for (``--ckpt_path``).
    Written atomically with its adapter (``save_unit``); when that fails too (a full disk), a warning
    says so and the run's own error is the one reported.
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
        if trainer.global_step == 0 and _rollouts(trainer) == 0:
            return  # nothing trained yet: a checkpoint would only shadow the next fresh run
        path = os.path.join(self.run_dirpath(trainer), self.filename + ModelCheckpoint.FILE_EXTENSION)
        try:
            save_unit(trainer, path)
        except CheckpointError as err:
            warnings.warn(f"{err} (while handling {type(exception).__name__})", stacklevel=1)
            return
        self.ckpt_path = path
