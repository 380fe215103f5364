"""The compared methods: each is a method file's ``model:`` block, built as the CLI builds it.

A method is data, not an ``if`` chain: ``equal``, ``random``, ``maestro`` and ``maestro_joint``
are the project's own ``configs/methods/*.yaml`` (``presets.from_file``); the others are
``model:`` blocks written here because they need the sim's world (the oracle's true weights,
the preference component, the trusted column). Every learned method trains with
``SimConfig.conductor_lr`` (the sim is short) except ``maestro_paper_lr``, which keeps the
paper's 5e-5 from ``maestro.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from maestro_lab.sim.presets import build, method_file
from maestro_lab.sim.world import World
from maestro_lit.conductor.base import EMPHASIS_SETTINGS, Scalarizer

TRUSTED_COLUMN = "trusted"


@dataclass(frozen=True)
class Method:
    name: str
    model: Callable[[World], dict]  # the ``model:`` block of a method file (scalarizer, optional conductor_optimizer)
    # > 0 adds a ``trusted`` column: the true utility on this share of prompts, NaN elsewhere
    trusted_share: float = 0.0
    keep_file_lr: bool = False  # True: the method file's Conductor lr; False: SimConfig.conductor_lr
    note: str = ""
    # per-component group normalisation of the world's components (grpo.scalarize's modes); None: z-score for all
    normalizations: tuple[str, ...] | None = None
    scale_rewards: str = "group"  # grpo.group_advantages' scale (TRL's scale_rewards): group, batch or none

    def build(self, world: World, conductor_lr: float) -> tuple[Scalarizer, Callable[..., torch.optim.Optimizer]]:
        return build(self.model(world), None if self.keep_file_lr else conductor_lr)


def _scalarizer(class_path: str, **init_args) -> Callable[[World], dict]:
    return lambda world: {"scalarizer": {"class_path": class_path, "init_args": init_args}}


def _file(name: str) -> Callable[[World], dict]:
    return lambda world: method_file(name)


def _oracle(world: World) -> dict:
    weights = {c: world.true_weights[i].tolist() for i, c in enumerate(world.categories)}
    init = {"true_weights": weights, "truth_components": list(world.components)}
    return {"scalarizer": {"class_path": "maestro_lab.sim.scalarizers.OracleWeights", "init_args": init}}


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "single",
            _scalarizer("maestro_lit.conductor.base.SingleReward", component="preference"),
            note="the reward model alone",
        ),
        Method("equal", _file("equal"), note="configs/methods/equal.yaml: uniform StaticWeights"),
        Method(
            "random", _file("random"), note="configs/methods/random.yaml: RandomWeights, Dirichlet(1) per completion"
        ),
        Method(
            "maestro",
            _file("maestro"),
            note="configs/methods/maestro.yaml, the paper preset (one-hot, learned τ, ε 1e-4, M = 3), sim lr",
        ),
        Method("maestro_paper_lr", _file("maestro"), keep_file_lr=True, note="the paper preset with its own lr 5e-5"),
        Method(
            "maestro_joint", _file("maestro_joint"), note="configs/methods/maestro_joint.yaml: JointConductor, sim lr"
        ),
        Method(
            "trusted",
            _scalarizer(  # the emphasis table it was run with (the Conductor's class defaults are now the paper preset)
                "maestro_lit.conductor.trusted.TrustedConductor", trusted_component=TRUSTED_COLUMN, **EMPHASIS_SETTINGS
            ),
            trusted_share=0.25,
            note="TrustedConductor: per-prompt action, credited by agreement with the true utility on 25 % of prompts",
        ),
        Method("oracle", _oracle, note="true weights per category"),
    )
}
ALIASES = {"static": "equal"}  # ``static`` names equal weights in the testbeds' method files

# Label-free candidates (``label_free.py``): run with --methods, not part of the default comparison.
CANDIDATES: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "reference_credit",
            lambda w: {
                **method_file("maestro"),
                "scalarizer": {
                    **method_file("maestro")["scalarizer"],
                    "class_path": "maestro_lab.sim.label_free.ReferenceCreditConductor",
                },
            },
            note="paper preset, each action credited with its completion's advantage under equal weights (no labels)",
        ),
        Method(
            "consensus",
            _scalarizer("maestro_lab.sim.label_free.ConsensusConductor", **EMPHASIS_SETTINGS),
            note="TrustedConductor's per-prompt credit with the equal-weight scalar in place of the labels (no labels)",
        ),
    )
}
