"""The paper's "joint" ablation (Table 6): the Conductor's continuous weights inside the scalarisation.

Instead of sampling one action per completion and learning by REINFORCE on a buffer, the
training weights are π_φ(·|h) @ action table, which carry grad, so the scalar rewards and
advantages depend on φ and the policy loss's gradient flows into the Conductor.
``maestro_lit.conductor.outer_loop.OuterLoop`` collects ∂L_policy/∂A during the inner loop and
applies it to φ once per step, after the policy updates.

Choices where the paper is silent:
- the entropy bonus c_H·H(π) is kept, added to the same φ objective;
- ``actions`` are the argmax, only for the action-share metrics;
- with ``loss_type: grpo`` and one inner update (ratio ≡ 1) the policy loss is −mean(A), and
  group-centred advantages sum to 0 in every group, so φ's gradient is exactly 0. The signal
  exists only where completions are weighted unequally: token-weighted losses (bnpo, dapo,
  dr_grpo), μ > 1 (ratio ≠ 1), clipping or the KL term do not change that for the first update.
"""

from __future__ import annotations

from typing import Any

import torch

from maestro_lit.conductor.base import Conductor, Scalarization


class JointConductor(Conductor):
    """Conductor trained through the policy loss: training weights are the continuous π_φ(·|h) @ table."""

    learns_through_policy_loss = True

    def __init__(
        self,
        temperature: float = 1.0,
        entropy_coef: float = 1e-3,
        normalize_hidden: bool = True,
        learn_temperature: bool = True,
        probability_floor: float = 1e-4,
    ) -> None:
        """Paper-preset defaults: one-hot action table, learned τ, floor 1e-4, continuous evaluation weights."""
        super().__init__(
            temperature=temperature,
            entropy_coef=entropy_coef,
            normalize_hidden=normalize_hidden,
            action_table="one_hot",
            learn_temperature=learn_temperature,
            probability_floor=probability_floor,
            eval_weights="continuous",
            update_every=1,
        )

    def choose(
        self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1
    ) -> Scalarization:
        log_probs = self.policy_log_probs(hidden, group_size)
        weights = log_probs.exp() @ self.action_table  # with grad into φ (hidden is detached in logits)
        return Scalarization(weights=weights, actions=log_probs.detach().argmax(dim=-1), log_probs=log_probs)
