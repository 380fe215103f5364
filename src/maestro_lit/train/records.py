"""Typed records the module hands to callbacks: one per training step, one per evaluation.

Why: callbacks (TensorBoard views, the testbed, the perf harness) read attributes that a
type checker and a reader can follow, instead of string keys of a dict that can drift.
Tensors are detached; rows are grouped as in ``rollout.py`` (row ``b * G + g``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from maestro_lit.conductor.base import Scalarization


@dataclass(frozen=True)
class StepRecord:
    """Raw tensors of one training step (N = B·G completions, K components); replaced every step."""

    step: int
    """Rollouts done after this step (``MaestroModule.rollouts_done``)."""
    group_size: int
    """G: completions per prompt."""
    prompts: list[str]
    """The prompt of each completion as text (each prompt repeated G times; a conversation's turns joined)."""
    completions: list[str]
    completion_lengths: torch.Tensor
    """[N] completion tokens, up to and including the first EOS."""
    raw_rewards: torch.Tensor
    """[N, K] component scores; NaN = missing."""
    scalar_rewards: torch.Tensor
    """[N] the scalarised reward r = w · R̃."""
    advantages: torch.Tensor
    """[N] group-relative advantages."""
    choice: Scalarization
    """The scalariser's weights and (Conductor) actions for this step."""
    component_names: Sequence[str]
    action_names: Sequence[str]
    categories: list | None = None
    """Prompt category per completion, when the data has a ``category`` column."""
    phase_seconds: dict[str, float] = field(default_factory=dict)
    """Wall-clock seconds per phase (rollout, scoring, rewards, inner, outer); ``rewards/reference_nll``
    (``ppl``'s reference forward) is a part of ``rewards``."""

    @property
    def actions(self) -> torch.Tensor | None:
        """[N] chosen action per completion; None for static weights."""
        return self.choice.actions


@dataclass(frozen=True)
class TrainerState:
    """What reward components get as ``trainer_state=`` (TRL passes its ``TrainerState``; they read ``global_step``)."""

    global_step: int
    """Policy optimiser steps so far (TRL's meaning; μ × minibatches per rollout)."""
    rollouts_done: int
    """Training steps completed before this one (``MaestroModule.rollouts_done``)."""
    max_steps: int
    """The trainer's ``max_steps`` (-1 = unlimited)."""


@dataclass(frozen=True)
class EvaluationResult:
    """Greedy answers to held-out prompts, their component scores and the scalariser's choice."""

    completions: list[str]
    lengths: torch.Tensor
    """[N] completion tokens."""
    raw_rewards: torch.Tensor
    """[N, K] component scores; NaN = missing."""
    choice: Scalarization
    """The scalariser's evaluation choice per prompt (continuous π_φ(·|h) weights or argmax, per its settings)."""
