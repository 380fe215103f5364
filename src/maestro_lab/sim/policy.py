"""The simulated policy: a tabular softmax over response types per category, trained with GRPO's loss.

One "token" per completion (its response type), so the clipped surrogate of
``maestro_lit.grpo.clipped_policy_loss`` with one update per rollout (μ = 1, ratio 1) is
exactly REINFORCE with the group advantages — the same loss the language-model loop uses.
"""

from __future__ import annotations

import torch
from torch import nn

from maestro_lit import grpo


class TabularPolicy(nn.Module):
    """π_θ(type | category) = softmax(θ[category]); zero-initialised, so every type starts equally likely."""

    def __init__(self, num_categories: int, num_types: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_categories, num_types))

    def probs(self) -> torch.Tensor:
        return torch.softmax(self.logits.detach(), dim=-1)

    def sample(self, categories: torch.Tensor) -> torch.Tensor:
        return torch.multinomial(self.probs()[categories], 1).squeeze(-1)

    def log_prob(self, categories: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.logits[categories], dim=-1).gather(-1, types.unsqueeze(-1)).squeeze(-1)


def policy_step(
    policy: TabularPolicy,
    optimizer: torch.optim.Optimizer,
    categories: torch.Tensor,
    types: torch.Tensor,
    advantages: torch.Tensor,
) -> float:
    """One clipped-GRPO update (μ = 1, β = 0): each completion is a one-token sequence."""
    logprobs = policy.log_prob(categories, types).unsqueeze(-1)
    mask = torch.ones_like(logprobs)
    loss, _ = grpo.clipped_policy_loss(logprobs, logprobs.detach(), advantages, mask)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())
