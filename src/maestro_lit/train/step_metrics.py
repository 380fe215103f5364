"""Turn one step's tensors into the scalar tags of docs/design.md §1 step 8 (the completion table is in
``callbacks/view_content``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit import grpo
from maestro_lit.conductor.base import Scalarization
from maestro_lit.conductor.metrics import weight_metrics
from maestro_lit.train.records import EvaluationResult, StepRecord


def reward_metrics(raw: torch.Tensor, names: Sequence[str], prefix: str) -> dict[str, torch.Tensor]:
    """Mean/std of each component over its finite scores, and how many were missing."""
    metrics: dict[str, torch.Tensor] = {}
    for m, name in enumerate(names):
        column = raw[:, m]
        finite = torch.isfinite(column)
        values = column[finite]
        metrics[f"{prefix}/reward/{name}"] = values.mean() if values.numel() else torch.tensor(float("nan"))
        metrics[f"{prefix}/reward_std/{name}"] = values.std() if values.numel() > 1 else torch.tensor(0.0)
        metrics[f"{prefix}/reward_nan/{name}"] = (~finite).sum().float()
    return metrics


def action_fractions(actions: torch.Tensor, action_names: Sequence[str]) -> torch.Tensor:
    return torch.bincount(actions.flatten().cpu(), minlength=len(action_names)).float() / max(actions.numel(), 1)


def scalarizer_metrics(
    choice: Scalarization, action_names: Sequence[str], categories: Sequence | None, prefix: str
) -> dict[str, torch.Tensor]:
    """Share of each Conductor action, overall and per prompt category (nothing for static weights)."""
    if choice.actions is None:
        return {}
    metrics = {
        f"{prefix}/action/{name}": frac
        for name, frac in zip(action_names, action_fractions(choice.actions, action_names))
    }
    if categories is not None:
        for category in sorted({c for c in categories if c is not None}):
            rows = torch.tensor([c == category for c in categories], device=choice.actions.device)
            fractions = action_fractions(choice.actions[rows], action_names)
            metrics.update({f"{prefix}/{category}/action/{name}": frac for name, frac in zip(action_names, fractions)})
    return metrics


def step_metrics(
    record: StepRecord, rollout, old_logprobs: torch.Tensor, prompts_truncated: int, updates: dict[str, Any]
) -> dict[str, Any]:
    """Every ``train/``, ``conductor/`` and ``time/`` scalar of one training step (docs/design.md §1 step 8)."""
    mask, scalar, advantages = rollout.completion_mask, record.scalar_rewards, record.advantages
    return {
        **reward_metrics(record.raw_rewards, record.component_names, "train"),
        "train/scalar_reward": scalar.mean(),
        "train/advantage_mean": advantages.mean(),
        "train/advantage_std": advantages.std(),
        "train/advantage_abs": advantages.abs().mean(),
        "train/zero_std_groups": grpo.zero_std_group_fraction(scalar, record.group_size),
        "train/policy_entropy": -(old_logprobs * mask).sum() / mask.sum().clamp(min=1),
        "train/completion_length": rollout.lengths.float().mean(),
        "train/truncation_rate": rollout.truncated.float().mean(),
        "train/prompts_truncated": float(prompts_truncated),
        **updates,
        **scalarizer_metrics(record.choice, record.action_names, record.categories, "conductor"),
        **weight_metrics(record.choice, record.component_names, record.categories, "conductor"),
        **{f"time/{phase}": seconds for phase, seconds in record.phase_seconds.items()},
    }


def sampler_weight_metrics(weights: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """How far the engine's numerics are from the training forward: the mean importance weight over completion
    tokens and the share of them masked to 0 (TRL's sampling/importance_sampling_ratio/*)."""
    on = mask.bool()
    values = weights.detach()[on]
    if values.numel() == 0:
        return {}
    return {"train/sampler_weight_mean": values.mean(), "train/sampler_weight_zero": (values == 0).float().mean()}


def evaluation_metrics(
    result: EvaluationResult, component_names: Sequence[str], action_names: Sequence[str], categories: Sequence | None
) -> dict[str, torch.Tensor]:
    """``val/`` scalars of one validation batch: mean reward per component, length, and the scalariser's
    evaluation weights per category (``val/conductor/<category>/weight/<reward>``, the paper's Figure 3)."""
    return {
        **{f"val/reward/{name}": torch.nanmean(result.raw_rewards[:, m]) for m, name in enumerate(component_names)},
        "val/completion_length": result.lengths.float().mean(),
        **scalarizer_metrics(result.choice, action_names, categories, "val/conductor"),
        **weight_metrics(result.choice, component_names, categories, "val/conductor"),
    }


SUMMED_METRICS = ("train/reward_nan/", "train/reward_cost/", "train/skipped_updates", "train/prompts_truncated")
EVERY_STEP_METRICS = ("train/scalar_reward", "train/completion_length", "train/reward/")


def logger_writes_this_step(trainer) -> bool:
    """Whether the loggers will write this training step (``log_every_n_steps``), by Lightning's own rule.

    Why: each ``self.log`` costs ~0.7 ms in Lightning's result bookkeeping, which is ~10 % of a
    tiny-model step for the ~30 step metrics. Metrics no logger will write need not go through
    it. If the private property ever disappears, this says True and every metric is logged.
    """
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True) or getattr(trainer, "fast_dev_run", False))


def keep_for_this_step(metrics: dict[str, Any], logger_writes: bool) -> dict[str, Any]:
    """All metrics on steps the logger writes; otherwise only the few that callbacks and monitors read every step."""
    if logger_writes:
        return metrics
    return {k: v for k, v in metrics.items() if k.startswith(EVERY_STEP_METRICS)}


def reduce_over_ranks(
    metrics: dict[str, Any], device: torch.device, strategy, world_size: int
) -> dict[str, torch.Tensor]:
    """Float tensors on ``device``, averaged over ranks in one collective (counts are summed), so rank 0 logs
    global values.

    Per-category Conductor metrics exist only on ranks that saw that category; they stay
    per-rank rather than forcing every rank to agree on the set of keys.
    """
    values = {k: torch.as_tensor(v, dtype=torch.float32, device=device).detach() for k, v in metrics.items()}
    if world_size <= 1:
        return values
    shared = sorted(k for k in values if not (k.startswith("conductor/") and k.count("/") == 3))
    stacked = strategy.reduce(torch.stack([values[k] for k in shared]), reduce_op="mean")
    for key, value in zip(shared, stacked):
        values[key] = value * world_size if key.startswith(SUMMED_METRICS) else value
    return values
