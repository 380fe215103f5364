"""Reading benchmark files in their published formats, with errors that name file:line:field.

Every loader returns ``Record`` pairs ``(where, row)``: ``where`` says exactly where a row
came from ("question.jsonl:7", "alpaca_eval.json[3]", "TruthfulQA.csv:row 12", a hub id), so an
adapter that finds a missing field can point at it without tracking positions itself.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from maestro_lit.data.jsonl import iter_jsonl

Record = tuple[str, dict[str, Any]]
DATA_DIR = Path(__file__).resolve().parent / "data"


class BenchmarkDataError(ValueError):
    """A benchmark file is missing, malformed, or lacks a field; the message says where."""


def sample_path(*parts: str) -> Path:
    """Path of a sample file shipped with the package (``data/<benchmark>/<file>``)."""
    return DATA_DIR.joinpath(*parts)


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise BenchmarkDataError(f"{path}: benchmark file not found")
    return path


def read_jsonl(path: str | Path) -> list[Record]:
    """One JSON object per non-blank line; a bad line fails as ``file:line``."""
    path = _existing(path)
    return [(f"{path}:{lineno}", row) for lineno, row in iter_jsonl(path, BenchmarkDataError)]


def read_json(path: str | Path) -> Any:
    """A whole-file JSON document (AlpacaEval's list, EQ-Bench's dict)."""
    path = _existing(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BenchmarkDataError(f"{path}:{err.lineno}: malformed JSON ({err.msg} at column {err.colno})") from err


def read_json_list(path: str | Path) -> list[Record]:
    data = read_json(path)
    if not isinstance(data, list):
        raise BenchmarkDataError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    out: list[Record] = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise BenchmarkDataError(f"{path}[{i}]: expected a JSON object, got {type(row).__name__}")
        out.append((f"{path}[{i}]", row))
    return out


def read_csv(path: str | Path) -> list[Record]:
    """CSV with a header row; ``where`` is the 1-based file line of each row."""
    path = _existing(path)
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return [(f"{path}:{reader.line_num}", dict(row)) for row in reader]


def read_records(path: str | Path) -> list[Record]:
    """Dispatch on extension: .jsonl, .json (a list), .csv."""
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".csv":
        return read_csv(path)
    return read_json_list(path)


def require(row: dict[str, Any], fields: Iterable[str], where: str) -> None:
    """Fail naming the first missing (or null) field and where the row came from."""
    for field in fields:
        if row.get(field) is None:
            raise BenchmarkDataError(f"{where}: missing field '{field}'")


def field(row: dict[str, Any], name: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    """``row[name]`` checked for presence and type."""
    require(row, [name], where)
    value = row[name]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BenchmarkDataError(f"{where}: field '{name}' should be {names}, got {type(value).__name__}")
    return value


def load_hub(hub_id: str, config: str | None = None, split: str = "test") -> list[Record]:
    """Rows of a dataset on the Hugging Face hub (needs network and ``datasets``)."""
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise BenchmarkDataError(
            f"loading benchmark '{hub_id}' from the hub needs `pip install datasets` (or maestro_lit[hub]); "
            "pass a local `path` instead"
        ) from err
    dataset = datasets.load_dataset(hub_id, config, split=split)  # pragma: no cover - network
    return [(f"{hub_id}[{split}][{i}]", dict(row)) for i, row in enumerate(dataset)]  # pragma: no cover
