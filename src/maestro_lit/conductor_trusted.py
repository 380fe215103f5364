"""An alternative meta-reward for the Conductor: agreement with a small trusted signal.

Why it exists: MAESTRO's meta-reward (docs/design.md §1 step 7) credits each completion's action
with that completion's own group-relative advantage. On the project's testbed that credit
is self-serving — an action scores well when it emphasises what the completion already does
well — and the Conductor collapsed onto one action for every prompt (README, Results).

``TrustedConductor`` changes two things, and nothing else in the training step:

- one action per *prompt*: the G completions of a group share one weight row, chosen from
  the mean of their detached terminal hidden states, so the action describes the prompt;
- the meta-reward of that action is how well the group's advantages under its weights
  agree (Pearson correlation) with the advantages of a trusted reward component — e.g. a
  strong reward model or human labels on a small share of prompts. Groups without a
  trusted score (NaN) give no credit; credit is centred on the batch's mean agreement.

The trusted component gets weight 0 in every action row: it teaches the Conductor which
trade-off to pick, it is never optimised by the policy directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from maestro_lit.conductor import Conductor, Scalarization
from maestro_lit.grpo import group_advantages


def group_agreement(advantages: torch.Tensor, trusted: torch.Tensor, group_size: int) -> torch.Tensor:
    """Pearson correlation per group [B] between advantages and trusted scores; NaN where undefined."""
    adv = advantages.reshape(-1, group_size)
    ref = group_advantages(torch.nan_to_num(trusted, nan=0.0), group_size).reshape(-1, group_size)
    usable = torch.isfinite(trusted.reshape(-1, group_size)).all(dim=1)
    a = adv - adv.mean(dim=1, keepdim=True)
    r = ref - ref.mean(dim=1, keepdim=True)
    denominator = a.norm(dim=1) * r.norm(dim=1)
    corr = (a * r).sum(dim=1) / denominator.clamp(min=1e-12)
    return torch.where(usable & (denominator > 1e-12), corr, torch.full_like(corr, float("nan")))


class TrustedConductor(Conductor):
    """Conductor with per-prompt actions, credited by agreement with ``trusted_component``."""

    def __init__(
        self,
        trusted_component: str,
        temperature: float = 1.0,
        entropy_coef: float = 0.01,
        actions: list[list[float]] | None = None,
        emphasis: float = 0.7,
        normalize_hidden: bool = True,
        action_table: Literal["emphasis", "one_hot"] = "emphasis",
        learn_temperature: bool = False,
        probability_floor: float = 0.0,
        eval_weights: Literal["argmax", "continuous"] = "argmax",
        update_every: int = 1,
    ) -> None:
        """See ``Conductor``; the action table is built over the components other than ``trusted_component``."""
        super().__init__(
            temperature, entropy_coef, actions, emphasis, normalize_hidden, action_table, learn_temperature,
            probability_floor, eval_weights, update_every,
        )  # fmt: skip
        self.trusted_component = trusted_component

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        names = list(component_names)
        if self.trusted_component not in names:
            raise ValueError(f"TrustedConductor.trusted_component {self.trusted_component!r} is not one of the reward components {names}")
        self.trusted_index = names.index(self.trusted_component)
        others = [n for n in names if n != self.trusted_component]
        super().bind(others, hidden_size)  # the table and the action names are built over the optimised components only
        table = self.action_table
        full = torch.zeros(table.shape[0], len(names))
        full[:, [names.index(n) for n in others]] = table
        self.action_table = full  # trusted column: weight 0 in every row
        self.component_names = names

    def policy_log_probs(self, hidden: torch.Tensor, group_size: int = 1) -> torch.Tensor:
        """One distribution per prompt, from the mean hidden state of its G completions, repeated per completion.

        Rows repeat within a group, so the base loss's mean over completions is a mean over prompts.
        """
        prompt_hidden = hidden.reshape(-1, group_size, hidden.shape[-1]).mean(dim=1)
        return self.log_policy(prompt_hidden).repeat_interleave(group_size, dim=0)

    def choose(self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1) -> Scalarization:
        log_probs = self.policy_log_probs(hidden, group_size)
        actions, weights = self.pick(log_probs[::group_size], greedy)  # one draw per prompt
        actions, weights = actions.repeat_interleave(group_size), weights.repeat_interleave(group_size, dim=0)
        return Scalarization(weights=weights, actions=actions, log_probs=log_probs)

    def meta_reward(self, advantages: torch.Tensor, raw_rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        agreement = group_agreement(advantages, raw_rewards[:, self.trusted_index], group_size)
        valid = torch.isfinite(agreement)
        centred = agreement - agreement[valid].mean() if valid.any() else agreement
        return torch.where(valid, centred, torch.zeros_like(centred)).repeat_interleave(group_size)
