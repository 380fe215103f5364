"""Scalarisers: how the reward components of one completion become one scalar.

All three methods of the paper's comparison share this interface, so the training step
has a single code path and only the YAML ``scalarizer`` differs:

- ``Conductor``    MAESTRO: a learned contextual bandit picks a weight row per completion;
- ``StaticWeights`` static multi-objective GRPO: one fixed weight vector;
- ``SingleReward``  single-reward GRPO: a one-hot weight vector.

Conductor choices where the paper is silent (DESIGN §1 step 4, 7):
- the head is zero-initialised, so training starts from the uniform action distribution;
- the detached hidden state is layer-normalised (no affine) before the head, because raw
  LLM hidden states have large, model-dependent norms that would saturate the softmax;
- default action table: a uniform row, then one emphasis row per component giving that
  component ``emphasis`` of the weight and sharing the rest equally.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Scalarization:
    """Per-completion weights [N, M], and the Conductor's actions/log-probs when there is one."""

    weights: torch.Tensor
    actions: torch.Tensor | None = None
    log_probs: torch.Tensor | None = None


class Scalarizer(nn.Module):
    """Base class. ``bind`` is called once the reward components and the model are known."""

    learnable = False

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        self.component_names = list(component_names)

    def choose(self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1) -> Scalarization:
        """Weights for each of the N completions; ``group_size`` = G lets a scalariser act per prompt."""
        raise NotImplementedError

    def meta_reward(self, advantages: torch.Tensor, raw_rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """What the outer step reinforces; MAESTRO's is each completion's group-relative advantage."""
        return advantages

    @property
    def action_names(self) -> list[str]:
        return []


def _simplex_row(values: Sequence[float], what: str) -> torch.Tensor:
    row = torch.tensor([float(v) for v in values], dtype=torch.float32)
    if (row < 0).any() or row.sum() <= 0:
        raise ValueError(f"{what} must be non-negative with a positive sum, got {list(values)}")
    return row / row.sum()


class StaticWeights(Scalarizer):
    """Static multi-objective GRPO: the same weight vector for every completion."""

    def __init__(self, weights: list[float] | None = None) -> None:
        super().__init__()
        self.requested = weights

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        super().bind(component_names, hidden_size)
        m = len(component_names)
        weights = self.requested if self.requested is not None else [1.0] * m
        if len(weights) != m:
            raise ValueError(
                f"StaticWeights.weights has {len(weights)} entries but there are {m} reward components {list(component_names)}"
            )
        self.register_buffer("weights", _simplex_row(weights, "StaticWeights.weights"), persistent=False)

    def choose(self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1) -> Scalarization:
        return Scalarization(weights=self.weights.to(hidden.device).expand(hidden.shape[0], -1))


class SingleReward(StaticWeights):
    """Single-reward GRPO: all weight on the component called ``component``."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        if self.component not in component_names:
            raise ValueError(f"SingleReward.component {self.component!r} is not one of the reward components {list(component_names)}")
        self.requested = [1.0 if name == self.component else 0.0 for name in component_names]
        super().bind(component_names, hidden_size)


def default_action_table(num_components: int, emphasis: float) -> torch.Tensor:
    """Uniform row plus one row per component that gives it ``emphasis`` of the weight."""
    rows = [torch.full((num_components,), 1.0 / num_components)]
    if num_components > 1:
        for m in range(num_components):
            row = torch.full((num_components,), (1.0 - emphasis) / (num_components - 1))
            row[m] = emphasis
            rows.append(row)
    return torch.stack(rows)


class Conductor(Scalarizer):
    """MAESTRO's meta-policy π_φ(a | h): a linear head over the detached terminal hidden state."""

    learnable = True

    def __init__(
        self,
        temperature: float = 1.0,
        entropy_coef: float = 0.01,
        actions: list[list[float]] | None = None,
        emphasis: float = 0.7,
        normalize_hidden: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"Conductor.temperature must be positive, got {temperature}")
        if not 0.0 <= emphasis <= 1.0:
            raise ValueError(f"Conductor.emphasis must be in [0, 1], got {emphasis}")
        self.temperature, self.entropy_coef = temperature, entropy_coef
        self.requested_actions, self.emphasis, self.normalize_hidden = actions, emphasis, normalize_hidden

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        super().bind(component_names, hidden_size)
        m = len(component_names)
        if self.requested_actions is None:
            table = default_action_table(m, self.emphasis)
        else:
            for k, row in enumerate(self.requested_actions):
                if len(row) != m:
                    raise ValueError(
                        f"Conductor.actions[{k}] has {len(row)} weights but there are {m} reward components {list(component_names)}"
                    )
            table = torch.stack([_simplex_row(row, f"Conductor.actions[{k}]") for k, row in enumerate(self.requested_actions)])
        self.register_buffer("action_table", table)
        self.head = nn.Linear(hidden_size, table.shape[0])
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def action_names(self) -> list[str]:
        if self.requested_actions is not None:
            return [f"a{k}" for k in range(self.action_table.shape[0])]
        return ["uniform"] + [f"emph_{name}" for name in self.component_names][: self.action_table.shape[0] - 1]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        h = hidden.detach().to(self.head.weight.dtype)
        if self.normalize_hidden:
            h = F.layer_norm(h, h.shape[-1:])
        return self.head(h) / self.temperature

    def choose(self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1) -> Scalarization:
        log_probs = torch.log_softmax(self.logits(hidden), dim=-1)
        if greedy:
            actions = log_probs.argmax(dim=-1)
        else:
            actions = torch.multinomial(log_probs.detach().exp(), 1).squeeze(-1)
        return Scalarization(weights=self.action_table[actions], actions=actions, log_probs=log_probs)

    def loss(self, choice: Scalarization, meta_reward: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """REINFORCE with an entropy bonus: −mean(A·log π(a|h)) − c_H·mean H(π(·|h)).

        Returns the loss and the mean policy entropy (detached) for logging.
        """
        chosen = choice.log_probs.gather(-1, choice.actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(choice.log_probs.exp() * choice.log_probs).sum(-1).mean()
        loss = -(meta_reward.detach().to(chosen.dtype) * chosen).mean() - self.entropy_coef * entropy
        return loss, entropy.detach()
