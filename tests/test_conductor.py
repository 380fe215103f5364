import pytest
import torch

from maestro_lit.conductor.base import EMPHASIS_SETTINGS, Conductor, SingleReward, StaticWeights, default_action_table


def test_default_action_table_rows_on_simplex():
    table = default_action_table(3, emphasis=0.6)
    assert table.shape == (4, 3)
    torch.testing.assert_close(table.sum(-1), torch.ones(4))
    torch.testing.assert_close(table[0], torch.full((3,), 1 / 3))
    torch.testing.assert_close(table[2], torch.tensor([0.2, 0.6, 0.2]))


def test_conductor_update_raises_probability_of_rewarded_action():
    torch.manual_seed(0)
    conductor = Conductor(**{**EMPHASIS_SETTINGS, "entropy_coef": 0.0})
    conductor.bind(["a", "b"], hidden_size=8)
    hidden = torch.randn(1, 8).expand(16, 8)  # one fixed context
    optimizer = torch.optim.SGD(conductor.parameters(), lr=0.5)
    before = torch.softmax(conductor.logits(hidden[:1]), -1)[0, 2].item()
    choice = conductor.choose(hidden, {})
    choice.actions = torch.tensor([2] * 8 + [0] * 8)
    choice.weights = conductor.action_table[choice.actions]
    meta_reward = torch.tensor([1.0] * 8 + [-1.0] * 8)
    loss, entropy = conductor.reinforce_loss(choice.log_probs, choice.actions, meta_reward)
    loss.backward()
    optimizer.step()
    after = torch.softmax(conductor.logits(hidden[:1]), -1)[0, 2].item()
    assert after > before
    assert entropy.item() == pytest.approx(torch.log(torch.tensor(3.0)).item(), rel=1e-5)  # uniform start


def test_conductor_greedy_is_argmax_and_detaches_hidden():
    conductor = Conductor(**EMPHASIS_SETTINGS)
    conductor.bind(["a", "b"], hidden_size=4)
    with torch.no_grad():
        conductor.head.bias.copy_(torch.tensor([0.0, 3.0, 0.0]))
    hidden = torch.randn(5, 4, requires_grad=True)
    choice = conductor.choose(hidden, {}, greedy=True)
    assert choice.actions.tolist() == [1] * 5
    torch.testing.assert_close(choice.weights, conductor.action_table[[1] * 5])
    conductor.reinforce_loss(choice.log_probs, choice.actions, torch.ones(5))[0].backward()
    assert hidden.grad is None  # the Conductor never backpropagates into the policy


def test_static_and_single_weights():
    static = StaticWeights([1.0, 3.0])
    static.bind(["a", "b"], 4)
    torch.testing.assert_close(static.choose(torch.zeros(2, 4), {}).weights, torch.tensor([[0.25, 0.75]] * 2))
    single = SingleReward("b")
    single.bind(["a", "b"], 4)
    torch.testing.assert_close(single.choose(torch.zeros(1, 4), {}).weights, torch.tensor([[0.0, 1.0]]))
    assert not list(static.parameters()) and not single.learnable


@pytest.mark.parametrize(
    "scalarizer, message",
    [
        (StaticWeights([1.0]), "2 reward components"),
        (StaticWeights([-1.0, 2.0]), "non-negative"),
        (SingleReward("c"), "'c' is not one of"),
        (Conductor(actions=[[1.0, 0.0, 0.0]]), r"actions\[0\] has 3 weights"),
    ],
)
def test_bad_scalarizer_settings_name_the_key(scalarizer, message):
    with pytest.raises(ValueError, match=message):
        scalarizer.bind(["a", "b"], 4)
