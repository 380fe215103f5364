"""The Conductor's outer loop in plain torch: buffer each step's choices, update every M steps.

docs/paper.md#method "two time scales": (h, a, Â) triplets are buffered during GRPO training and the
Conductor takes one REINFORCE step on the whole buffer every M GRPO steps (paper: M = 3, 6 on
SS-GEN), L = −mean(Â·log π_φ(a|h)) − λ_ent·H(π_φ(·|h)), with log π recomputed under the current φ,
then the buffer is cleared. M = 1 updates after every step (the paper's "joint" ablation,
``configs/methods/maestro_joint.yaml``).

Where M comes from: a scalariser that fixes its own (``update_every`` not ``None``: the joint
ablation's 1, ``conductor_emphasis.yaml``'s 1, an explicit ``--model.scalarizer.init_args.update_every``)
keeps it; otherwise the run's M, ``model.outer_loop.update_every`` (``OuterLoopSettings``, default the
paper's 3). The run's M is a module setting, not a scalariser argument, so a task file can set it
(``configs/tasks/ss_gen.yaml``: 6) whatever method it is composed with: a baseline without an outer
loop parses the same key and ignores it.

A scalariser with ``learns_through_policy_loss`` (``JointConductor``) takes the other path: the
inner loop gets a detached leaf copy of the advantages, whose ``.grad`` collects ∂L_policy/∂Â
over every policy backward; after the inner loop one φ step applies it through the graph
Â(φ) (chain rule, without retaining the policy's graph), plus the entropy bonus.

Choices where the paper is silent:
- the buffer holds the meta-reward (the advantage for MAESTRO; the trusted agreement for
  ``TrustedConductor``) computed at the step it was observed, not recomputed at update time;
- every buffered completion weighs the same in the mean, whatever step it came from;
- ``conductor/entropy`` is the mean entropy of this step's π on every step; ``conductor/loss``
  is logged on update steps only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jsonargparse.typing import PositiveInt

from maestro_lit.conductor.base import Scalarization, Scalarizer, policy_entropy

PAPER_UPDATE_EVERY = 3  # M of the paper (§ two time scales); SS-GEN uses 6


@dataclass
class OuterLoopSettings:
    """The run's outer-loop cadence (``model.outer_loop``), the same for every method."""

    update_every: PositiveInt = PAPER_UPDATE_EVERY
    """M: training steps per Conductor update on the buffered choices; >= 1. The paper's 3 (6 on SS-GEN, set by
    configs/tasks/ss_gen.yaml). Used by a learned scalariser whose own ``update_every`` is null (the paper preset);
    one that fixes its own keeps it (the joint ablation: 1). Scalarisers without an outer loop ignore it."""

    def __post_init__(self) -> None:
        if not self.update_every >= 1:
            raise ValueError(f"model.outer_loop.update_every must be >= 1, got {self.update_every!r}")


def resolve_update_every(scalarizer: Scalarizer, run_update_every: int | None = None) -> int:
    """M for ``scalarizer``: its own ``update_every`` when set, else the run's, else the paper's 3."""
    own = getattr(scalarizer, "update_every", None)
    if own is not None:
        return int(own)
    return int(run_update_every) if run_update_every is not None else PAPER_UPDATE_EVERY


def _plain_backward(loss: torch.Tensor) -> None:
    loss.backward()


@dataclass(frozen=True)
class BufferedChoices:
    """One training step's Conductor choices: detached hidden states [N, H], actions [N], meta-rewards [N]
    (or [N, A]: every action's credit)."""

    hidden: torch.Tensor
    actions: torch.Tensor
    meta_reward: torch.Tensor
    group_size: int


class OuterLoop:
    """Owns the Conductor's update schedule, its buffer and its loss; the caller owns the optimiser.

    Per training step: ``policy_advantages(A)`` before the inner loop (what the policy loss
    must use), then ``step(...)`` after it. ``state_dict()`` holds tensors and plain containers
    only, for a ``weights_only`` checkpoint.
    """

    def __init__(self, scalarizer: Scalarizer, update_every: int | None = None) -> None:
        """``update_every``: the run's M (``model.outer_loop.update_every``), for a scalariser without its own."""
        self.scalarizer = scalarizer
        self.update_every = resolve_update_every(scalarizer, update_every)
        if self.update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {self.update_every}")
        self.buffer: list[BufferedChoices] = []
        self.updates = 0
        self._policy_leaf: torch.Tensor | None = None

    def policy_advantages(self, advantages: torch.Tensor) -> torch.Tensor:
        """The advantages the inner loop's policy loss uses: detached, or a grad-collecting leaf for a joint
        scalariser."""
        if not self.scalarizer.learns_through_policy_loss:
            return advantages.detach()
        self._policy_leaf = advantages.detach().requires_grad_(True)
        return self._policy_leaf

    def step(
        self,
        choice: Scalarization,
        hidden: torch.Tensor,
        advantages: torch.Tensor,
        raw_rewards: torch.Tensor,
        group_size: int,
        optimizer: torch.optim.Optimizer | None,
        backward: Callable[[torch.Tensor], Any] = _plain_backward,
    ) -> dict[str, torch.Tensor]:
        """After the inner loop: buffer this step (or apply the joint gradient); update when due. Returns metrics."""
        if not self.scalarizer.learnable:
            return {}
        if optimizer is None:
            raise ValueError(f"{type(self.scalarizer).__name__} is learnable: OuterLoop.step needs its optimizer")
        metrics = {"conductor/entropy": policy_entropy(choice.log_probs.detach())}
        if self.scalarizer.learns_through_policy_loss:
            metrics.update(self._joint_step(choice, advantages, optimizer, backward))
        else:
            meta_reward = self.scalarizer.outer_credit(advantages.detach(), raw_rewards, group_size)
            self.buffer.append(
                BufferedChoices(hidden.detach(), choice.actions.detach(), meta_reward.detach(), group_size)
            )
            if len(self.buffer) >= self.update_every:
                metrics["conductor/loss"] = self.update(optimizer, backward)
        metrics["conductor/updates"] = torch.tensor(float(self.updates))
        metrics["conductor/buffered"] = torch.tensor(float(len(self.buffer)))
        if hasattr(self.scalarizer, "temperature"):
            metrics["conductor/temperature"] = torch.tensor(float(self.scalarizer.temperature))
        return metrics

    def buffered_loss(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The REINFORCE loss over every buffered completion, log π recomputed under the current φ."""
        device = next(self.scalarizer.parameters()).device
        log_probs = torch.cat(
            [self.scalarizer.policy_log_probs(b.hidden.to(device), b.group_size) for b in self.buffer]
        )
        actions = torch.cat([b.actions for b in self.buffer]).to(device)
        meta_reward = torch.cat([b.meta_reward for b in self.buffer]).to(device)
        return self.scalarizer.reinforce_loss(log_probs, actions, meta_reward)

    def update(
        self, optimizer: torch.optim.Optimizer, backward: Callable[[torch.Tensor], Any] = _plain_backward
    ) -> torch.Tensor:
        """One optimiser step on the whole buffer, then clear it; returns the detached loss."""
        loss, _ = self.buffered_loss()
        optimizer.zero_grad()
        backward(loss)
        optimizer.step()
        self.buffer.clear()
        self.updates += 1
        return loss.detach()

    def _joint_step(
        self, choice: Scalarization, advantages: torch.Tensor, optimizer, backward
    ) -> dict[str, torch.Tensor]:
        leaf, self._policy_leaf = self._policy_leaf, None
        if leaf is None or leaf.grad is None or not torch.isfinite(leaf.grad).all():
            return {}  # no (finite) policy backward this step: nothing to pass on
        if not advantages.requires_grad:
            raise ValueError("the joint Conductor needs the advantages computed from choice.weights, with their graph")
        entropy = policy_entropy(choice.log_probs)
        objective = (advantages * leaf.grad.to(advantages.dtype)).sum() - self.scalarizer.entropy_coef * entropy
        optimizer.zero_grad()
        backward(objective)
        optimizer.step()
        self.updates += 1
        return {"conductor/loss": objective.detach()}

    # ------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        buffer = [
            {
                "hidden": b.hidden.cpu(),
                "actions": b.actions.cpu(),
                "meta_reward": b.meta_reward.cpu(),
                "group_size": b.group_size,
            }
            for b in self.buffer
        ]
        return {"updates": self.updates, "buffer": buffer}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.updates = int(state["updates"])
            self.buffer = [
                BufferedChoices(b["hidden"], b["actions"], b["meta_reward"], int(b["group_size"]))
                for b in state["buffer"]
            ]
        except (KeyError, TypeError) as err:
            raise KeyError(
                f"checkpoint's Conductor outer-loop state is malformed (expected 'updates' and 'buffer'): {err!r}"
            ) from err
