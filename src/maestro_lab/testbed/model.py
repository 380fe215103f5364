"""Testbed v3's policy: the embedded tiny architecture warmed up to write every style for every prompt.

The lab builds it on first use through the product's own builder (``maestro_lit.tiny.ensure_built``)
and hands the run its folder, so the product never needs to know this model exists.
"""

from __future__ import annotations

from pathlib import Path

from maestro_lab.paths import TESTBED_ASSETS
from maestro_lab.testbed.behaviours import warmup_pairs
from maestro_lit.tiny import cache_dir, ensure_built, read_rows

TESTBED_V3_MODEL_ID = "maestro-lit/tiny-testbed-v3"
"""The id v3's design file names; ``resolve`` turns it into the built folder."""


def ensure_testbed_v3_model(root: Path | None = None, warmup_steps: int = 600) -> Path:
    """Build (once) and return v3's policy folder: every v3 training prompt answered in each style."""

    def pairs() -> list[tuple[str, str]]:
        return warmup_pairs(read_rows(TESTBED_ASSETS["v3"] / "train.jsonl"))

    return ensure_built((root or cache_dir()) / "tiny-testbed-v3", pairs, warmup_steps)


def resolve(name_or_path: str) -> str:
    """v3's model id to its built folder; anything else unchanged."""
    return str(ensure_testbed_v3_model()) if name_or_path == TESTBED_V3_MODEL_ID else name_or_path
