"""The compared methods: each is a scalariser factory plus what its outer step needs.

A method is data, not an ``if`` chain: adding one (e.g. the paper preset, ``JointConductor``
or the project's ``RandomWeights`` once they land) is one more entry in ``METHODS``
or a ``Method`` passed to ``run``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from maestro_lit.conductor import Conductor, Scalarizer, SingleReward, StaticWeights
from maestro_lit.conductor_trusted import TrustedConductor
from maestro_lit.sim.outer import OuterUpdate
from maestro_lit.sim.scalarizers import DirichletWeights, OracleWeights
from maestro_lit.sim.world import World

TRUSTED_COLUMN = "trusted"


@dataclass(frozen=True)
class Method:
    name: str
    make: Callable[[World], Scalarizer]
    trusted_share: float = 0.0  # > 0 adds a ``trusted`` column: the true utility on this share of prompts, NaN elsewhere
    outer_every: int = 1  # M: outer step every M GRPO steps on the buffer
    note: str = ""
    # Replaces OuterUpdate, e.g. the project's own buffered outer loop: (scalarizer, optimizer or None) -> callable
    # with OuterUpdate's __call__(hidden, columns, group_size, choice, meta_reward) -> dict.
    outer_factory: Callable[[Scalarizer, torch.optim.Optimizer | None], Callable[..., dict]] | None = None

    def outer(self, scalarizer: Scalarizer, lr: float) -> Callable[..., dict]:
        optimizer = torch.optim.Adam(scalarizer.parameters(), lr=lr) if scalarizer.learnable else None
        if self.outer_factory is not None:
            return self.outer_factory(scalarizer, optimizer)
        return OuterUpdate(scalarizer, optimizer, self.outer_every)


def _oracle(world: World) -> Scalarizer:
    weights = {c: world.true_weights[i].tolist() for i, c in enumerate(world.categories)}
    return OracleWeights(weights, world.components)


def _one_hot(world: World) -> list[list[float]]:
    return torch.eye(len(world.components)).tolist()


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("single", lambda w: SingleReward("preference"), note="the reward model alone"),
        Method("static", lambda w: StaticWeights(), note="equal weights"),
        Method("random", lambda w: DirichletWeights(), note="Dirichlet(1) weights per completion (local stand-in)"),
        Method("maestro", lambda w: Conductor(), note="today's Conductor: uniform + 0.7-emphasis rows, M = 1 (not the paper preset)"),
        Method(
            "maestro_onehot",
            lambda w: Conductor(actions=_one_hot(w), entropy_coef=1e-3),
            outer_every=3,
            note="Conductor with one-hot actions (a_k = all weight on component k), λ_ent 1e-3, M = 3 (paper-like; fixed τ, no floor)",
        ),
        Method("trusted", lambda w: TrustedConductor(TRUSTED_COLUMN), trusted_share=0.25, note="per-prompt action, 25 % labelled"),
        Method("oracle", _oracle, note="true weights per category"),
    )
}
