"""Reading NOVER's prepared task files: columns ``prompt, reference, split`` in CSV, JSONL or Parquet.

Why one reader for training and evaluation: the paper trains on a task's ``train`` split and
judges its ``test`` split of the same prepared file, so both must see identical rows. A source
is a local file or a Hugging Face dataset id (e.g. NOVER's ``thinkwee/NOVEReason_2k``; needs
the ``hub`` extra and network). Rows come back as ``(location, row)`` with ``location`` =
``file:line`` so a bad row names itself; with a configured task name every row gets ``task``
and ``category`` (the row's own values win) for per-category logging.

Split selection: a row belongs to ``split`` when its ``split`` column equals it; a file without
a ``split`` column is one split that every split name selects (a plain train file works).

Files are UTF-8 (a byte-order mark is allowed); CSV is read strictly, naming the line: a quote
that never closes (which a lenient reader turns into one value swallowing the rest of the file)
or a row with more or fewer fields than the header is an error. Quoted values may span lines;
a row's number is the line it starts on.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maestro_lit.data.jsonl import iter_jsonl

Row = dict[str, Any]
LOCAL_SUFFIXES = {".csv", ".jsonl", ".json", ".parquet"}


class TaskDataError(ValueError):
    """A prepared task file is missing, malformed or lacks a column; the message names file:line."""


CR_LINE = re.compile(r"(?<=\r)(?!\n)(?=.)", re.DOTALL)  # after a lone "\r" line ending


class _Lines:
    """The lines of a file opened in binary, decoded one at a time and numbered; ``record`` keeps the lines
    of the CSV record being read, so an error can name the line where a quoted field opened."""

    def __init__(self, fh: Any, path: Path, error: type[Exception]) -> None:
        self.fh, self.path, self.error = fh, path, error
        self.number = 0
        self.record: list[str] = []
        self.pending: list[str] = []  # the rest of a binary line that old-Mac "\r" endings split in several

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if not self.pending:
            raw = next(self.fh)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise self.error(
                    f"{self.path}:{self.number + 1}: not valid UTF-8 ({err.reason} at byte {err.start + 1}); "
                    "save the file as UTF-8"
                ) from None
            if self.number == 0:
                text = text.removeprefix("\ufeff")  # a byte-order mark (Excel's "CSV UTF-8")
            self.pending = CR_LINE.split(text)[::-1]
        self.number += 1
        text = self.pending.pop()
        self.record.append(text)
        return text


def _quote_opening(lines: list[str], first: int) -> int:
    """The line (numbered from ``first``) of the quoted field where CSV quoting first goes wrong: the field
    still open at the end of ``lines``, or the first one whose closing quote is followed by more text."""
    opened, at_field_start, quoted, number = first, True, False, first
    text = "".join(lines)
    i = 0
    while i < len(text):
        char = text[i]
        if quoted:
            if char == '"':
                if text[i + 1 : i + 2] == '"':
                    i += 1  # an escaped quote
                elif text[i + 1 : i + 2] not in ("", ",", "\r", "\n"):
                    return opened  # text after the closing quote: this field's quotes are unbalanced
                else:
                    quoted = False
        elif char == '"' and at_field_start:
            quoted, opened = True, number
        at_field_start = not quoted and char in ",\n"
        if char == "\n":
            number += 1
        i += 1
    return opened


def _iter_csv(path: Path, error: type[Exception]) -> Iterator[tuple[int, Row]]:
    """Rows of a CSV file with a header; a row's number is the line it starts on.

    Strict: an unbalanced quote (which would otherwise swallow the following lines into one field) and a row
    with more or fewer fields than the header raise ``error`` naming the line."""
    csv.field_size_limit(sys.maxsize)  # NOVER's prompts hold whole book passages
    with _open(path, error) as fh:
        lines = _Lines(fh, path, error)
        reader = csv.reader(lines, strict=True)
        header: list[str] | None = None
        while True:
            lines.record = []
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                first = lines.number - len(lines.record) + 1
                opened = _quote_opening(lines.record, first)
                if lines.number > opened and str(err).startswith("unexpected end of data"):
                    raise error(
                        f"{path}:{opened}: a quoted field opens on this line and is never closed "
                        f"(lines {opened}-{lines.number} would be read as one value); check its quotes"
                    ) from None
                raise error(
                    f"{path}:{opened}: unbalanced quotes in the field that opens on this line ({err})"
                ) from None
            if not record:
                continue  # a blank line
            start = lines.number - len(lines.record) + 1
            if header is None:
                header = record
                continue
            if len(record) != len(header):
                spans = (
                    f" (the row runs over lines {start}-{lines.number}: check its quotes)"
                    if lines.number > start
                    else ""
                )
                raise error(
                    f"{path}:{start}: {len(record)} fields, but the header has {len(header)} ({', '.join(header)})"
                    f"{spans}; quote values that hold a comma"
                )
            yield start, dict(zip(header, record))


def _open(path: Path, error: type[Exception]) -> Any:
    """``path`` opened for binary reading; a permission or I/O error names the file."""
    try:
        return path.open("rb")
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror or err})") from None


def _iter_parquet(path: Path, error: type[Exception]) -> Iterator[tuple[int, Row]]:
    import pyarrow.parquet as pq

    number = 0
    _open(path, error).close()  # a permission error names the file
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid/ArrowIOError: a damaged or non-Parquet file
        raise error(f"{path}: not a readable Parquet file after row {number} ({err})") from None


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


def is_local(source: str) -> bool:
    """Whether ``source`` names a local file (by its suffix or because it exists) rather than a hub dataset."""
    path = Path(source).expanduser()
    return path.suffix.lower() in LOCAL_SUFFIXES or path.exists()


def raw_rows(
    source: str, split: str = "train", config: str | None = None, error: type[Exception] = TaskDataError
) -> Iterator[tuple[int, Row]]:
    """``(line, row)`` of a local CSV/JSONL/Parquet file or a hub dataset, unvalidated and unfiltered."""
    path = Path(source).expanduser()
    if is_local(source):
        if path.is_dir():
            raise error(
                f"prompt file {source} is a folder, not a file: give the path of a .csv, .jsonl or .parquet file"
            )
        if not path.is_file():
            raise error(f"prompt file {source} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return _iter_csv(path, error)
        if suffix == ".parquet":
            return _iter_parquet(path, error)
        _open(path, error).close()  # a permission error names the file
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
