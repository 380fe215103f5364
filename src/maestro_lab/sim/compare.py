"""Run every method over seeds and summarise: utility, gap closure, mutual information, length, redundancy."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from maestro_lab.sim.loop import RunResult, SimConfig, run
from maestro_lab.sim.methods import METHODS, Method
from maestro_lab.sim.world import World
from maestro_lab.testbed.metrics import mutual_information_bits


def mi_bits(result: RunResult) -> float:
    """I(category; action) of the last quarter's choices; for methods without actions, the argmax weight."""
    return mutual_information_bits(result.action_joint.double())


def type_mi_bits(result: RunResult) -> float:
    """I(type; action | category): how much the action follows what the completion is, beyond its prompt.

    High = "emphasise what this completion already does"; 0 for any per-prompt scalariser.
    """
    joint = result.type_action_joint.double()
    total = joint.sum()
    return sum(float(block.sum() / total) * mutual_information_bits(block) for block in joint if block.sum() > 0)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


@dataclass
class Summary:
    method: str
    utility: tuple[float, float]
    per_category: dict[str, tuple[float, float]]
    mi: tuple[float, float]
    type_mi: tuple[float, float]
    length: tuple[float, float]
    redundancy: tuple[float, float]
    gap_closure: float = float("nan")


def summarise(results: dict[str, list[RunResult]], world: World) -> dict[str, Summary]:
    out = {}
    for name, runs in results.items():
        out[name] = Summary(
            method=name,
            utility=_mean_std([r.utility for r in runs]),
            per_category={c: _mean_std([r.utility_per_category[c] for r in runs]) for c in world.categories},
            mi=_mean_std([mi_bits(r) for r in runs]),
            type_mi=_mean_std([type_mi_bits(r) for r in runs]),
            length=_mean_std([r.length for r in runs]),
            redundancy=_mean_std([r.redundancy for r in runs]),
        )
    if "equal" in out and "oracle" in out:
        lo, hi = out["equal"].utility[0], out["oracle"].utility[0]
        for s in out.values():
            s.gap_closure = (s.utility[0] - lo) / (hi - lo) if hi != lo else float("nan")
    return out


def compare(
    methods: Sequence[Method], seeds: Sequence[int], world: World, config: SimConfig = SimConfig(), progress=None
) -> dict[str, list[RunResult]]:
    results = {}
    for method in methods:
        results[method.name] = [run(method, seed, world, config) for seed in seeds]
        if progress:
            progress(method.name, results[method.name])
    return results


def write_csv(results: dict[str, list[RunResult]], world: World, out: Path) -> None:
    """results.csv: one row per run (final metrics); curves.csv: true utility per evaluation step."""
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "method",
                "seed",
                "utility",
                *[f"utility_{c}" for c in world.categories],
                "mi_bits",
                "type_mi_bits",
                "length",
                "redundancy",
                "conductor_updates",
                "joint_grad_max",
            ]
        )
        for runs in results.values():
            for r in runs:
                row = [
                    r.method,
                    r.seed,
                    r.utility,
                    *[r.utility_per_category[c] for c in world.categories],
                    mi_bits(r),
                    type_mi_bits(r),
                    r.length,
                    r.redundancy,
                    r.conductor_updates,
                    r.joint_signal,
                ]
                w.writerow([f"{x:.6g}" if isinstance(x, float) else x for x in row])
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "seed", "step", "utility"])
        for runs in results.values():
            for r in runs:
                for step, u in zip(r.curve_steps, r.curve_utility):
                    w.writerow([r.method, r.seed, step, f"{u:.6g}"])


def mean_weights(runs: list[RunResult]) -> torch.Tensor:
    return torch.stack([r.weights_per_category for r in runs]).mean(0)


def action_conditional(runs: list[RunResult]) -> torch.Tensor:
    joint = torch.stack([r.action_joint for r in runs]).sum(0)
    return joint / joint.sum(1, keepdim=True).clamp(min=1)


__all__ = ["METHODS", "compare", "summarise", "write_csv", "mi_bits", "Summary"]
