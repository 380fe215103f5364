"""Streaming JSONL reading shared by prompt data and benchmark files: errors name ``file:line``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def iter_jsonl(path: Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` per non-blank line, one line in memory at a time.

    Undecodable bytes, malformed JSON and non-object lines raise ``error`` naming file and line.
    """
    with Path(path).open("rb") as f:
        for line_number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise error(f"{path}:{line_number}: not valid UTF-8 ({err.reason})") from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise error(f"{path}:{line_number}: malformed JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{line_number}: expected a JSON object, got {type(row).__name__}")
            yield line_number, row
