"""Command line: LightningCLI over MaestroModule and PromptDataModule.

``python -m maestro_lit fit --config configs/quickstart.yaml``; also ``validate``,
``--print_config`` and ``fit --ckpt_path``. Checkpoints are loaded with
``weights_only=True``: they hold only tensors and plain containers.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from lightning.pytorch.cli import LightningCLI

from maestro_lit.checkpointing import verify_checkpoint
from maestro_lit.data import PromptDataModule
from maestro_lit.module import MaestroModule


class MaestroCLI(LightningCLI):
    """LightningCLI with project defaults: outputs under ``checkpoints/``, safe checkpoint loading."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--torch_threads",
            type=int | None,
            default=None,
            help="torch intra-op threads; 1 suits tiny models on CPU and avoids OpenMP spin-wait slowdowns on shared machines",
        )
        parser.set_defaults(
            {
                "trainer.default_root_dir": "checkpoints",
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": "checkpoints", "name": "maestro"},
                },
            }
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("torch_threads"):
            torch.set_num_threads(config["torch_threads"])  # before the model loads (and maybe warms up)

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
            verify_checkpoint(ckpt_path)  # a damaged file fails here, by name, before anything runs

    # Checkpoints hold only tensors and plain containers, so restrict unpickling to those.
    def fit(self, model, weights_only: bool | None = None, **kwargs: Any) -> None:
        self.trainer.fit(model, weights_only=True if weights_only is None else weights_only, **kwargs)

    def validate(self, model, weights_only: bool | None = None, **kwargs: Any) -> Any:
        return self.trainer.validate(model, weights_only=True if weights_only is None else weights_only, **kwargs)


def cli_main(args: list[str] | dict | None = None, run: bool = True) -> MaestroCLI:
    """Entry point for tests and ``python -m maestro_lit``: ``args`` replaces ``sys.argv[1:]``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Lightning's note assumes a pre-step snapshot; our checkpoints are taken between steps.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*is deprecated")
    return MaestroCLI(
        MaestroModule,
        PromptDataModule,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
    )


def main() -> None:
    """``export`` is ours (``maestro_lit.export``); every other subcommand is LightningCLI's."""
    import sys

    if sys.argv[1:2] == ["export"]:
        from maestro_lit.export import main as export_main

        export_main(sys.argv[2:])
        return
    cli_main()
