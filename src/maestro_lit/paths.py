"""Where the files shipped inside the package live: defined once, resolved from this file.

They ship as package data, so these paths hold for an editable and a non-editable install.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
TRAIN_PROMPTS = ASSETS / "prompts" / "train.jsonl"
"""The shipped prompt set: the default ``data.train_path``."""
VAL_PROMPTS = ASSETS / "prompts" / "val.jsonl"
"""The default ``data.val_path``."""


def project_configs() -> Path:
    """The repository's ``configs/`` folder (method presets etc.), which is not package data.

    Looked up beside the source checkout, then in the working directory, so the simulator and the
    testbed run the same preset files a user passes to ``fit`` when run from a clone.
    """
    for candidate in (Path(__file__).resolve().parents[2] / "configs", Path.cwd() / "configs"):
        if (candidate / "methods").is_dir():
            return candidate
    raise FileNotFoundError(
        "the project's configs/ folder (configs/methods/*.yaml) was not found beside the source checkout "
        f"or in the working directory {Path.cwd()}: run this from a clone of the repository"
    )
