"""The Conductor's paper preset (docs/paper.md#method): one-hot actions, learned τ, probability floor,
continuous evaluation weights."""

import math

import pytest
import torch

from maestro_lit.conductor.base import EMPHASIS_SETTINGS, Conductor, floored_log_softmax

PAPER = ["ppl", "fmt", "ent", "len", "pref"]


def paper_conductor(**overrides) -> Conductor:
    options = dict(
        entropy_coef=1e-3,
        action_table="one_hot",
        learn_temperature=True,
        probability_floor=1e-4,
        eval_weights="continuous",
        update_every=3,
    )
    conductor = Conductor(**{**options, **overrides})
    conductor.bind(PAPER, hidden_size=6)
    return conductor


def test_one_hot_table_has_one_action_per_reward():
    conductor = paper_conductor()
    assert torch.equal(conductor.action_table, torch.eye(5))
    assert conductor.action_names == [f"only_{name}" for name in PAPER]


def test_floor_holds_where_actions_are_sampled_and_in_the_log_probs():
    torch.manual_seed(0)
    conductor = paper_conductor()
    with torch.no_grad():
        conductor.head.bias.copy_(torch.tensor([30.0, 0.0, 0.0, 0.0, 0.0]))  # softmax puts ~e^-30 on actions 1..4
    hidden = torch.randn(4000, 6)
    log_probs = conductor.log_policy(hidden)
    floor = 1e-4
    assert torch.softmax(conductor.logits(hidden), -1)[:, 1:].max() < 1e-12  # without the floor they would vanish
    probs = log_probs.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(4000))
    assert probs.min() >= floor / (1 + 5 * floor) - 1e-9  # clamped at ε, then renormalised
    choice = conductor.choose(hidden, {})
    torch.testing.assert_close(choice.log_probs, log_probs)  # the loss sees the floored distribution
    assert (choice.actions != 0).sum() > 0  # ~4·1e-4·4000 ≈ 1.6 expected draws of a floored action
    # the same function on hand-made logits: [0, -inf-ish] → [1/(1+ε), ε/(1+ε)]
    manual = floored_log_softmax(torch.tensor([[0.0, -100.0]]), floor).exp()
    torch.testing.assert_close(manual, torch.tensor([[1 / (1 + floor), floor / (1 + floor)]]))


def test_learned_temperature_receives_gradient_and_moves():
    torch.manual_seed(0)
    conductor = paper_conductor()
    assert conductor.temperature == pytest.approx(1.0)
    with torch.no_grad():
        conductor.head.weight.normal_()  # a zero head has ∂(z/τ)/∂τ = 0: move it away from zero first
    optimizer = torch.optim.SGD(conductor.parameters(), lr=0.5)
    hidden = torch.randn(16, 6)
    choice = conductor.choose(hidden, {})
    loss, _ = conductor.reinforce_loss(choice.log_probs, choice.actions, torch.randn(16))
    loss.backward()
    assert conductor.log_temperature.grad is not None and conductor.log_temperature.grad.abs() > 0
    optimizer.step()
    assert conductor.temperature != pytest.approx(1.0) and conductor.temperature > 0
    expected = conductor.head(torch.nn.functional.layer_norm(hidden, (6,))) / conductor.temperature
    torch.testing.assert_close(conductor.logits(hidden), expected)


def test_temperature_stays_positive_for_any_parameter_value():
    conductor = paper_conductor()
    with torch.no_grad():
        conductor.log_temperature.fill_(-50.0)
    assert conductor.temperature > 0


def test_evaluation_weights_are_the_softmax_and_argmax_is_an_option():
    torch.manual_seed(0)
    conductor = paper_conductor()
    with torch.no_grad():
        conductor.head.weight.normal_(std=0.3)
    hidden = torch.randn(7, 6)
    choice = conductor.eval().choose(hidden, {}, greedy=True)
    softmax = torch.softmax(conductor.logits(hidden), -1)
    assert softmax.min() > 1e-3  # the floor does not bind here
    torch.testing.assert_close(choice.weights, softmax)
    assert torch.equal(choice.actions, softmax.argmax(-1))
    argmax = paper_conductor(eval_weights="argmax")
    argmax.load_state_dict(conductor.state_dict())
    torch.testing.assert_close(argmax.choose(hidden, {}, greedy=True).weights, torch.eye(5)[softmax.argmax(-1)])


def test_training_choice_is_one_sampled_action_per_completion():
    torch.manual_seed(0)
    conductor = paper_conductor()
    choice = conductor.choose(torch.randn(200, 6), {}, group_size=4)
    assert choice.actions.shape == (200,) and choice.actions.unique().numel() == 5  # per completion, not per prompt
    torch.testing.assert_close(choice.weights, torch.eye(5)[choice.actions])


def test_the_earlier_conductor_is_its_named_settings():
    conductor = Conductor(**EMPHASIS_SETTINGS)
    conductor.bind(["a", "b"], hidden_size=4)
    assert conductor.action_names == ["uniform", "emph_a", "emph_b"] and conductor.temperature == 1.0
    # checkpoints keep their keys
    assert [name for name, _ in conductor.named_parameters()] == ["head.weight", "head.bias"]
    assert conductor.probability_floor == 0.0 and conductor.update_every == 1 and conductor.eval_weights == "argmax"


def test_defaults_are_the_paper_preset():
    conductor = Conductor()
    conductor.bind(PAPER, hidden_size=4)
    assert torch.equal(conductor.action_table, torch.eye(5)) and conductor.action_names == [f"only_{n}" for n in PAPER]
    assert conductor.learn_temperature and conductor.temperature == 1.0 and conductor.probability_floor == 1e-4
    assert conductor.entropy_coef == 1e-3 and conductor.eval_weights == "continuous" and conductor.normalize_hidden
    assert conductor.update_every is None  # M: the run's (model.outer_loop.update_every, 3; 6 on SS-GEN)
    assert [name for name, _ in conductor.named_parameters()] == ["log_temperature", "head.weight", "head.bias"]


def test_hidden_size_is_whatever_the_policy_gives():
    conductor = Conductor(action_table="one_hot")
    conductor.bind(PAPER, hidden_size=4096)
    assert conductor.choose(torch.randn(3, 4096), {}).weights.shape == (3, 5)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"probability_floor": 1.0}, "probability_floor"),
        ({"update_every": 0}, "update_every"),
        ({"action_table": "diagonal"}, "action_table"),
        ({"eval_weights": "mean"}, "eval_weights"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_bad_conductor_options_name_the_key(options, message):
    with pytest.raises(ValueError, match=message):
        Conductor(**options)


def test_explicit_action_names_must_match_the_table():
    conductor = Conductor(actions=[[1.0, 0.0], [0.0, 1.0]], action_names=["x"])
    with pytest.raises(ValueError, match="action_names has 1 names for 2 actions"):
        conductor.bind(["a", "b"], 4)
    assert math.isclose(Conductor(temperature=2.0).temperature, 2.0)
