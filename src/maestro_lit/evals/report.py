"""Writing benchmark results to the run directory: a CSV history and a markdown table.

Why both: the CSV (long format, appended at every evaluation) is for plotting and diffing
runs; ``benchmarks.md`` (rewritten from the CSV each time) is the table to paste into a report: each
benchmark's latest evaluation, whichever callback ran it, so the seven paper tasks' callbacks share one table.
Per-item answers go to ``benchmarks/<name>_step<step>.jsonl`` for reading what the model said.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

from maestro_lit import atomic_io
from maestro_lit.evals.base import BenchmarkResult

CSV_NAME, MD_NAME = "benchmarks.csv", "benchmarks.md"
CSV_HEADER = ["step", "trigger", "benchmark", "metric", "value"]


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4g}"


def append_csv(run_dir: Path, results: Sequence[BenchmarkResult], step: int, trigger: str) -> Path:
    path = run_dir / CSV_NAME
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(CSV_HEADER)
        for result in results:
            for metric, value in {**result.metrics, "seconds": result.seconds}.items():
                writer.writerow([step, trigger, result.name, metric, repr(float(value))])
    return path


def latest_rows(csv_path: Path) -> list[list[str]]:
    """``[benchmark, step, trigger, metric, value]`` of each benchmark's latest evaluation in the CSV, in the
    order the benchmarks first appear (the latest: the last rows written for that benchmark)."""
    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    latest: dict[str, tuple[str, str]] = {}
    for row in rows:
        latest[row["benchmark"]] = (row["step"], row["trigger"])
    return [
        [row["benchmark"], row["step"], row["trigger"], row["metric"], row["value"]]
        for row in rows
        if latest[row["benchmark"]] == (row["step"], row["trigger"])
    ]


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    lines = ["## Benchmarks (each one's latest evaluation)", ""]
    lines += ["| benchmark | step | trigger | metric | value |", "|---|---|---|---|---|"]
    for benchmark, step, trigger, metric, value in rows:
        shown = f"{float(value):.1f}" if metric == "seconds" else _fmt(float(value))
        lines.append(f"| {benchmark} | {step} | {trigger} | {metric} | {shown} |")
    return "\n".join(lines) + "\n"


def write_markdown(run_dir: Path) -> Path:
    """Rewrite ``benchmarks.md`` from ``benchmarks.csv`` (written first)."""
    path = run_dir / MD_NAME
    atomic_io.write_text(path, markdown_table(latest_rows(run_dir / CSV_NAME)))
    return path


def write_records(run_dir: Path, result: BenchmarkResult, step: int) -> Path:
    folder = run_dir / "benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.name}_step{step}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for record in result.records:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    return path


def write_all(run_dir: str | Path, results: Sequence[BenchmarkResult], step: int, trigger: str) -> list[Path]:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = [append_csv(run_dir, results, step, trigger), write_markdown(run_dir)]
    return paths + [write_records(run_dir, r, step) for r in results]
