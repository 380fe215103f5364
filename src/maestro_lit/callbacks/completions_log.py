"""``completions.jsonl``: every logged step's completions, one JSON object a line, in the run folder.

Why a file beside the loggers: it is the one view every run has, whatever logger (or none) it uses,
and the one a script can read back (``read_completions``). Lines are appended, never rewritten: each
step's lines go to the file in one ``write`` on a descriptor opened with ``O_APPEND`` and are flushed to
disk before the call returns, so a crash loses at most the line being written; ``read_completions``
skips such a torn last line. A resumed run that writes to the same folder appends after the lines
already there (the ``step`` field tells them apart).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE_NAME = "completions.jsonl"


def append_completions(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` as JSON lines to ``path`` (created if absent) and flush them to disk."""
    if not rows:
        return
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # a write may be short (a signal, a full pipe); finish it
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_completions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``completions.jsonl``; a torn last line (a crash mid-write) is left out."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # the last line, without its newline: torn by a crash
                break
            raise ValueError(f"{path}:{number}: not a JSON object") from None
    return rows
