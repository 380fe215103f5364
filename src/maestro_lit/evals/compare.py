"""``python -m maestro_lit compare <run folders…>``: the paper's Table 1 and Table 2 from run folders.

What a run folder must contain (both written by the task configs' callbacks, found at any
depth, e.g. ``lightning_logs/version_0/``):

- ``benchmarks.csv`` from ``BenchmarkCallback`` with ``PaperTask`` benchmarks: the latest
  evaluation of each task is used (highest step, last written);
- ``run_info.json`` from ``RunInfo`` (method name, training seconds); without it the run's
  method is the folder name and its training time is unknown (``nan``).

A method may span several folders (the paper trains one run per task); rows are grouped by
method (``--label`` overrides it per folder, in order). When two runs of one method report the
same task, the run trained on that task (``run_info.json``'s ``task``) wins, else the first. Outputs in ``--output``:

- ``table1.md`` / ``table1.csv``: rows are tasks, columns are methods; a cell is the judged
  preference % followed by the task's deterministic metrics (``acc`` letter accuracy, ``R-L``
  ROUGE-L, ``chrF``, ``BLEU``); ``†`` marks numbers from the offline proxy judge, ``‡`` a judge
  that accepted more than ``FALSE_ACCEPT_WARN`` (20 %) of its negative controls
  (``judge_false_accept``), whose preference cannot be trusted.
- ``table2.md`` / ``table2.csv``: per method, total training time (sum over its runs), the
  change against the first method, and mean completion length (words, averaged over tasks).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from maestro_lit.callbacks.run_info import FILE_NAME as INFO_NAME
from maestro_lit.data.task_specs import TASKS
from maestro_lit.evals.judges.votes import FALSE_ACCEPT_WARN
from maestro_lit.evals.report import CSV_NAME

CELL_METRICS = (("letter_accuracy", "acc"), ("rouge_l", "R-L"), ("chrf", "chrF"), ("bleu", "BLEU"))


@dataclass
class MethodResults:
    name: str
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)
    train_seconds: list[float] = field(default_factory=list)


def _latest(folder: Path, name: str) -> Path | None:
    found = sorted(folder.rglob(name), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def read_benchmarks(path: Path) -> dict[str, dict[str, float]]:
    """Task -> metrics of its latest evaluation in a ``benchmarks.csv``."""
    latest: dict[str, tuple[int, int]] = {}
    rows: list[tuple[int, int, str, str, float]] = []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not valid UTF-8 ({err.reason})") from None
    for order, row in enumerate(csv.DictReader(io.StringIO(text, newline=""))):
        try:
            step, value = int(row["step"]), float(row["value"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{path}:{order + 2}: expected step,trigger,benchmark,metric,value columns ({err})"
            ) from None
        rows.append((step, order, row["benchmark"], row["metric"], value))
        if row["benchmark"] in TASKS:
            key = (step, order)
            latest[row["benchmark"]] = max(latest.get(row["benchmark"], key), key)
    out: dict[str, dict[str, float]] = {}
    for step, _order, task, metric, value in rows:
        if task in latest and step == latest[task][0]:
            out.setdefault(task, {})[metric] = value  # later rows of that step overwrite earlier ones
    return out


def read_run_info(path: Path) -> dict:
    """A ``run_info.json``; a damaged one names itself."""
    try:
        info = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid UTF-8 ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: malformed JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(info).__name__}")
    return info


def collect(folders: Sequence[str], labels: Sequence[str] = ()) -> list[MethodResults]:
    methods: dict[str, MethodResults] = {}
    for index, name in enumerate(folders):
        folder = Path(name)
        if not folder.is_dir():
            raise ValueError(f"{folder}: not a run folder")
        bench = _latest(folder, CSV_NAME)
        if bench is None:
            raise ValueError(
                f"{folder}: no {CSV_NAME} (run `validate` or `fit` with the task config's BenchmarkCallback)"
            )
        info_path = _latest(folder, INFO_NAME)
        info = read_run_info(info_path) if info_path else {}
        label = labels[index] if index < len(labels) else str(info.get("method") or folder.name)
        method = methods.setdefault(label, MethodResults(label))
        for task, metrics in read_benchmarks(bench).items():
            # Two runs of one method reporting a task: the run trained on that task wins, else the first.
            if task not in method.tasks or info.get("task") == task:
                method.tasks[task] = metrics
        try:
            method.train_seconds.append(float(info.get("train_seconds", math.nan)))
        except (TypeError, ValueError):
            raise ValueError(f"{info_path}: 'train_seconds' must be a number, got {info['train_seconds']!r}") from None
    return list(methods.values())


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def preference(metrics: dict[str, float]) -> tuple[float | None, bool]:
    """(preference %, from the proxy judge?)."""
    if "preference" in metrics:
        return metrics["preference"], False
    return metrics.get("preference_proxy"), "preference_proxy" in metrics


def cell(metrics: dict[str, float] | None) -> str:
    if not metrics:
        return "–"
    value, proxy = preference(metrics)
    extras = [f"{short} {_fmt(metrics[key])}" for key, short in CELL_METRICS if key in metrics]
    false_accept = metrics.get("judge_false_accept_proxy" if proxy else "judge_false_accept", math.nan)
    text = _fmt(value) + ("†" if proxy else "") + ("‡" if false_accept > FALSE_ACCEPT_WARN else "")
    return f"{text} ({', '.join(extras)})" if extras else text


def table1(methods: list[MethodResults]) -> tuple[str, list[list[str]]]:
    tasks = [t for t in TASKS if any(t in m.tasks for m in methods)]
    lines = ["| task | " + " | ".join(m.name for m in methods) + " |", "|---" * (len(methods) + 1) + "|"]
    rows = []
    for task in tasks:
        lines.append(f"| {TASKS[task].title} | " + " | ".join(cell(m.tasks.get(task)) for m in methods) + " |")
        for m in methods:
            for metric, value in sorted(m.tasks.get(task, {}).items()):
                rows.append([task, m.name, metric, repr(value)])
    notes = (
        "\n\nCells: preference % (judge, 3-vote majority; pairwise votes in both orders, a tie counts half) then "
        "deterministic metrics. † offline proxy judge, not the paper's protocol. ‡ the judge accepted more than "
        f"{100 * FALSE_ACCEPT_WARN:.0f} % of its negative controls: not trustworthy.\n"
    )
    return "\n".join(lines) + notes, rows


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def table2(methods: list[MethodResults]) -> tuple[str, list[list[str]]]:
    base = sum(methods[0].train_seconds) if methods else math.nan
    lines = [
        "| method | runs | training time (s) | vs "
        + (methods[0].name if methods else "")
        + " | mean completion (words) |",
        "|---|---|---|---|---|",
    ]
    rows = []
    for m in methods:
        total = sum(m.train_seconds)
        change = 100.0 * (total - base) / base if base and not math.isnan(base) else math.nan
        words = _mean([t.get("completion_words", math.nan) for t in m.tasks.values()])
        sign = "+" if change > 0 else ""
        lines.append(f"| {m.name} | {len(m.train_seconds)} | {_fmt(total)} | {sign}{_fmt(change)} % | {_fmt(words)} |")
        rows.append([m.name, str(len(m.train_seconds)), repr(total), repr(change), repr(words)])
    return "\n".join(lines) + "\n", rows


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maestro_lit compare", description=__doc__.split("\n")[0])
    parser.add_argument(
        "runs", nargs="+", help="run folders (each holds benchmarks.csv and run_info.json at any depth)"
    )
    parser.add_argument(
        "--label", action="append", default=[], help="method name for the run folder at the same position"
    )
    parser.add_argument(
        "--output", default="compare", help="folder for table1/table2 .md and .csv (default: ./compare)"
    )
    args = parser.parse_args(argv)
    methods = collect(args.runs, args.label)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is a file; give a folder (table1/table2 .md and .csv are written into it)")
    out.mkdir(parents=True, exist_ok=True)
    md1, rows1 = table1(methods)
    md2, rows2 = table2(methods)
    (out / "table1.md").write_text("## Table 1: preference % per task\n\n" + md1, encoding="utf-8")
    (out / "table2.md").write_text("## Table 2: training time and completion length\n\n" + md2, encoding="utf-8")
    _write_csv(out / "table1.csv", ["task", "method", "metric", "value"], rows1)
    _write_csv(out / "table2.csv", ["method", "runs", "train_seconds", "change_pct", "completion_words"], rows2)
    print(md1 + "\n" + md2)
    return 0
