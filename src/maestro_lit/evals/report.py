"""Writing benchmark results to the run directory: a CSV history and a markdown table.

Why both: the CSV (long format, appended at every evaluation) is for plotting and diffing
runs; ``benchmarks.md`` (rewritten each time) is the latest table to paste into a report.
Per-item answers go to ``benchmarks/<name>_step<step>.jsonl`` for reading what the model said.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

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


def markdown_table(results: Sequence[BenchmarkResult], step: int, trigger: str) -> str:
    lines = [f"## Benchmarks at step {step} ({trigger})", "", "| benchmark | metric | value |", "|---|---|---|"]
    for result in results:
        for metric, value in result.metrics.items():
            lines.append(f"| {result.name} | {metric} | {_fmt(float(value))} |")
        lines.append(f"| {result.name} | seconds | {result.seconds:.1f} |")
    return "\n".join(lines) + "\n"


def write_markdown(run_dir: Path, results: Sequence[BenchmarkResult], step: int, trigger: str) -> Path:
    path = run_dir / MD_NAME
    path.write_text(markdown_table(results, step, trigger), encoding="utf-8")
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
    paths = [append_csv(run_dir, results, step, trigger), write_markdown(run_dir, results, step, trigger)]
    return paths + [write_records(run_dir, r, step) for r in results]
