"""The paper's "joint" ablation (Table 6): the Conductor updated every step with the policy.

MAESTRO's two time scales buffer (h, a, Â) triplets and update the Conductor every M GRPO steps;
the ablation drops them. ``JointConductor`` offers two readings of "updated every step with the
policy"; ``configs/methods/maestro_joint.yaml`` ships the first:

- ``gradient: reinforce``: exactly the paper preset (one sampled action per completion, the same
  REINFORCE meta-loss and entropy bonus) with M = 1 whatever the run's M: each step's triplets
  update φ right after that step's policy update, and no buffer carries them further. Everything
  else in the training step, the policy loss included, is what every other method runs.
- ``gradient: policy_loss`` (the class default, the literal joint gradient): the training
  weights are the continuous π_φ(·|h) @ action table, which carry grad, so the scalar rewards and
  advantages depend on φ and the policy loss's gradient flows into the Conductor.
  ``maestro_lit.conductor.outer_loop.OuterLoop`` collects ∂L_policy/∂A during the inner loop and
  applies it to φ once per step, after the policy updates.

Note, why ``policy_loss`` is not the shipped ablation: with ``loss_type: grpo`` and one inner update
(ratio ≡ 1) the policy loss is −mean(A), and group-centred advantages sum to 0 in every group, so
φ's gradient is exactly 0 and the Conductor never moves (the entropy bonus is 0-gradient at its
zero-initialised, uniform start too). The signal exists only where completions are weighted
unequally: token-weighted losses (bnpo, dapo, dr_grpo), μ > 1 (ratio ≠ 1); clipping or the KL
term do not change that for the first update. Making it learn would need a policy loss that
differs from the other methods', which a fair comparison cannot have.

Choices where the paper is silent (``policy_loss``):
- the entropy bonus c_H·H(π) is kept, added to the same φ objective;
- ``actions`` are the argmax, only for the action-share metrics.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from maestro_lit.conductor.base import Conductor, Scalarization


class JointConductor(Conductor):
    """The paper preset updated every step with the policy (M = 1, no buffer), or trained through the policy loss."""

    def __init__(
        self,
        temperature: float = 1.0,
        entropy_coef: float = 1e-3,
        normalize_hidden: bool = True,
        learn_temperature: bool = True,
        probability_floor: float = 1e-4,
        gradient: Literal["reinforce", "policy_loss"] = "policy_loss",
    ) -> None:
        """Paper-preset defaults: one-hot action table, learned τ, floor 1e-4, continuous evaluation weights.
        ``gradient``: ``reinforce`` (the shipped ablation: sampled actions, REINFORCE every step) or
        ``policy_loss`` (continuous training weights, φ trained through the advantages; module docstring)."""
        if gradient not in ("reinforce", "policy_loss"):
            raise ValueError(f"JointConductor.gradient must be 'reinforce' or 'policy_loss', got {gradient!r}")
        super().__init__(
            temperature=temperature,
            entropy_coef=entropy_coef,
            normalize_hidden=normalize_hidden,
            action_table="one_hot",
            learn_temperature=learn_temperature,
            probability_floor=probability_floor,
            eval_weights="continuous",
            update_every=1,  # every step, whatever the run's M (model.outer_loop.update_every)
        )
        self.gradient = gradient
        self.learns_through_policy_loss = gradient == "policy_loss"

    def choose(
        self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1
    ) -> Scalarization:
        if not self.learns_through_policy_loss:
            return super().choose(hidden, columns, greedy, group_size)
        log_probs = self.policy_log_probs(hidden, group_size)
        weights = log_probs.exp() @ self.action_table  # with grad into φ (hidden is detached in logits)
        return Scalarization(weights=weights, actions=log_probs.detach().argmax(dim=-1), log_probs=log_probs)
