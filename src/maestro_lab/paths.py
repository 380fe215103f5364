"""Where the lab's shipped files live: testbed designs and their configs, resolved from this file."""

from __future__ import annotations

from pathlib import Path

LAB = Path(__file__).resolve().parent
TESTBED_ASSETS = {
    "v1": LAB / "assets" / "testbed",
    "v2": LAB / "assets" / "testbed_v2",
    "v3": LAB / "assets" / "testbed_v3",
}
"""Testbed designs: each folder holds train.jsonl, heldout.jsonl and true_weights.json."""
TESTBED_CONFIGS = LAB / "configs" / "testbed"
"""The testbed's base, designs and method files (``--config`` files of its runs)."""
