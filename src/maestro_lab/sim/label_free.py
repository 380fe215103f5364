"""Label-free meta-reward candidates, tried on the simulator only.

Both credit the Conductor with a signal computed from the observable components alone, the
natural label-free stand-in for "true utility": agreement with a *fixed reference
scalarisation* (equal weights on the z-scored components).

- ``ReferenceCreditConductor``: the paper preset (one action per completion), but the action
  is credited with the completion's advantage under the reference weights instead of its own.
- ``ConsensusConductor``: ``TrustedConductor``'s per-prompt action and agreement credit, with the
  reference scalar in place of the trusted column, so it needs no labels.

Why they cannot beat the best static weighting here (docs/results.md, Simulator): the observable
components of a response type do not depend on the category, so nothing a label-free
signal sees says which category wants which trade-off. They are kept in the sim, not the
package, as the recorded negative result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from maestro_lit import grpo
from maestro_lit.conductor.base import Conductor
from maestro_lit.conductor.trusted import TrustedConductor, group_agreement


def reference_scalar(raw_rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Equal weights on the group-z-scored components: the label-free reference scalar per completion."""
    k = raw_rewards.shape[-1]
    return grpo.scalarize(raw_rewards, torch.full((raw_rewards.shape[0], k), 1.0 / k), group_size)


class ReferenceCreditConductor(Conductor):
    """Per-completion actions credited with the completion's advantage under the reference scalarisation."""

    def meta_reward(self, advantages: torch.Tensor, raw_rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        return grpo.group_advantages(reference_scalar(raw_rewards, group_size), group_size)


class ConsensusConductor(TrustedConductor):
    """Per-prompt action credited by its group's agreement with the reference scalarisation (no trusted column)."""

    def __init__(self, **conductor_args) -> None:
        super().__init__(trusted_component="", **conductor_args)

    def bind(self, component_names: Sequence[str], hidden_size: int) -> None:
        Conductor.bind(self, component_names, hidden_size)  # every column is optimised: no trusted one to exclude

    def meta_reward(self, advantages: torch.Tensor, raw_rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        agreement = group_agreement(advantages, reference_scalar(raw_rewards, group_size), group_size)
        valid = torch.isfinite(agreement)
        centred = agreement - agreement[valid].mean() if valid.any() else agreement
        return torch.where(valid, centred, torch.zeros_like(centred)).repeat_interleave(group_size)
