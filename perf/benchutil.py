"""Shared pieces of the performance harnesses: child runs, step clocks, medians, tables.

Why children: every measured run happens in a fresh ``python`` process, so peak RSS is
that run's own, no allocator or thread-pool state leaks from one contender into the
next, and the contenders can be alternated (A B A B ...) on a shared, noisy machine.
A child prints one JSON line prefixed with ``RESULT``; the parent collects them.
Step times are taken *inside* the training loop (intervals between consecutive
optimizer-step ends), never from process start, so import and model-load time is out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MARK = "RESULT "
THREADS = 1  # torch threads per child; the same for every contender (set by the harness's --threads)


def harness_parser(description: str, repeats: int, steps: int) -> argparse.ArgumentParser:
    """The options every alternating harness shares: rounds, steps per run, warm-up, torch threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--steps", type=int, default=steps, help="optimizer steps per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    return parser


def parse_harness_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, and make ``--threads`` the thread count of every child run."""
    global THREADS
    args = parser.parse_args()
    THREADS = args.threads
    return args


def median(values):
    return statistics.median(values) if values else float("nan")


def peak_rss_mb() -> float:
    """Peak resident set of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_gpu_mb() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def machine() -> str:
    """One line naming the hardware the numbers came from."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores, {THREADS} torch thread per run), torch {torch.__version__}"


def today() -> str:
    return datetime.date.today().isoformat()


class StepClock:
    """Wall and process-CPU time at the start and at every optimizer-step end.

    Both are kept because this machine is shared: wall time is what a user waits, CPU time
    (all threads of this process) is the work done and barely moves when others load the
    cores, so the CPU-time ratio is the steadier of the two here.
    """

    def __init__(self) -> None:
        self.start: tuple[float, float] | None = None
        self.ends: list[tuple[float, float]] = []

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def begin(self) -> None:
        if self.start is None:
            self.start = self._now()

    def end(self) -> None:
        self.ends.append(self._now())

    def intervals(self, which: int = 0) -> list[float]:
        """Seconds per step: ``which=0`` wall, ``which=1`` CPU."""
        marks = [self.start] + self.ends if self.start is not None else self.ends
        return [b[which] - a[which] for a, b in zip(marks, marks[1:])]

    def result(self, warmup: int) -> dict:
        return {"step_s": self.intervals(0)[warmup:], "cpu_s": self.intervals(1)[warmup:]}


def emit(result: dict) -> None:
    """Child side: hand one result dict to the parent."""
    print(MARK + json.dumps(result), flush=True)


class ChildFailed(RuntimeError):
    """A child run that exited non-zero or printed no RESULT; ``reason`` is its last stderr line."""

    def __init__(self, argv: list[str], code: int, reason: str) -> None:
        super().__init__(f"child {' '.join(argv)} failed with code {code}: {reason}")
        self.reason = reason


def run_child(argv: list[str], timeout: float = 1800) -> dict:
    """Parent side: run ``python argv...`` and return its RESULT dict (stderr shown on failure).

    Children get ``THREADS`` intra-op threads: on a shared 2-core machine, 2 threads per
    process collapse under other load, and 1 thread keeps the ratio stable.
    """
    threads = str(THREADS)
    env = {
        **os.environ,
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        raise ChildFailed(argv, proc.returncode, (proc.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(lines[-1][len(MARK) :])


def alternate(
    contenders: dict[str, list[str]], repeats: int, log=print, failures: dict[str, str] | None = None, detail=None
) -> dict[str, list[dict]]:
    """Run each contender's argv once per round, alternating order each round (ABBA...) to cancel drift.

    With ``failures`` given, a contender whose child fails is recorded there (its last error
    line) and skipped in later rounds instead of stopping the others. ``detail(result) -> str``
    adds to each run's log line (what a run that is cut off later still leaves behind).
    """
    names = list(contenders)
    results: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            if failures is not None and name in failures:
                continue
            try:
                res = run_child(contenders[name])
            except ChildFailed as err:
                if failures is None:
                    raise
                failures[name] = err.reason[:160]
                log(f"  {name} failed: {failures[name]}", flush=True)
                continue
            results[name].append(res)
            log(
                f"  round {r + 1}/{repeats} {name}: median step {median(res['step_s']):.3f} s wall, "
                f"{median(res['cpu_s']):.3f} s CPU over {len(res['step_s'])} steps"
                + (f"; {detail(res)}" if detail else ""),
                flush=True,
            )
    return results


def pooled_median(runs: list[dict], key: str = "step_s") -> float:
    """Median over the per-run medians (each run already excludes its warm-up steps)."""
    return median([median(run[key]) for run in runs])


def paired_ratio(runs: list[dict], baseline: list[dict], key: str = "step_s") -> float:
    """Median over rounds of (run median / baseline median of the same round): slow drift cancels."""
    return median([median(a[key]) / median(b[key]) for a, b in zip(runs, baseline)])


def table(headers: list[str], rows: list[list]) -> str:
    """A small GitHub-markdown table (also readable on a terminal)."""
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda parts: "| " + " | ".join(p.ljust(w) for p, w in zip(parts, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in cells)])
