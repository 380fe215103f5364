import pytest
import torch

from maestro_lit.conductor.base import EMPHASIS_SETTINGS
from maestro_lit.conductor.trusted import TrustedConductor, group_agreement


def emphasis_trusted(**options) -> TrustedConductor:
    """The earlier Conductor's settings (the class defaults before they became the paper preset), plus ``options``."""
    return TrustedConductor("trusted", **{**EMPHASIS_SETTINGS, **options})


def test_group_agreement_is_the_correlation_with_trusted_advantages():
    adv = torch.tensor([-1.0, 0.0, 1.0, 1.0, 0.0, -1.0, 0.5, -0.5, 0.0])
    trusted = torch.tensor([0.1, 0.2, 0.3, 0.1, 0.2, 0.3, float("nan"), 1.0, 2.0])
    agreement = group_agreement(adv, trusted, group_size=3)
    torch.testing.assert_close(agreement[:2], torch.tensor([1.0, -1.0]))
    assert torch.isnan(agreement[2])  # no trusted label for the whole group: no credit


def test_actions_are_per_prompt_and_trusted_weight_is_zero():
    conductor = emphasis_trusted()
    conductor.bind(["a", "trusted", "b"], hidden_size=4)
    assert conductor.action_table.shape == (3, 3)  # uniform + one emphasis row per optimised component
    assert torch.equal(conductor.action_table[:, 1], torch.zeros(3))
    torch.testing.assert_close(conductor.action_table.sum(-1), torch.ones(3))
    choice = conductor.choose(torch.randn(6, 4), {}, group_size=3)
    assert choice.actions[:3].unique().numel() == 1 and choice.actions[3:].unique().numel() == 1
    with pytest.raises(ValueError, match="'nope' is not one of"):
        TrustedConductor("nope").bind(["a", "b"], 4)


def test_update_favours_the_action_whose_advantages_agree_with_the_trusted_signal():
    torch.manual_seed(0)
    conductor = emphasis_trusted(entropy_coef=0.0)
    conductor.bind(["a", "b", "trusted"], hidden_size=4)
    hidden = torch.randn(1, 4).expand(8, 4)  # 4 prompts × G=2, same context
    choice = conductor.choose(hidden, {}, group_size=2)
    choice.actions = torch.tensor([1, 1, 2, 2, 1, 1, 2, 2])  # emph_a, emph_b alternating per prompt
    # trusted follows component a; advantages under emph_a agree with it, under emph_b they do not
    raw = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]] * 4)
    advantages = torch.tensor([1.0, -1.0, -1.0, 1.0] * 2)
    meta = conductor.meta_reward(advantages, raw, group_size=2)
    assert (meta[choice.actions == 1] > 0).all() and (meta[choice.actions == 2] < 0).all()
    before = torch.softmax(conductor.logits(hidden[:1]), -1)[0, 1].item()
    loss, _ = conductor.reinforce_loss(choice.log_probs, choice.actions, meta)
    loss.backward()
    torch.optim.SGD(conductor.parameters(), lr=1.0).step()
    assert torch.softmax(conductor.logits(hidden[:1]), -1)[0, 1].item() > before


def test_trusted_utility_labels_a_fixed_share_of_prompts():
    from maestro_lab.testbed.trusted import TrustedUtility, is_labelled

    prompts = [f"Describe object number {i}." for i in range(400)]
    share = sum(is_labelled(p, 0.25) for p in prompts) / len(prompts)
    assert 0.18 < share < 0.32
    picked = [p for p in prompts if is_labelled(p, 0.25)][:4] + [p for p in prompts if not is_labelled(p, 0.25)][:4]
    reward = TrustedUtility(share=0.25)
    columns = {"category": ["creative"] * 8, "reference": ["A bright red kite over the hill."] * 8}
    scores = reward(picked, ["A red kite flies high above the green hill."] * 8, **columns)
    assert torch.isfinite(scores[:4]).all() and (scores[:4] > 0).all() and torch.isnan(scores[4:]).all()


@pytest.mark.parametrize("names", [["a", "trusted", "b"], ["trusted", "a", "b"], ["a", "b", "trusted"]])
def test_action_names_match_the_rows_they_label(names):
    """Names come from the optimised components only; from the full list ``emph_trusted`` would label the row
    weighting ``b``."""
    conductor = emphasis_trusted()
    conductor.bind(names, hidden_size=4)
    assert conductor.action_names == ["uniform", "emph_a", "emph_b"]
    for name, row in zip(conductor.action_names[1:], conductor.action_table[1:]):
        assert names[int(row.argmax())] == name.removeprefix("emph_")
    one_hot = emphasis_trusted(action_table="one_hot")
    one_hot.bind(names, hidden_size=4)
    assert one_hot.action_names == ["only_a", "only_b"]
    assert [names[int(row.argmax())] for row in one_hot.action_table] == ["a", "b"]


def test_actions_baseline_credits_a_lone_labelled_group_by_what_the_other_actions_would_have_scored():
    from maestro_lit import grpo

    conductor = emphasis_trusted(credit="actions")
    conductor.bind(["a", "b", "trusted"], hidden_size=4)
    # one labelled group of 4 (trusted follows a), one unlabelled group
    raw = torch.tensor(
        [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.6], [0.0, 0.0, 0.2]] + [[1.0, 0.0, float("nan")]] * 4
    )
    table = conductor.action_agreements(raw, group_size=4)  # rows: uniform, emph_a, emph_b
    assert table.shape == (2, 3) and torch.isnan(table[1]).all()
    assert table[0, 1] > table[0, 0] > table[0, 2]  # emphasising a agrees best, b worst
    for action in (1, 2):  # the chosen action's own agreement is one column of the table
        weights = conductor.action_table[action].expand(8, 3)
        advantages = grpo.group_advantages(grpo.scalarize(raw, weights, 4), 4)
        meta = conductor.meta_reward(advantages, raw, group_size=4)
        torch.testing.assert_close(meta[:4], (table[0, action] - table[0].mean()).expand(4))
        assert (meta[4:] == 0).all()  # no label, no credit
        assert (meta[:4] > 0).all() == (action == 1)
    batch = emphasis_trusted()  # the batch baseline gives a lone labelled group nothing to learn from
    batch.bind(["a", "b", "trusted"], hidden_size=4)
    weights = batch.action_table[1].expand(8, 3)
    assert (batch.meta_reward(grpo.group_advantages(grpo.scalarize(raw, weights, 4), 4), raw, 4) == 0).all()
    with pytest.raises(ValueError, match="credit must be"):
        TrustedConductor("trusted", credit="mean")


def test_all_actions_credit_moves_every_action_from_one_labelled_group():
    from maestro_lit.conductor.outer_loop import OuterLoop

    torch.manual_seed(0)
    conductor = emphasis_trusted(credit="all_actions", entropy_coef=0.0)
    conductor.bind(["a", "b", "trusted"], hidden_size=4)
    raw = torch.tensor(
        [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.6], [0.0, 0.0, 0.2]] + [[1.0, 0.0, float("nan")]] * 4
    )
    hidden = torch.randn(8, 4)
    choice = conductor.choose(hidden, {}, group_size=4)
    advantages = torch.zeros(8)
    credit = conductor.outer_credit(advantages, raw, group_size=4)
    table = conductor.action_agreements(raw, 4)
    assert credit.shape == (8, 3) and (credit[4:] == 0).all()
    torch.testing.assert_close(credit[:4], (table[0] - table[0].mean()).expand(4, 3))
    outer = OuterLoop(conductor)
    optimizer = torch.optim.SGD(conductor.parameters(), lr=1.0)
    before = conductor.policy_log_probs(hidden, 4)[0].exp()
    outer.step(choice, hidden, advantages, raw, 4, optimizer)
    after = conductor.policy_log_probs(hidden, 4)[0].exp()
    assert outer.updates == 1 and after[1] > before[1] and after[2] < before[2]  # whatever action was sampled
