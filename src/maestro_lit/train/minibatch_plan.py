"""Rows per backward of the inner loop when ``model.grpo_settings.num_minibatches`` is ``auto``.

The update does not depend on the split: ``auto`` requires ``accumulate_minibatches``, so the minibatch
gradients are summed into one optimiser step (``train.policy_update``). Only memory and speed do: a few
large backwards keep a GPU busy, one row per backward leaves it mostly idle, and too many rows do not fit.

``MinibatchPlanner`` measures instead of estimating: a probe runs one row of the rollout at hand through the
training forward and a backward, and its peak allocation is that row's cost, whatever the model, attention
kernel, LoRA, 4-bit weights or gradient checkpointing. The planner then takes the largest divisor of the
rollout's rows whose cost (rows × one row's peak) fits ``memory_fraction`` of the device's free memory (free
to the driver plus what torch's allocator holds unused). One row's peak also holds the fixed costs of a
backward (the adapters' gradients, one checkpointed block's recompute), so rows × it overstates the cost: the
choice errs towards more minibatches, never towards running out of memory. The remaining share covers what
the probe does not see: the optimiser state the first step allocates, and fragmentation.

The plan is made at the first step and again only when a rollout's rows are longer (padded tokens) or more
numerous than those measured: a probe costs one row's forward and backward. Without a memory query (a CPU:
host memory is the operating system's to page) the plan is one minibatch, every row in one backward.
The probe resets CUDA's peak-memory counter, so a peak read afterwards covers the steps after the probe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MinibatchPlan:
    """One choice of the planner, as logged."""

    num_minibatches: int
    rows_per_backward: int
    row_tokens: int  # padded tokens per row when measured
    row_bytes: int | None  # one row's probe peak; None without a memory query
    free_bytes: int | None  # the device's free memory before the probe; None without a memory query

    def describe(self) -> str:
        if self.free_bytes is None or self.row_bytes is None:
            return (
                f"num_minibatches auto: {self.num_minibatches} minibatch of {self.rows_per_backward} rows "
                "(no device memory query: every row in one backward)"
            )
        return (
            f"num_minibatches auto: {self.num_minibatches} minibatches of {self.rows_per_backward} rows per backward "
            f"(one row of {self.row_tokens} tokens peaks at {self.row_bytes / 2**20:.0f} MiB; "
            f"{self.free_bytes / 2**30:.1f} GiB free)"
        )


def free_device_memory(device: torch.device) -> int | None:
    """Bytes a new allocation can get on ``device``: the driver's free memory plus what torch's caching allocator
    reserved and does not use; None on devices without a memory query (CPU)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def measure_peak_bytes(probe: Callable[[], None], device: torch.device) -> int:
    """Peak bytes ``probe`` allocates on a CUDA ``device`` above what was allocated before it."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    probe()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


def rows_per_backward(rows: int, row_bytes: int, budget_bytes: float) -> int:
    """The largest divisor of ``rows`` whose cost ``divisor × row_bytes`` fits ``budget_bytes``; at least 1."""
    fitting = int(budget_bytes // max(row_bytes, 1))
    return max(d for d in range(1, rows + 1) if rows % d == 0 and (d <= fitting or d == 1))


class MinibatchPlanner:
    """Chooses ``num_minibatches`` for a rollout from its measured cost per row (module docstring).

    ``free_memory(device)`` and ``measure(probe, device)`` are injectable, so a test can fake the device.
    ``report`` receives the line describing each new plan (default: this module's logger at INFO).
    """

    def __init__(
        self,
        memory_fraction: float = 0.8,
        free_memory: Callable[[torch.device], int | None] = free_device_memory,
        measure: Callable[[Callable[[], None], torch.device], int] = measure_peak_bytes,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.memory_fraction, self.free_memory, self.measure = memory_fraction, free_memory, measure
        self.report = report or log.info
        self.plan: MinibatchPlan | None = None
        self._measured: tuple[int, int] | None = None  # (rows, row tokens) of the last probe

    def choose(self, rows: int, row_tokens: int, device: torch.device, probe: Callable[[], None]) -> MinibatchPlan:
        """The plan for ``rows`` rows of ``row_tokens`` padded tokens; ``probe`` runs one row's forward and
        backward (called only when a new measurement is needed)."""
        if self.plan is not None and self._measured is not None:
            measured_rows, measured_tokens = self._measured
            if rows <= measured_rows and row_tokens <= measured_tokens and rows % self.plan.rows_per_backward == 0:
                return self.plan
        free = self.free_memory(device)
        if free is None:
            plan = MinibatchPlan(1, rows, row_tokens, None, None)
        else:
            row_bytes = self.measure(probe, device)
            per_backward = rows_per_backward(rows, row_bytes, self.memory_fraction * free)
            plan = MinibatchPlan(rows // per_backward, per_backward, row_tokens, row_bytes, free)
        self.plan, self._measured = plan, (rows, row_tokens)
        self.report(plan.describe())
        return plan
