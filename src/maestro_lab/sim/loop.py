"""One simulated bi-level run: rollout → scores → scalarise → advantages → GRPO step → outer step.

The middle of every step is the project's own code, unchanged: ``Scalarizer.choose``,
``grpo.scalarize``, ``grpo.group_advantages``, ``grpo.clipped_policy_loss`` and
``conductor_updates.OuterLoop`` (``policy_advantages`` for the policy loss, then ``step``:
the meta-reward, the buffer, an update every M steps, or the joint gradient). Only the policy
and the world are simulated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from maestro_lab.sim.methods import TRUSTED_COLUMN, Method
from maestro_lab.sim.policy import TabularPolicy, policy_step
from maestro_lab.sim.world import World
from maestro_lit import grpo
from maestro_lit.conductor.outer_loop import OuterLoop


@dataclass(frozen=True)
class SimConfig:
    steps: int = 150
    prompts_per_step: int = 16  # B
    group_size: int = 8  # G
    policy_lr: float = 0.1  # Adam on the tabular logits
    # The Conductor's lr for every learned method (the method file's optimiser class, this lr): the sim's
    # 150 steps are far shorter than a paper run, so the outer loop is sped up alike for all (paper: 5e-5).
    conductor_lr: float = 0.05
    eval_every: int = 10
    normalization: str = "normalize_then_sum"  # grpo.scalarize order


@dataclass
class RunResult:
    method: str
    seed: int
    curve_steps: list[int]
    curve_utility: list[float]  # exact expected true utility of the policy, averaged over categories
    utility_per_category: dict[str, float]
    length: float  # expected completion length (words) under the final policy
    redundancy: float
    action_joint: torch.Tensor  # [C, A] counts of (category, action) over the last quarter of steps
    type_action_joint: torch.Tensor  # [C, T, A] counts: action vs the completion's own type within a category
    weights_per_category: torch.Tensor  # [C, K] mean weight on the observable components, last quarter
    type_probs: torch.Tensor = field(repr=False)  # [C, T] final policy
    action_names: list[str] = field(default_factory=list)  # the scalariser's actions; empty when it has none
    conductor_updates: int = 0  # optimiser steps the outer loop took
    # max |∂L_policy/∂A · ∂A/∂φ| seen, i.e. the joint gradient before the entropy bonus (joint only)
    joint_signal: float = 0.0

    @property
    def utility(self) -> float:
        return self.curve_utility[-1]


def _expected(policy: TabularPolicy, world: World) -> tuple[torch.Tensor, float, float]:
    p = policy.probs()
    per_category = (p * world.utility).sum(-1)
    return per_category, float((p @ world.lengths).mean()), float((p @ world.redundancies).mean())


def run(method: Method, seed: int, world: World, config: SimConfig = SimConfig()) -> RunResult:
    """Deterministic for a seed on CPU: every draw comes from torch's global generator, seeded here."""
    torch.manual_seed(seed)
    B, G, C = config.prompts_per_step, config.group_size, len(world.categories)
    names = list(world.components) + ([TRUSTED_COLUMN] if method.trusted_share > 0 else [])
    scalarizer, make_optimizer = method.build(world, config.conductor_lr)
    scalarizer.bind(names, world.hidden_size)
    modes = None if method.normalizations is None else list(method.normalizations)
    if modes is not None and len(modes) != len(world.components):
        raise ValueError(f"method {method.name}: {len(modes)} normalisations for {len(world.components)} components")
    if modes is not None and method.trusted_share > 0:
        modes.append("zscore")  # the trusted column (weight 0 in every action)
    scalarizer.use_reward_normalization(config.normalization, modes)
    outer = OuterLoop(scalarizer)
    conductor_optimizer = make_optimizer(scalarizer.parameters()) if scalarizer.learnable else None
    joint_signal = 0.0
    policy = TabularPolicy(C, len(world.types))
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.policy_lr)
    k = len(world.components)
    tail_start = config.steps - max(1, config.steps // 4)
    joint, type_joint, weight_sum, weight_count = None, None, torch.zeros(C, k), torch.zeros(C, 1)
    curve_steps, curve = [], []

    for step in range(config.steps):
        prompt_categories = torch.randint(C, (B,))
        categories = prompt_categories.repeat_interleave(G)
        with torch.no_grad():
            types = policy.sample(categories)
            raw = world.scores(types, categories=categories)
            if method.trusted_share > 0:
                labelled = (torch.rand(B) < method.trusted_share).repeat_interleave(G)
                label = world.utility[categories, types]
                raw = torch.cat(
                    [raw, torch.where(labelled, label, torch.full_like(label, float("nan"))).unsqueeze(-1)], dim=-1
                )
            hidden = world.hidden(categories, types)
        columns = {"category": [world.categories[c] for c in categories.tolist()]}

        choice = scalarizer.choose(hidden, columns, greedy=False, group_size=G)
        scalar = grpo.scalarize(raw, choice.weights, G, config.normalization, modes)
        valid = ~grpo.unscored_rows(raw)  # as the training step
        advantages = grpo.group_advantages(scalar, G, scale=method.scale_rewards, valid=valid)
        policy_advantages = outer.policy_advantages(advantages)  # detached, or the joint's grad-collecting leaf
        policy_step(policy, optimizer, categories, types, policy_advantages)
        if scalarizer.learns_through_policy_loss:
            joint_signal = max(joint_signal, _joint_signal(scalarizer, advantages, policy_advantages.grad))
        outer.step(choice, hidden, advantages, raw, G, conductor_optimizer)

        if step >= tail_start:
            actions = choice.actions if choice.actions is not None else choice.weights[:, :k].argmax(-1)
            n_actions = choice.weights.shape[-1] if choice.actions is None else scalarizer.action_table.shape[0]
            if joint is None:
                joint, type_joint = torch.zeros(C, n_actions), torch.zeros(C, len(world.types), n_actions)
            joint.index_put_((categories, actions), torch.ones(len(actions)), accumulate=True)
            type_joint.index_put_((categories, types, actions), torch.ones(len(actions)), accumulate=True)
            weight_sum.index_add_(0, categories, choice.weights[:, :k].detach().float())
            weight_count.index_add_(0, categories, torch.ones(len(categories), 1))
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            curve_steps.append(step + 1)
            curve.append(float(_expected(policy, world)[0].mean()))

    per_category, length, redundancy = _expected(policy, world)
    return RunResult(
        method=method.name,
        seed=seed,
        curve_steps=curve_steps,
        curve_utility=curve,
        utility_per_category={c: float(per_category[i]) for i, c in enumerate(world.categories)},
        length=length,
        redundancy=redundancy,
        action_joint=joint,
        type_action_joint=type_joint,
        weights_per_category=weight_sum / weight_count.clamp(min=1),
        type_probs=policy.probs(),
        action_names=list(scalarizer.action_names),
        conductor_updates=outer.updates,
        joint_signal=joint_signal,
    )


def _joint_signal(scalarizer, advantages: torch.Tensor, policy_grad: torch.Tensor | None) -> float:
    """The joint gradient without the entropy bonus, measured on a side graph (the step itself is OuterLoop's)."""
    if policy_grad is None:
        return 0.0
    params = [p for p in scalarizer.parameters() if p.requires_grad]
    grads = torch.autograd.grad((advantages * policy_grad).sum(), params, retain_graph=True, allow_unused=True)
    return max((float(g.abs().max()) for g in grads if g is not None), default=0.0)
