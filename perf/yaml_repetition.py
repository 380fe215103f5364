"""Repeated YAML share: how much of the config tree is copied between files.

    python perf/yaml_repetition.py [ROOT ...]   (default: configs src/maestro_lab/configs)

A line counts as repeated when it lies in a run of ``RUN`` consecutive non-comment lines
(blank and comment-only lines dropped, trailing comments and whitespace stripped) that also
appears in another file. The share is repeated lines / all non-comment lines.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

RUN = 4


def content_lines(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if line.strip() and not line.strip().startswith("#"):
            lines.append(line)
    return lines


def repeated_share(files: list[Path], run: int = RUN) -> tuple[int, int]:
    """(repeated lines, all non-comment lines) over ``files``."""
    lines = {path: content_lines(path.read_text()) for path in files}
    owners: dict[tuple[str, ...], set[Path]] = defaultdict(set)
    for path, own in lines.items():
        for i in range(len(own) - run + 1):
            owners[tuple(own[i : i + run])].add(path)
    repeated = total = 0
    for own in lines.values():
        marked = [False] * len(own)
        for i in range(len(own) - run + 1):
            if len(owners[tuple(own[i : i + run])]) > 1:
                marked[i : i + run] = [True] * run
        repeated, total = repeated + sum(marked), total + len(own)
    return repeated, total


def main(roots: list[str]) -> None:
    files = sorted(p for root in roots for p in Path(root).rglob("*.yaml"))
    repeated, total = repeated_share(files)
    print(
        f"{len(files)} files, {total} non-comment lines, {repeated} in a {RUN}-line run also in another file: "
        f"{repeated / max(total, 1):.1%}"
    )


if __name__ == "__main__":
    main(sys.argv[1:] or ["configs", "src/maestro_lab/configs"])
