"""Reading NOVER's prepared task files: columns ``prompt, reference, split`` in CSV, JSONL or Parquet.

Why one reader for training and evaluation: the paper trains on a task's ``train`` split and
judges its ``test`` split of the same prepared file, so both must see identical rows. A source
is a local file or a Hugging Face dataset id (e.g. NOVER's ``thinkwee/NOVEReason_2k``; needs
the ``hub`` extra and network). Rows come back as ``(location, row)`` with ``location`` =
``file:line`` so a bad row names itself; with a configured task name every row gets ``task``
and ``category`` (the row's own values win) for per-category logging.

Split selection: a row belongs to ``split`` when its ``split`` column equals it; a file without
a ``split`` column is one split that every split name selects (a plain train file works).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maestro_lit.data.jsonl import iter_jsonl

Row = dict[str, Any]
LOCAL_SUFFIXES = {".csv", ".jsonl", ".json", ".parquet"}


class TaskDataError(ValueError):
    """A prepared task file is missing, malformed or lacks a column; the message names file:line."""


def _iter_csv(path: Path) -> Iterator[tuple[int, Row]]:
    csv.field_size_limit(sys.maxsize)  # NOVER's prompts hold whole book passages
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            yield reader.line_num, dict(row)


def _iter_parquet(path: Path) -> Iterator[tuple[int, Row]]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _iter_hub(name: str, split: str, config: str | None, error: type[Exception]) -> Iterator[tuple[int, Row]]:
    try:
        import datasets
    except ImportError as err:
        raise error(f"{name!r} is not a local file; hub datasets need `pip install 'maestro_lit[hub]'`") from err
    try:
        dataset = datasets.load_dataset(name, config, split=split, streaming=True)
        tagged = False
    except ValueError:  # no split of that name: one table whose rows carry a `split` column
        dataset, tagged = datasets.load_dataset(name, config, split="train", streaming=True), True
    for index, row in enumerate(dataset, start=1):
        row = dict(row)
        if not tagged:
            row.setdefault("split", split)
        yield index, row


def raw_rows(
    source: str, split: str = "train", config: str | None = None, error: type[Exception] = TaskDataError
) -> Iterator[tuple[int, Row]]:
    """``(line, row)`` of a local CSV/JSONL/Parquet file or a hub dataset, unvalidated and unfiltered."""
    path = Path(source).expanduser()
    if path.suffix.lower() in LOCAL_SUFFIXES or path.exists():
        if not path.is_file():
            raise error(f"prompt file {source} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return _iter_csv(path)
        if suffix == ".parquet":
            return _iter_parquet(path)
        return iter_jsonl(path, error)
    return _iter_hub(source, split, config, error)


def in_split(row: Row, split: str | None) -> bool:
    """True when ``row`` belongs to ``split``; rows without a ``split`` value belong to every split."""
    value = row.get("split")
    return split is None or value in (None, "") or str(value) == split


def tag_task(row: Row, task: str | None) -> Row:
    """Give ``row`` its ``task`` and ``category`` (the row's own values win) when a task name is configured."""
    if task:
        row["task"] = row.get("task") or task
    if row.get("task"):
        row["category"] = row.get("category") or row["task"]
    return row


def iter_prepared(
    source: str, split: str | None = None, task: str | None = None, config: str | None = None
) -> Iterator[tuple[str, Row]]:
    """Rows of ``split`` (all rows when ``None``) with ``prompt``/``reference`` checked and
    ``task``/``category`` set."""
    for number, row in raw_rows(source, split or "train", config):
        location = f"{source}:{number}"
        if not in_split(row, split):
            continue
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise TaskDataError(f"{location}: 'prompt' must be a non-empty string (columns: {sorted(row)})")
        reference = row.get("reference")
        if reference is not None and not isinstance(reference, str):
            raise TaskDataError(f"{location}: 'reference' must be a string, got {type(reference).__name__}")
        yield location, tag_task(row, task)


def read_prepared(
    source: str, split: str | None = None, task: str | None = None, config: str | None = None
) -> list[tuple[str, Row]]:
    """All rows of ``split``; fails naming the source when the split is empty."""
    rows = list(iter_prepared(source, split, task, config))
    if not rows:
        raise TaskDataError(f"{source}: no rows in split {split!r}")
    return rows


def split_counts(source: str) -> dict[str, int]:
    """Rows per ``split`` value (``""`` for rows without one), for measuring prepared files."""
    counts: dict[str, int] = {}
    for _, row in iter_prepared(source):
        key = str(row.get("split") or "")
        counts[key] = counts.get(key, 0) + 1
    return counts
