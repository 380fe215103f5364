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
TESTBED_ASSETS = {"v1": ASSETS / "testbed", "v2": ASSETS / "testbed_v2"}
"""Testbed designs: each folder holds train.jsonl, heldout.jsonl and true_weights.json."""
