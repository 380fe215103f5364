"""The paper's baselines as scalarisers (equal, random, NOVER, EM-GRPO) and the method files that select them."""

from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch.cli import OptimizerCallable

from maestro_lit import grpo
from maestro_lit.conductor.base import Conductor, RandomWeights, Scalarizer, SingleReward, StaticWeights
from maestro_lit.conductor.joint import JointConductor
from maestro_lit.conductor.outer_loop import resolve_update_every

PAPER = ["ppl", "fmt", "ent", "len", "pref"]
METHODS = Path(__file__).resolve().parents[1] / "configs" / "methods"


def test_random_weights_are_fresh_per_completion_and_on_the_simplex():
    scalarizer = RandomWeights()
    scalarizer.bind(PAPER, 4)
    torch.manual_seed(0)
    weights = scalarizer.choose(torch.zeros(20000, 4), {}).weights
    assert weights.shape == (20000, 5) and (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(20000))
    assert torch.unique(weights, dim=0).shape[0] == 20000  # a new vector for every completion
    # Dirichlet(1,…,1) on 5 components: each marginal is Beta(1, 4), mean 1/5, variance 4/150
    torch.testing.assert_close(weights.mean(0), torch.full((5,), 0.2), atol=0.01, rtol=0)
    torch.testing.assert_close(weights.var(0), torch.full((5,), 4 / 150), atol=0.002, rtol=0)


def test_random_weights_follow_the_global_rng_so_resume_is_exact():
    scalarizer = RandomWeights()
    scalarizer.bind(PAPER, 4)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    first = scalarizer.choose(torch.zeros(6, 4), {}).weights
    torch.set_rng_state(state)
    assert torch.equal(scalarizer.choose(torch.zeros(6, 4), {}).weights, first)
    state = torch.get_rng_state()
    greedy = scalarizer.choose(torch.zeros(3, 4), {}, greedy=True).weights
    torch.testing.assert_close(greedy, torch.full((3, 5), 0.2))  # evaluation: the mean, nothing drawn
    assert torch.equal(torch.get_rng_state(), state)


def test_equal_nover_and_em_grpo_weights():
    equal = StaticWeights()
    equal.bind(PAPER, 4)
    torch.testing.assert_close(equal.choose(torch.zeros(2, 4), {}).weights, torch.full((2, 5), 0.2))
    nover = SingleReward("ppl")
    nover.bind(PAPER, 4)
    torch.testing.assert_close(nover.choose(torch.zeros(1, 4), {}).weights, torch.tensor([[1.0, 0, 0, 0, 0]]))
    negative = SingleReward("ent", sign=-1)
    negative.bind(PAPER, 4)
    torch.testing.assert_close(negative.choose(torch.zeros(1, 4), {}).weights, torch.tensor([[0, 0, -1.0, 0, 0]]))
    with pytest.raises(ValueError, match="sign must be 1 or -1"):
        SingleReward("ent", sign=2)


def test_negative_sign_gives_the_advantages_of_the_opposite_reward():
    torch.manual_seed(0)
    raw = torch.rand(8, 5)
    flipped = raw.clone()
    flipped[:, 2] = -raw[:, 2]  # a reward with the opposite sign
    minus, plus = SingleReward("ent", sign=-1), SingleReward("ent")
    minus.bind(PAPER, 4)
    plus.bind(PAPER, 4)
    a = grpo.group_advantages(grpo.scalarize(raw, minus.choose(torch.zeros(8, 4), {}).weights, 4), 4)
    b = grpo.group_advantages(grpo.scalarize(flipped, plus.choose(torch.zeros(8, 4), {}).weights, 4), 4)
    torch.testing.assert_close(a, b)
    assert a.abs().sum() > 0


def _em_grpo_advantages(raw, normalizations, sign=-1):
    scalarizer = SingleReward("ent", sign=sign)
    scalarizer.bind(PAPER, 4)
    weights = scalarizer.choose(torch.zeros(raw.shape[0], 4), {}).weights
    return grpo.group_advantages(grpo.scalarize(raw, weights, 4, normalizations=normalizations), 4)


def test_em_grpo_never_rewards_a_missing_entropy_score():
    """A missing score ranks last whatever the sign: EM-GRPO gives the advantages of a real low-entropy reward."""
    torch.manual_seed(0)
    raw = torch.rand(4, 5)
    raw[:, 2] = torch.tensor([0.2, 0.9, float("nan"), 0.5])  # ent; row 2 is malformed (NaN), the others score it
    ranked = ["rank", "zscore", "rank", "zscore", "zscore"]  # rewards/paper.yaml ranks ent
    low_entropy = raw.clone()
    low_entropy[:, 2] = -raw[:, 2]  # a reward that prefers low entropy, NaN still missing
    advantages = _em_grpo_advantages(raw, ranked)
    torch.testing.assert_close(advantages, _em_grpo_advantages(low_entropy, ranked, sign=1))
    assert advantages.tolist() == pytest.approx([1.162, -0.387, -1.162, 0.387], abs=1e-3)
    assert advantages[2] == advantages.min()  # the malformed answer is the worst of its group, not the best
    # z-score: a missing score is 0 (neutral) under either sign, as before; negating first changes nothing.
    flipped = raw.clone()
    flipped[:, 2] = -raw[:, 2]
    torch.testing.assert_close(_em_grpo_advantages(raw, None), _em_grpo_advantages(flipped, None, sign=1))


def test_negative_weights_keep_their_gradient():
    """The joint Conductor differentiates through the weights; a sign flip keeps ∂r/∂w = the normalised score."""
    raw = torch.tensor([[1.0, 3.0], [2.0, 1.0], [4.0, 2.0], [3.0, 4.0]])
    weights = torch.tensor([[0.5, -0.5]] * 4, requires_grad=True)
    grpo.scalarize(raw, weights, 4, normalizations=["rank", "rank"]).sum().backward()
    positive, negated = grpo.rank_within_groups(raw[:, :1], 4), grpo.rank_within_groups(-raw[:, 1:], 4)
    expected = torch.cat([positive, -negated], dim=-1)
    torch.testing.assert_close(weights.grad, expected)


def load_method(name: str):
    """Instantiate the method file's scalariser (and conductor optimiser) the way LightningCLI does."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--scalarizer", type=Scalarizer)
    parser.add_argument("--conductor_optimizer", type=OptimizerCallable, default=torch.optim.Adam)
    fragment = yaml.safe_load((METHODS / f"{name}.yaml").read_text())
    assert set(fragment) == {"model"}, f"{name}.yaml must hold only model settings"
    model = fragment["model"]
    keys = [key for key in ("scalarizer", "conductor_optimizer") if key in model]
    init = parser.instantiate_classes(parser.parse_object({key: model[key] for key in keys}))
    init.scalarizer.bind(PAPER, 8)
    return init.scalarizer, init.conductor_optimizer


def test_maestro_method_is_the_paper_preset():
    conductor, optimizer_factory = load_method("maestro")
    assert type(conductor) is Conductor
    assert torch.equal(conductor.action_table, torch.eye(5))
    assert conductor.learn_temperature and conductor.temperature == pytest.approx(1.0)
    assert (conductor.probability_floor, conductor.entropy_coef, resolve_update_every(conductor)) == (1e-4, 1e-3, 3)
    assert conductor.update_every is None  # M is the run's (model.outer_loop.update_every), so a task file can set it
    assert conductor.eval_weights == "continuous"
    optimizer = optimizer_factory(conductor.parameters())
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["lr"] == 5e-5
    assert optimizer.defaults["weight_decay"] == 0.01


@pytest.mark.parametrize(
    "name, expected",
    [
        ("equal", [0.2] * 5),
        ("nover", [1.0, 0, 0, 0, 0]),
        ("em_grpo", [0, 0, -1.0, 0, 0]),  # rewards/paper.yaml's ent prefers high entropy; EM-GRPO flips it
    ],
)
def test_static_method_files(name, expected):
    scalarizer, _ = load_method(name)
    assert not scalarizer.learnable
    torch.testing.assert_close(scalarizer.choose(torch.zeros(2, 8), {}).weights, torch.tensor([expected] * 2))


def test_random_and_joint_method_files():
    random, _ = load_method("random")
    assert isinstance(random, RandomWeights)
    joint, optimizer_factory = load_method("maestro_joint")
    assert isinstance(joint, JointConductor) and joint.gradient == "reinforce" and not joint.learns_through_policy_loss
    assert resolve_update_every(joint, 6) == 1  # updated every step with the policy, whatever the task's M
    assert type(optimizer_factory(joint.parameters())) is torch.optim.AdamW
