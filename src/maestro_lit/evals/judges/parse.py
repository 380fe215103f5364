"""Parsing judge replies: MT-Bench/WritingBench grades and Arena-Hard/AlpacaEval verdicts.

A reply with no recognisable grade returns ``None`` (a failed item), never raises.
"""

from __future__ import annotations

import json
import re
from typing import Optional

_SCORE_PATTERNS = (
    re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]"),  # MT-Bench: Rating: [[7]]
    re.compile(r"\[\s*(\d+(?:\.\d+)?)\s*\]"),  # MT-Bench's fallback: [7]
    re.compile(r'"score"\s*:\s*"?(\d+(?:\.\d+)?)'),  # WritingBench: {"score": 7, ...}
)
# Verdicts in slot terms: A's share of the win (1, 0.5, 0).
_VERDICTS = {
    "A>>B": 1.0,
    "A>B": 1.0,
    "A=B": 0.5,
    "B>A": 0.0,
    "B>>A": 0.0,
    "B<<A": 1.0,
    "B<A": 1.0,
    "A<B": 0.0,
    "A<<B": 0.0,
    "A": 1.0,
    "B": 0.0,
    "C": 0.5,  # MT-Bench pairwise: [[A]], [[B]], [[C]] (tie)
}
_VERDICT = re.compile(r"\[\[\s*([ABC](?:\s*(?:>>|>|=|<<|<)\s*[AB])?)\s*\]\]")
_ALPACA = re.compile(r"Output\s*\(([ab])\)", re.IGNORECASE)


def parse_score(reply: str, low: float = 1.0, high: float = 10.0) -> Optional[float]:
    """The first grade found, if inside [low, high]."""
    for pattern in _SCORE_PATTERNS:
        match = pattern.search(reply)
        if match:
            value = float(match.group(1))
            return value if low <= value <= high else None
    try:
        data = json.loads(reply)
    except ValueError:
        return None
    if isinstance(data, (int, float)) and low <= data <= high:
        return float(data)
    return None


def parse_verdict(reply: str) -> Optional[float]:
    """Slot A's share of the win from ``[[A>B]]``-style verdicts or AlpacaEval's ``Output (a)``.

    Arena-Hard judges sometimes restate the scale before deciding, so the last verdict wins.
    """
    found = _VERDICT.findall(reply)
    if found:
        return _VERDICTS.get(re.sub(r"\s+", "", found[-1]))
    alpaca = _ALPACA.findall(reply)
    if alpaca:
        return 1.0 if alpaca[-1].lower() == "a" else 0.0
    return None
