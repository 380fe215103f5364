"""Scalarisers: how the reward components of one completion become one scalar.

Every method of the paper's comparison shares this interface, so the training step has a
single code path and only the YAML ``scalarizer`` differs:

- ``Conductor``     MAESTRO: a learned contextual bandit picks a weight row per completion;
- ``StaticWeights`` static multi-objective GRPO (the paper's Equal-Weights when uniform);
- ``SingleReward``  single-reward GRPO (NOVER on ``ppl``, EM-GRPO on the entropy reward);
- ``RandomWeights`` the paper's Random-Weights baseline: a fresh simplex point per completion.

Conductor choices where the paper is silent (docs/paper.md#method):
- the head is zero-initialised, so training starts from the uniform action distribution
  (with a learned τ this also means τ gets no gradient until the head has moved: ∂(z/τ)/∂τ = 0 at z = 0);
- the detached hidden state is layer-normalised (no affine) before the head, because raw
  LLM hidden states have large, model-dependent norms that would saturate the softmax;
- τ is learned as log τ (``learn_temperature``), which keeps it positive;
- the floor clamps each probability at ε and renormalises, so after renormalising the
  smallest probability is at least ε / (1 + K·ε);
- ``one_hot`` (the class default) is the paper's action table: action k puts all weight on reward k;
  ``emphasis`` is a uniform row plus one row per component giving it ``emphasis`` of the weight;
- with ``eval_weights="continuous"`` (the default) a greedy choice returns π_φ(·|h) @ action table as the
  weights and the argmax as the action (only for the action-share metrics).

The class defaults are the paper's preset (``configs/methods/maestro.yaml`` writes it out): one-hot
actions, learned τ from 1.0, floor 1e-4, entropy bonus 1e-3, continuous evaluation weights, and M
from the run (``model.outer_loop.update_every``: 3, 6 on SS-GEN). The project's earlier emphasis-table
Conductor is ``configs/methods/conductor_emphasis.yaml``, which sets every value it uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Scalarization:
    """Per-completion weights [N, K], and the Conductor's actions/log-probs when there is one."""

    weights: torch.Tensor
    actions: torch.Tensor | None = None
    log_probs: torch.Tensor | None = None


class Scalarizer(nn.Module):
    """Base class. ``bind`` is called once the reward components and the model are known.

    ``learnable``: has parameters the outer step trains (by REINFORCE on buffered choices);
    ``learns_through_policy_loss``: its weights carry grad and it is trained by the policy loss
    (``maestro_lit.conductor.outer_loop.OuterLoop`` handles both); ``update_every``: M, the outer
    step's cadence in training steps.
    """

    learnable = False
    learns_through_policy_loss = False
    update_every = 1
    reward_normalization: tuple[str, Sequence[str] | None] = ("normalize_then_sum", None)
    """How the training step turns raw scores into a scalar (``grpo.scalarize``'s order and per-component
    modes); set by the module with ``use_reward_normalization``, for scalarisers that score counterfactual weights."""

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        self.component_names = list(component_names)

    def use_reward_normalization(self, order: str, normalizations: Sequence[str] | None) -> None:
        self.reward_normalization = (order, None if normalizations is None else list(normalizations))

    def choose(
        self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1
    ) -> Scalarization:
        """Weights for each of the N completions; ``group_size`` = G lets a scalariser act per prompt."""
        raise NotImplementedError

    def meta_reward(self, advantages: torch.Tensor, raw_rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """What the outer step reinforces; MAESTRO's is each completion's group-relative advantage."""
        return advantages

    def outer_credit(self, advantages: torch.Tensor, raw_rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """What the outer step buffers for ``reinforce_loss``: the meta-reward, unless a scalariser credits more."""
        return self.meta_reward(advantages, raw_rewards, group_size)

    @property
    def action_names(self) -> list[str]:
        return []


def _simplex_row(values: Sequence[float], what: str) -> torch.Tensor:
    row = torch.tensor([float(v) for v in values], dtype=torch.float32)
    if (row < 0).any() or row.sum() <= 0:
        raise ValueError(f"{what} must be non-negative with a positive sum, got {list(values)}")
    return row / row.sum()


class StaticWeights(Scalarizer):
    """Static multi-objective GRPO: the same weight vector for every completion (uniform by default)."""

    def __init__(self, weights: list[float] | None = None) -> None:
        super().__init__()
        self.requested = weights

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        super().bind(component_names, hidden_size)
        m = len(component_names)
        weights = self.requested if self.requested is not None else [1.0] * m
        if len(weights) != m:
            raise ValueError(
                f"StaticWeights.weights has {len(weights)} entries "
                f"but there are {m} reward components {list(component_names)}"
            )
        self.register_buffer("weights", self._row(weights), persistent=False)

    def _row(self, weights: Sequence[float]) -> torch.Tensor:
        return _simplex_row(weights, "StaticWeights.weights")

    def choose(
        self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1
    ) -> Scalarization:
        return Scalarization(weights=self.weights.to(hidden.device).expand(hidden.shape[0], -1))


class SingleReward(StaticWeights):
    """Single-reward GRPO: all weight on the component called ``component``.

    ``sign=-1`` optimises the component's negative (e.g. EM-GRPO's low entropy from an entropy
    reward that rewards high entropy): its weight is −1 and ``grpo.scalarize`` normalises the
    negated score, so the advantage is that of a reward with the opposite sign and a missing
    score still ranks last (``rank``) or counts 0 (``zscore``), never best.
    """

    def __init__(self, component: str, sign: Literal[1, -1] = 1) -> None:
        super().__init__()
        if sign not in (1, -1):
            raise ValueError(f"SingleReward.sign must be 1 or -1, got {sign}")
        self.component, self.sign = component, sign

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        if self.component not in component_names:
            raise ValueError(
                f"SingleReward.component {self.component!r} is not one of the reward components {list(component_names)}"
            )
        self.requested = [1.0 if name == self.component else 0.0 for name in component_names]
        super().bind(component_names, hidden_size)

    def _row(self, weights: Sequence[float]) -> torch.Tensor:
        return torch.tensor(weights, dtype=torch.float32) * self.sign


class RandomWeights(Scalarizer):
    """Random-Weights baseline: each completion gets a fresh weight vector, uniform on the simplex.

    Dirichlet(1, …, 1) drawn as normalised Exp(1) samples from torch's global CPU generator, so
    the checkpointed RNG state makes a resumed run draw the same weights. A greedy (evaluation)
    choice returns the distribution's mean, the uniform vector, and draws nothing.
    """

    def choose(
        self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1
    ) -> Scalarization:
        n, k = hidden.shape[0], len(self.component_names)
        if greedy:
            return Scalarization(weights=torch.full((n, k), 1.0 / k, device=hidden.device))
        draws = torch.empty(n, k).exponential_()
        return Scalarization(weights=(draws / draws.sum(-1, keepdim=True)).to(hidden.device))


def default_action_table(num_components: int, emphasis: float) -> torch.Tensor:
    """Uniform row plus one row per component that gives it ``emphasis`` of the weight."""
    rows = [torch.full((num_components,), 1.0 / num_components)]
    if num_components > 1:
        for m in range(num_components):
            row = torch.full((num_components,), (1.0 - emphasis) / (num_components - 1))
            row[m] = emphasis
            rows.append(row)
    return torch.stack(rows)


def floored_log_softmax(logits: torch.Tensor, floor: float) -> torch.Tensor:
    """log of softmax(logits) with every probability clamped at ``floor``, then renormalised."""
    log_probs = torch.log_softmax(logits, dim=-1)
    if floor <= 0:
        return log_probs
    clamped = log_probs.clamp(min=math.log(floor))
    return clamped - torch.logsumexp(clamped, dim=-1, keepdim=True)


def policy_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the rows of a categorical distribution given as log-probs."""
    return -(log_probs.exp() * log_probs).sum(-1).mean()


EMPHASIS_SETTINGS: dict[str, Any] = {
    "action_table": "emphasis",
    "emphasis": 0.7,
    "temperature": 1.0,
    "learn_temperature": False,
    "probability_floor": 0.0,
    "entropy_coef": 0.01,
    "eval_weights": "argmax",
    "update_every": 1,
    "normalize_hidden": True,
}
"""The project's earlier emphasis-table Conductor, every value (``configs/methods/conductor_emphasis.yaml``):
``Conductor(**EMPHASIS_SETTINGS)``; the class defaults are the paper preset."""


class Conductor(Scalarizer):
    """MAESTRO's meta-policy π_φ(a | h) = softmax((W h + b)/τ), floored; a linear head over the detached
    hidden state."""

    learnable = True

    def __init__(
        self,
        temperature: float = 1.0,
        entropy_coef: float = 1e-3,
        actions: list[list[float]] | None = None,
        emphasis: float = 0.7,
        normalize_hidden: bool = True,
        action_table: Literal["emphasis", "one_hot"] = "one_hot",
        learn_temperature: bool = True,
        probability_floor: float = 1e-4,
        eval_weights: Literal["argmax", "continuous"] = "continuous",
        update_every: int | None = None,
        action_names: list[str] | None = None,
    ) -> None:
        """``temperature``: τ, or its initial value when ``learn_temperature``. ``actions``: explicit
        weight rows (overrides ``action_table``). ``emphasis``: the emphasis table's share (``action_table:
        emphasis`` only). ``probability_floor``: ε of the paper (1e-4).
        ``update_every``: M, training steps per outer REINFORCE update on the buffered choices; ``None``
        (default): the run's ``model.outer_loop.update_every``, which a task file sets for every method.
        ``action_names``: labels for explicit ``actions`` (export round trip)."""
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"Conductor.temperature must be positive, got {temperature}")
        if not 0.0 <= emphasis <= 1.0:
            raise ValueError(f"Conductor.emphasis must be in [0, 1], got {emphasis}")
        if not 0.0 <= probability_floor < 1.0:
            raise ValueError(f"Conductor.probability_floor must be in [0, 1), got {probability_floor}")
        if update_every is not None and update_every < 1:
            raise ValueError(f"Conductor.update_every must be >= 1, got {update_every}")
        if action_table not in ("emphasis", "one_hot"):
            raise ValueError(f"Conductor.action_table must be 'emphasis' or 'one_hot', got {action_table!r}")
        if eval_weights not in ("argmax", "continuous"):
            raise ValueError(f"Conductor.eval_weights must be 'argmax' or 'continuous', got {eval_weights!r}")
        self.entropy_coef, self.requested_actions, self.emphasis = entropy_coef, actions, emphasis
        self.normalize_hidden, self.table_kind, self.requested_names = normalize_hidden, action_table, action_names
        self.probability_floor, self.eval_weights, self.update_every = probability_floor, eval_weights, update_every
        self.learn_temperature = learn_temperature
        if learn_temperature:
            self.log_temperature = nn.Parameter(torch.full((1,), math.log(temperature)))  # 1-d: shardable
        else:
            self.fixed_temperature = temperature

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.detach().exp()) if self.learn_temperature else self.fixed_temperature

    def tau(self) -> torch.Tensor | float:
        return self.log_temperature.exp() if self.learn_temperature else self.fixed_temperature

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        super().bind(component_names, hidden_size)
        m, names = len(component_names), list(component_names)
        if self.requested_actions is not None:
            for k, row in enumerate(self.requested_actions):
                if len(row) != m:
                    raise ValueError(
                        f"Conductor.actions[{k}] has {len(row)} weights but there are {m} reward components {names}"
                    )
            table = torch.stack(
                [_simplex_row(row, f"Conductor.actions[{k}]") for k, row in enumerate(self.requested_actions)]
            )
            labels = self.requested_names or [f"a{k}" for k in range(table.shape[0])]
        elif self.table_kind == "one_hot":
            table, labels = torch.eye(m), [f"only_{name}" for name in names]
        else:
            table = default_action_table(m, self.emphasis)
            labels = (["uniform"] + [f"emph_{name}" for name in names])[: table.shape[0]]
        if len(labels) != table.shape[0]:
            raise ValueError(f"Conductor.action_names has {len(labels)} names for {table.shape[0]} actions")
        self._action_names = list(labels)
        self.register_buffer("action_table", table)
        self.head = nn.Linear(hidden_size, table.shape[0])
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def action_names(self) -> list[str]:
        return list(self._action_names)

    def features(self, hidden: torch.Tensor) -> torch.Tensor:
        """The head's input: the detached hidden state, layer-normalised when ``normalize_hidden``."""
        h = hidden.detach().to(self.head.weight.dtype)
        return F.layer_norm(h, h.shape[-1:]) if self.normalize_hidden else h

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(hidden)) / self.tau()

    def log_policy(self, hidden: torch.Tensor) -> torch.Tensor:
        """log π_φ(·|h) [n, A] with the probability floor: what is sampled and what the loss uses."""
        return floored_log_softmax(self.logits(hidden), self.probability_floor)

    def policy_log_probs(self, hidden: torch.Tensor, group_size: int = 1) -> torch.Tensor:
        """Per-completion log π [N, A]; the outer loop recomputes it from buffered hidden states."""
        return self.log_policy(hidden)

    def pick(self, log_probs: torch.Tensor, greedy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and their weight rows: sampled in training; argmax or π @ table when greedy."""
        if not greedy:
            actions = torch.multinomial(log_probs.detach().exp(), 1).squeeze(-1)
            return actions, self.action_table[actions]
        actions = log_probs.argmax(dim=-1)
        if self.eval_weights == "continuous":
            return actions, log_probs.exp() @ self.action_table
        return actions, self.action_table[actions]

    def choose(
        self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1
    ) -> Scalarization:
        log_probs = self.policy_log_probs(hidden, group_size)
        actions, weights = self.pick(log_probs, greedy)
        return Scalarization(weights=weights, actions=actions, log_probs=log_probs)

    def reinforce_loss(
        self, log_probs: torch.Tensor, actions: torch.Tensor, meta_reward: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """REINFORCE with an entropy bonus: −mean(A·log π(a|h)) − c_H·mean H(π(·|h)); also the detached entropy."""
        chosen = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy = policy_entropy(log_probs)
        loss = -(meta_reward.detach().to(chosen.dtype) * chosen).mean() - self.entropy_coef * entropy
        return loss, entropy.detach()
