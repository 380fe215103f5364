"""An alternative meta-reward for the Conductor: agreement with a small trusted signal.

Why it exists: MAESTRO's meta-reward (docs/design.md §1 step 7) credits each completion's action
with that completion's own group-relative advantage. On the project's testbed that credit
is self-serving — an action scores well when it emphasises what the completion already does
well — and the Conductor collapsed onto one action for every prompt (docs/results.md).

``TrustedConductor`` changes two things, and nothing else in the training step:

- one action per *prompt*: the G completions of a group share one weight row, chosen from
  the mean of their detached terminal hidden states, so the action describes the prompt;
- the meta-reward of that action is how well the group's advantages under its weights
  agree (Pearson correlation) with the advantages of a trusted reward component — e.g. a
  strong reward model or human labels on a small share of prompts. Groups without a
  trusted score (NaN) give no credit. ``credit`` says how: ``batch`` centres the chosen action's
  agreement on the batch's mean agreement; ``actions`` subtracts the mean agreement every action
  *would* have had on the same group (the scores are known, so each action's advantages can be
  recomputed) — a per-group baseline, so a batch with one labelled group still teaches something;
  ``all_actions`` credits every action with its own centred agreement and takes the expected-credit
  gradient −Σ_a π(a|h)·credit_a, so one labelled group teaches the Conductor about all actions at
  once, not only the sampled one.

The trusted component gets weight 0 in every action row: it teaches the Conductor which
trade-off to pick, it is never optimised by the policy directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from maestro_lit import grpo
from maestro_lit.conductor.base import Conductor, Scalarization, policy_entropy
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
        credit: Literal["batch", "actions", "all_actions"] = "batch",
        standardize_hidden: bool = False,
        **conductor: Any,
    ) -> None:
        """``conductor``: any ``Conductor`` setting, by keyword (the action table is built over the components
        other than ``trusted_component``). ``credit``: ``batch``, ``actions`` or ``all_actions`` (module
        docstring). ``standardize_hidden``: subtract a running mean and divide by a running std per feature
        (training prompts only) before the head. Why: prompt states share a large common part; a linear head on
        it learns one action for every prompt before it learns the small part that tells prompts apart."""
        super().__init__(**conductor)
        if credit not in ("batch", "actions", "all_actions"):
            raise ValueError(f"TrustedConductor.credit must be 'batch', 'actions' or 'all_actions', got {credit!r}")
        self.trusted_component, self.credit, self.standardize_hidden = trusted_component, credit, standardize_hidden

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        names = list(component_names)
        if self.trusted_component not in names:
            raise ValueError(
                f"TrustedConductor.trusted_component {self.trusted_component!r} "
                f"is not one of the reward components {names}"
            )
        self.trusted_index = names.index(self.trusted_component)
        others = [n for n in names if n != self.trusted_component]
        super().bind(others, hidden_size)  # the table and the action names are built over the optimised components only
        table = self.action_table
        full = torch.zeros(table.shape[0], len(names))
        full[:, [names.index(n) for n in others]] = table
        self.action_table = full  # trusted column: weight 0 in every row
        self.component_names = names
        self.register_buffer("hidden_mean", torch.zeros(hidden_size))
        self.register_buffer("hidden_var", torch.ones(hidden_size))
        self.register_buffer("hidden_count", torch.zeros(()))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.standardize_hidden:
            return super().logits(hidden)
        h = self.features(hidden)
        return self.head((h - self.hidden_mean) / (self.hidden_var + 1e-5).sqrt()) / self.tau()

    @torch.no_grad()
    def observe(self, prompt_hidden: torch.Tensor) -> None:
        """Fold training prompts' states into the running mean/variance (running average, then EMA at 1 %)."""
        h = self.features(prompt_hidden)
        for row in h:
            rate = max(1.0 / float(self.hidden_count + 1), 0.01)
            delta = row - self.hidden_mean
            self.hidden_mean += rate * delta
            self.hidden_var += rate * (delta * (row - self.hidden_mean) - self.hidden_var)
            self.hidden_count += 1

    def policy_log_probs(self, hidden: torch.Tensor, group_size: int = 1) -> torch.Tensor:
        """One distribution per prompt, from the mean hidden state of its G completions, repeated per completion.

        Rows repeat within a group, so the base loss's mean over completions is a mean over prompts.
        """
        prompt_hidden = hidden.reshape(-1, group_size, hidden.shape[-1]).mean(dim=1)
        return self.log_policy(prompt_hidden).repeat_interleave(group_size, dim=0)

    def choose(
        self, hidden: torch.Tensor, columns: dict[str, Any], greedy: bool = False, group_size: int = 1
    ) -> Scalarization:
        if self.standardize_hidden and not greedy:  # training steps only: evaluation leaves the statistics alone
            self.observe(hidden.reshape(-1, group_size, hidden.shape[-1]).mean(dim=1))
        log_probs = self.policy_log_probs(hidden, group_size)
        actions, weights = self.pick(log_probs[::group_size], greedy)  # one draw per prompt
        actions, weights = actions.repeat_interleave(group_size), weights.repeat_interleave(group_size, dim=0)
        return Scalarization(weights=weights, actions=actions, log_probs=log_probs)

    def meta_reward(self, advantages: torch.Tensor, raw_rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        trusted = raw_rewards[:, self.trusted_index]
        agreement = group_agreement(advantages, trusted, group_size)
        valid = torch.isfinite(agreement)
        if self.credit != "batch":
            centred = agreement - self.action_agreements(raw_rewards, group_size).nanmean(dim=1)
        else:
            centred = agreement - agreement[valid].mean() if valid.any() else agreement
        return torch.where(valid, centred, torch.zeros_like(centred)).repeat_interleave(group_size)

    def action_agreements(self, raw_rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """[B, A] agreement each action's advantages would have had on each group (NaN where undefined)."""
        order, normalizations = self.reward_normalization
        trusted = raw_rewards[:, self.trusted_index]
        columns = []
        for row in self.action_table.to(raw_rewards.device, raw_rewards.dtype):
            scalar = grpo.scalarize(
                raw_rewards, row.expand(raw_rewards.shape[0], -1), group_size, order, normalizations
            )
            columns.append(group_agreement(group_advantages(scalar, group_size), trusted, group_size))
        return torch.stack(columns, dim=1)

    def outer_credit(self, advantages: torch.Tensor, raw_rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """What the buffer keeps: the sampled action's credit [N], or with ``all_actions`` every action's [N, A]."""
        if self.credit != "all_actions":
            return self.meta_reward(advantages, raw_rewards, group_size)
        table = self.action_agreements(raw_rewards, group_size)
        # unlabelled groups: 0 for every action
        centred = torch.nan_to_num(table - table.nanmean(dim=1, keepdim=True), nan=0.0)
        return centred.repeat_interleave(group_size, dim=0)

    def reinforce_loss(
        self, log_probs: torch.Tensor, actions: torch.Tensor, meta_reward: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """REINFORCE on the sampled action ([N] credit), or the expected credit −mean Σ_a π(a|h)·credit_a ([N, A])."""
        if meta_reward.dim() == 1:
            return super().reinforce_loss(log_probs, actions, meta_reward)
        entropy = policy_entropy(log_probs)
        loss = (
            -(log_probs.exp() * meta_reward.detach().to(log_probs.dtype)).sum(-1).mean() - self.entropy_coef * entropy
        )
        return loss, entropy.detach()
