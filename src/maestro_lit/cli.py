"""Command line: LightningCLI over MaestroModule and PromptDataModule.

``python -m maestro_lit fit --config configs/quickstart.yaml``; also ``validate``,
``--print_config`` and ``fit --ckpt_path``. Checkpoints are loaded with
``weights_only=True``: they hold only tensors and plain containers.
"""

from __future__ import annotations

import os
from typing import Any
from lightning.pytorch.cli import LightningCLI

from maestro_lit.data import PromptDataModule
from maestro_lit.module import MaestroModule


class MaestroCLI(LightningCLI):
    """LightningCLI with project defaults: outputs under ``checkpoints/``, safe checkpoint loading."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults(
            {
                "trainer.default_root_dir": "checkpoints",
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": "checkpoints", "name": "maestro"},
                },
            }
        )


    # Checkpoints hold only tensors and plain containers, so restrict unpickling to those.
    def fit(self, model, weights_only: bool | None = None, **kwargs: Any) -> None:
        self.trainer.fit(model, weights_only=True if weights_only is None else weights_only, **kwargs)

    def validate(self, model, weights_only: bool | None = None, **kwargs: Any) -> Any:
        return self.trainer.validate(model, weights_only=True if weights_only is None else weights_only, **kwargs)


def cli_main(args: list[str] | dict | None = None, run: bool = True) -> MaestroCLI:
    """Entry point for tests and ``python -m maestro_lit``: ``args`` replaces ``sys.argv[1:]``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return MaestroCLI(
        MaestroModule,
        PromptDataModule,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
    )


def main() -> None:
    cli_main()
