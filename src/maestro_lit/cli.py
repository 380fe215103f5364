"""Command line: LightningCLI over MaestroModule and PromptDataModule.

``python -m maestro_lit fit --config configs/quickstart.yaml``; ``--config`` may repeat (later
files override earlier ones, lists replace whole). Also ``validate``, ``--print_config`` and
``fit --ckpt_path``. Checkpoints are loaded with ``weights_only=True``: they hold only tensors
and plain containers.

Standard callbacks are CLI defaults with their own config keys, so config files name only what
differs: ``checkpoint`` (AdapterCheckpoint), ``exception_checkpoint``, ``views``
(LoggerViews), ``progress_bar``, ``model_summary`` (parameters at fit start), ``lr_monitor``, ``run_info``
(``run_info.json`` for ``compare``), ``summary`` (the end-of-run summary, printed after ``fit`` and saved as
``summary.md``) and, when listed, ``device_stats``.
``standard_callbacks`` lists the ones in use; one of the same kind in ``trainer.callbacks``
replaces the default, and ``trainer.enable_checkpointing``/``enable_progress_bar: false`` drop theirs.

Resuming is always asked for: a plain ``fit`` starts fresh; ``--ckpt_path FILE`` resumes from a
file and ``--ckpt_path last`` from the newest ``last.ckpt`` in the checkpoint folder (set
``checkpoint.dirpath`` to keep one folder across runs), starting fresh when there is none.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import (
    DeviceStatsMonitor,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    ProgressBar,
)
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from maestro_lit.callbacks.checkpointing import (
    AdapterCheckpoint,
    CheckpointError,
    ExceptionCheckpoint,
    verify_checkpoint,
)
from maestro_lit.callbacks.model_summary import ParameterSummary
from maestro_lit.callbacks.progress import MaestroProgressBar
from maestro_lit.callbacks.run_info import RunInfo
from maestro_lit.callbacks.views import LoggerViews
from maestro_lit.data.prompts import DataFileError, PromptDataModule
from maestro_lit.rewards.base import RewardError
from maestro_lit.summary import EndOfRunSummary
from maestro_lit.train.module import MaestroModule
from maestro_lit.train.policy_update import DivergenceError
from maestro_lit.train.strategy_checks import check_strategy_settings

DEBUG_ENV = "MAESTRO_LIT_DEBUG"  # =1: full tracebacks for user-input errors


class ConfigError(ValueError):
    """A config value is invalid; the message names the key."""


# key -> (callback class, the kind whose presence in trainer.callbacks replaces the default)
STANDARD_CALLBACKS: dict[str, tuple[type, type]] = {
    "checkpoint": (AdapterCheckpoint, ModelCheckpoint),
    "exception_checkpoint": (ExceptionCheckpoint, ExceptionCheckpoint),
    "views": (LoggerViews, LoggerViews),
    "progress_bar": (MaestroProgressBar, ProgressBar),
    "model_summary": (ParameterSummary, ModelSummary),
    "lr_monitor": (LearningRateMonitor, LearningRateMonitor),
    "device_stats": (DeviceStatsMonitor, DeviceStatsMonitor),
    "run_info": (RunInfo, RunInfo),
    "summary": (EndOfRunSummary, EndOfRunSummary),
}
DEFAULT_STANDARD = [
    "checkpoint",
    "exception_checkpoint",
    "views",
    "progress_bar",
    "model_summary",
    "lr_monitor",
    "run_info",
    "summary",
]
LR_KEYS = ("model.policy_optimizer", "model.conductor_optimizer")


def check_learning_rates(config: Any) -> None:
    """Learning rates must be > 0; torch's own message would not name the config key."""
    for key in LR_KEYS:
        optimizer = config.get(key)
        init_args = getattr(optimizer, "init_args", None) or (
            optimizer.get("init_args") if isinstance(optimizer, dict) else None
        )
        lr = (init_args or {}).get("lr") if isinstance(init_args, dict) else getattr(init_args, "lr", None)
        if lr is not None and not float(lr) > 0:
            raise ConfigError(f"{key}.init_args.lr must be > 0, got {lr}")


def check_step_settings(config: Any) -> None:
    """``trainer.max_steps``, and ``num_minibatches`` against the rollout size, before anything loads (Lightning's
    and the inner loop's own messages would come later, and without the keys)."""
    try:
        check_strategy_settings(config)  # what FSDP2 / DeepSpeed refuse
    except ValueError as err:
        raise ConfigError(str(err)) from None
    max_steps = config.get("trainer.max_steps")
    if max_steps is not None and int(max_steps) < -1:
        raise ConfigError(f"trainer.max_steps must be -1 (no limit) or >= 0, got {max_steps}")
    batch_size, group = config.get("data.batch_size"), config.get("model.grpo_settings.num_generations")
    minibatches = config.get("model.grpo_settings.num_minibatches")
    if minibatches == "auto" and _process_count(config) > 1:
        raise ConfigError(
            f"model.grpo_settings.num_minibatches=auto plans for one device, and trainer.devices × trainer.num_nodes "
            f"gives {_process_count(config)} processes; set a number that divides each rank's completions"
        )
    if not (isinstance(batch_size, int) and isinstance(group, int) and isinstance(minibatches, int)):
        return  # another check names the bad value
    rollout = batch_size * group
    if minibatches >= 1 and rollout % minibatches:
        raise ConfigError(
            f"model.grpo_settings.num_minibatches={minibatches} does not divide the {rollout} completions of a step "
            f"(data.batch_size × model.grpo_settings.num_generations = {batch_size} × {group}); "
            "choose a divisor of that product"
        )


def _process_count(config: Any) -> int:
    """Processes the trainer settings ask for, where the config says (``devices: auto`` counts as 1)."""
    devices = config.get("trainer.devices")
    if isinstance(devices, (list, tuple)):
        count = len(devices)
    elif isinstance(devices, str) and "," in devices:
        count = len([d for d in devices.split(",") if d.strip()])
    else:
        try:
            count = max(int(devices), 1)
        except (TypeError, ValueError):
            count = 1
    try:
        return count * max(int(config.get("trainer.num_nodes") or 1), 1)
    except (TypeError, ValueError):
        return count


def folder_problem(folder: str | os.PathLike) -> str | None:
    """Why nothing can be written under ``folder`` (a file in the way, no permission), or None; creates nothing."""
    if "://" in str(folder):
        return None  # a remote filesystem: Lightning's own error then
    probe = Path(folder).expanduser().absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    try:
        handle, name = tempfile.mkstemp(dir=probe, prefix=".maestro-write-test-")
        os.close(handle)
        os.remove(name)
    except OSError as err:
        return f"cannot write in {probe} ({err.strerror or err})"
    return None


def check_output_folders(trainer: Any) -> None:
    """Fail before training, naming the key, when a checkpoint or log folder cannot be written."""
    folders = [("trainer.default_root_dir", trainer.default_root_dir)]
    folders += [("trainer.logger.init_args.save_dir", getattr(lg, "save_dir", None)) for lg in trainer.loggers]
    for callback in trainer.callbacks:
        keys = [key for key, (kind, _) in STANDARD_CALLBACKS.items() if isinstance(callback, kind)]
        key = keys[0] if keys else "checkpoint" if isinstance(callback, ModelCheckpoint) else type(callback).__name__
        folders.append((f"{key}.dirpath", getattr(callback, "dirpath", None)))
    for key, folder in folders:
        problem = folder_problem(folder) if folder else None
        if problem:
            raise ConfigError(f"{key}={folder}: {problem}")


def check_last_checkpoint(trainer: Any) -> None:
    """``--ckpt_path last``: the checkpoint it resolves to must be readable (a damaged one fails here, by name)."""
    found: set[str] = set()
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint):
            found |= callback._find_last_checkpoints(trainer)  # as Lightning resolves "last" (after any recovery)
    existing = [path for path in found if os.path.isfile(path)]
    if existing:
        verify_checkpoint(max(existing, key=os.path.getmtime))


def later_wins(callbacks: list[Any]) -> list[Any]:
    """Drop a callback when a later one has the same checkpoint ``state_key`` (e.g. the same task's
    evaluation from two composed files): later config files override earlier ones, as for keys."""
    last = {getattr(c, "state_key", id(c)): i for i, c in enumerate(callbacks)}
    return [c for i, c in enumerate(callbacks) if last[getattr(c, "state_key", id(c))] == i]


class MaestroCLI(LightningCLI):
    """LightningCLI with project defaults: outputs under ``checkpoints/``, standard callbacks, safe checkpoint
    loading."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--torch_threads",
            type=int | None,
            default=None,
            help=(
                "torch intra-op threads; 1 suits tiny models on CPU and avoids OpenMP spin-wait slowdowns "
                "on shared machines"
            ),
        )
        parser.add_argument(
            "--standard_callbacks",
            type=list[str],
            default=DEFAULT_STANDARD,
            help=f"standard callbacks in use, configured under their own keys; any of {list(STANDARD_CALLBACKS)}",
        )
        for key, (callback_class, _) in STANDARD_CALLBACKS.items():
            parser.add_lightning_class_args(callback_class, key)
        parser.set_defaults(
            {
                "trainer.default_root_dir": "checkpoints",
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": "checkpoints", "name": "maestro"},
                },
                "checkpoint.save_last": True,
                "checkpoint.every_n_train_steps": 50,  # rollouts
                "checkpoint.save_top_k": -1,
                "checkpoint.filename": "step{step:06d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("torch_threads"):
            torch.set_num_threads(config["torch_threads"])  # before the model loads (and maybe warms up)

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        unknown = set(config.get("standard_callbacks") or []) - set(STANDARD_CALLBACKS)
        if unknown:
            raise ConfigError(f"standard_callbacks: unknown {sorted(unknown)}; known: {list(STANDARD_CALLBACKS)}")
        check_learning_rates(config)
        ckpt_path = config.get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
            verify_checkpoint(ckpt_path)  # a damaged file fails here, by name, before anything runs

    def instantiate_classes(self) -> None:
        # Before the model loads; not in parse_arguments, where an overlay composed alone (``compose``) is checked.
        check_step_settings(self.config[self.subcommand] if self.subcommand else self.config)
        try:
            super().instantiate_classes()
        except ConfigError:
            raise
        except ValueError as err:  # a setting the model or data module rejects: a config error, not a crash
            raise ConfigError(str(err)) from err
        except OSError as err:  # a model path that is neither a local folder nor a hub id (the message names it)
            raise ConfigError(str(err)) from err
        except MisconfigurationException as err:  # Lightning's check of a trainer setting
            raise ConfigError(f"trainer: {err}") from err

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The trainer with the standard callbacks in use, unless replaced or switched off."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer = {**config.get("trainer", {}), **kwargs}
        given = later_wins([c for c in (trainer.get("callbacks") or []) if c is not None])
        trainer["callbacks"] = given
        keep = []
        for key in config.get("standard_callbacks") or []:
            callback, (_, kind) = config[key], STANDARD_CALLBACKS[key]
            if any(isinstance(c, kind) for c in given):
                continue  # the config's own instance replaces the default
            if key == "checkpoint" and trainer.get("enable_checkpointing") is False:
                continue
            if key == "progress_bar" and trainer.get("enable_progress_bar") is False:
                continue
            if key == "model_summary" and trainer.get("enable_model_summary") is False:
                continue
            if key == "lr_monitor" and trainer.get("logger") is False:
                continue
            keep.append(callback)
        return self._instantiate_trainer(trainer, keep)

    # Checkpoints hold only tensors and plain containers, so restrict unpickling to those.
    def fit(self, model, weights_only: bool | None = None, **kwargs: Any) -> None:
        check_output_folders(self.trainer)
        if kwargs.get("ckpt_path") == "last":
            check_last_checkpoint(self.trainer)
        self.trainer.fit(model, weights_only=True if weights_only is None else weights_only, **kwargs)
        for callback in self.trainer.callbacks:  # after fit: below the progress bars, which stop at teardown
            if isinstance(callback, EndOfRunSummary) and callback.text:
                print("\n" + callback.text + (f"\n(saved as {callback.path})\n" if callback.path else ""), flush=True)

    def validate(self, model, weights_only: bool | None = None, **kwargs: Any) -> Any:
        return self.trainer.validate(model, weights_only=True if weights_only is None else weights_only, **kwargs)


class LightningNoise(logging.Filter):
    """Drops Lightning's lines that say nothing about the run: the tips advertising its cloud services (litlogger,
    litmodels) and the note that the standard ``model_summary`` replaces its default one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        tip = "Tip:" in message and ("litlogger" in message or "litmodels" in message)
        return not (tip or "Skipping setting a default `ModelSummary`" in message)


def silence_lightning_noise() -> None:
    """Attach ``LightningNoise`` once to the logger Lightning's ``rank_zero_info`` writes to."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, LightningNoise) for f in logger.filters):
        logger.addFilter(LightningNoise())


def cli_main(args: list[str] | dict | None = None, run: bool = True, **kwargs: Any) -> MaestroCLI:
    """Entry point for tests and ``python -m maestro_lit``: ``args`` replaces ``sys.argv[1:]``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    silence_lightning_noise()
    # Lightning's note assumes a pre-step snapshot; our checkpoints are taken between steps.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*is deprecated")
    # Lightning's own, about torch
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated")
    # args given in Python (tests, the testbed) are meant to replace sys.argv; Lightning warns with the whole config
    warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
    return MaestroCLI(
        MaestroModule, PromptDataModule, args=args, run=run, save_config_kwargs={"overwrite": True}, **kwargs
    )


class _ComposeCLI(MaestroCLI):
    def instantiate_classes(self) -> None:  # parse and validate only
        pass


def compose(args: list[str]) -> dict[str, Any]:
    """The config that ``fit ARGS`` would run (``--config`` files merged by the CLI itself), as a dict."""
    warnings.filterwarnings("ignore", message=".*args parameter is intended.*")  # see cli_main
    cli = _ComposeCLI(MaestroModule, PromptDataModule, args=args, run=False, save_config_callback=None)
    config = cli.config.clone()
    config.pop("config", None)
    return config.as_dict()


# Errors about user input: one line, no traceback (unless MAESTRO_LIT_DEBUG=1 or --debug).
# FileNotFoundError: a path the user gave (a config, a checkpoint, a data file); its message names it.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DataFileError,
    CheckpointError,
    RewardError,
    DivergenceError,
    FileNotFoundError,
)


def _argument_error() -> type[BaseException]:
    from jsonargparse import ArgumentError

    return ArgumentError


# Subcommands that are the project's own rather than LightningCLI's: name -> module with main(argv).
OWN_COMMANDS = {
    "export": "maestro_lit.export",  # merged HF folder + Conductor from a checkpoint
    "convert": "maestro_lit.data.convert",  # a task's original release -> NOVER's prepared format
    "compare": "maestro_lit.evals.compare",  # run folders -> the paper's Tables 1 and 2
    "diagnose": "maestro_lit.diagnose",  # rewards + method -> the Conductor's credit per action under null rewards
}


SIGTERM_EXIT = 128 + signal.SIGTERM  # 143: the shell's status for "terminated by SIGTERM"


def main(argv: list[str] | None = None) -> None:
    """``export``, ``convert``, ``compare`` and ``diagnose`` are ours (``OWN_COMMANDS``); the others are LightningCLI's.

    ``--debug`` (anywhere) or ``MAESTRO_LIT_DEBUG=1`` shows full tracebacks and usage text.

    Exit status: 0 done; 2 an error about the user's input (one ``error:`` line naming the key or the
    path); 143 (128 + SIGTERM) when a SIGTERM stopped ``fit`` after the state was saved. Lightning ends a
    fit on SIGTERM with status 0, but preemptible clusters (SLURM, Kubernetes, spot instances) send
    SIGTERM before they take the machine, and their schedulers read 0 as "finished": the job would not
    be requeued and the run would stay unfinished. 143 marks it as killed, so it is requeued and
    continues with ``--ckpt_path last``.
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0") or "--debug" in args
    args = [a for a in args if a != "--debug"]
    if argv is None:
        sys.argv[1:] = args  # LightningCLI reads sys.argv itself (and warns when given both)
    cli_args = None if argv is None else args

    def run() -> None:
        if args[:1] and args[0] in OWN_COMMANDS:
            module_name = OWN_COMMANDS[args[0]]
            import importlib

            try:
                importlib.import_module(module_name).main(args[1:])
            except FileNotFoundError:
                raise
            except (ValueError, OSError) as err:  # bad input or an unwritable path (their messages name the file/row)
                raise ConfigError(str(err)) from err
        else:
            cli_main(cli_args, **({} if debug else {"parser_kwargs": {"exit_on_error": False}}))

    try:
        if debug:
            run()
            return
        try:
            run()
        except (*USER_ERRORS, _argument_error()) as err:
            print(f"error: {err}\n(for the traceback: --debug or {DEBUG_ENV}=1)", file=sys.stderr)
            raise SystemExit(2) from None
    except SIGTERMException:
        note = f"stopped by SIGTERM after saving the state (exit {SIGTERM_EXIT}); continue with --ckpt_path last"
        print(note, file=sys.stderr)
        raise SystemExit(SIGTERM_EXIT) from None
