import math

import pytest
import torch

from maestro_lit import grpo


def test_group_advantages_hand_computed_with_zero_variance_group():
    rewards = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    adv = grpo.group_advantages(rewards, group_size=3, eps=1e-4)
    std = 1.0  # unbiased std of (1, 2, 3)
    expected_first = torch.tensor([-1.0, 0.0, 1.0]) / (std + 1e-4)
    torch.testing.assert_close(adv[:3], expected_first)
    assert torch.equal(adv[3:], torch.zeros(3))
    assert grpo.zero_std_group_fraction(rewards, 3).item() == 0.5


def test_group_advantages_rejects_ragged_groups():
    with pytest.raises(ValueError, match="groups of 4"):
        grpo.group_advantages(torch.zeros(6), 4)


def test_normalize_within_groups_masks_nan_and_zero_variance():
    scores = torch.tensor(
        [[1.0, 7.0], [3.0, 7.0], [float("nan"), 7.0], [0.0, 1.0], [2.0, 2.0], [4.0, 3.0]]
    )  # two groups of 3, two components
    z = grpo.normalize_within_groups(scores, 3, eps=0.0)
    # group 1, component 0: finite values (1, 3): mean 2, unbiased std sqrt(2)
    torch.testing.assert_close(z[:2, 0], torch.tensor([-1.0, 1.0]) / math.sqrt(2))
    assert z[2, 0] == 0  # NaN is masked, not propagated
    assert torch.equal(z[:3, 1], torch.zeros(3))  # zero variance → 0
    torch.testing.assert_close(z[3:, 0], torch.tensor([-1.0, 0.0, 1.0]))  # (0, 2, 4): mean 2, std 2
    assert torch.isfinite(z).all()


def test_scalarize_orders_differ_and_unknown_order_fails():
    raw = torch.tensor([[1.0, 100.0], [2.0, 300.0]])
    w = torch.tensor([0.5, 0.5])
    torch.testing.assert_close(grpo.scalarize(raw, w, 2, "sum_then_normalize"), torch.tensor([50.5, 151.0]))
    per = grpo.scalarize(raw, w, 2, "normalize_then_sum")
    torch.testing.assert_close(per, torch.tensor([-1.0, 1.0]) / math.sqrt(2), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="unknown reward normalization"):
        grpo.scalarize(raw, w, 2, "nope")


def test_k3_kl_zero_at_equality_positive_otherwise():
    lp = torch.log(torch.tensor([[0.2, 0.5, 0.9]]))
    assert torch.equal(grpo.k3_kl(lp, lp), torch.zeros_like(lp))
    other = torch.log(torch.tensor([[0.3, 0.1, 0.6]]))
    assert (grpo.k3_kl(lp, other) > 0).all()


def _loss_inputs():
    logprobs = torch.log(torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    old = torch.log(torch.tensor([[0.25, 0.5, 0.5], [0.5, 1.0, 0.5]]))  # ratios: [2, 1, 1], [1, .5, 1]
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    return logprobs, old, adv, mask


def test_clipped_loss_and_aggregations_hand_computed():
    logprobs, old, adv, mask = _loss_inputs()
    # per-token -min(ρA, clip(ρ)A) with ε=0.2:
    # row 0 (A=1):  ρ=2 → min(2, 1.2) = 1.2 → -1.2 ; ρ=1 → -1 ; (masked)
    # row 1 (A=-1): ρ=1 → 1 ; ρ=.5 → -min(-.5, -.8) = .8 ; ρ=1 → 1
    per_token = torch.tensor([[-1.2, -1.0, -1.0], [1.0, 0.8, 1.0]])
    m = mask.float()
    expected = {
        "grpo": ((-2.2 / 2) + (2.8 / 3)) / 2,
        "bnpo": (per_token * m).sum() / 5,
        "dapo": (per_token * m).sum() / 10,  # normalised by the whole batch's tokens
        "dr_grpo": (per_token * m).sum() / (2 * 4),
    }
    for loss_type, value in expected.items():
        loss, stats = grpo.clipped_policy_loss(
            logprobs,
            old,
            adv,
            mask,
            loss_type=loss_type,
            max_completion_length=4,
            num_batch_tokens=10 if loss_type == "dapo" else None,
        )
        torch.testing.assert_close(loss, torch.as_tensor(value, dtype=torch.float32), msg=loss_type)
    # clipped tokens: row0 token0 (ρ=2 > 1.2, A>0) and row1 token1 (ρ=.5 < .8, A<0) → 2 of 5
    torch.testing.assert_close(stats.clip_fraction, torch.tensor(2 / 5))


def test_kl_term_added_with_beta():
    logprobs, old, adv, mask = _loss_inputs()
    ref = logprobs - 0.1
    base, _ = grpo.clipped_policy_loss(logprobs, old, adv, mask, loss_type="bnpo")
    with_kl, stats = grpo.clipped_policy_loss(logprobs, old, adv, mask, beta=0.5, ref_logprobs=ref, loss_type="bnpo")
    kl = math.exp(-0.1) + 0.1 - 1
    torch.testing.assert_close(with_kl - base, torch.tensor(0.5 * kl))
    torch.testing.assert_close(stats.kl, torch.tensor(kl))
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo.clipped_policy_loss(logprobs, old, adv, mask, beta=0.5)


def test_loss_gradient_pushes_towards_positive_advantage():
    logprobs = torch.zeros(2, 2, requires_grad=True)
    loss, _ = grpo.clipped_policy_loss(logprobs, logprobs.detach(), torch.tensor([1.0, -1.0]), torch.ones(2, 2))
    loss.backward()
    assert (logprobs.grad[0] < 0).all() and (logprobs.grad[1] > 0).all()


def test_unknown_loss_type_and_minibatches():
    with pytest.raises(ValueError, match="unknown loss_type"):
        grpo.aggregate(torch.zeros(1, 1), torch.ones(1, 1), "ppo")
    assert grpo.minibatch_slices(6, 2) == [slice(0, 3), slice(3, 6)]
    with pytest.raises(ValueError):
        grpo.minibatch_slices(2, 3)


def test_unscored_rows():
    raw = torch.tensor([[float("nan"), float("nan")], [1.0, float("nan")]])
    assert grpo.unscored_rows(raw).tolist() == [True, False]


def test_an_unscored_completion_stays_out_of_its_groups_statistics():
    # [1, 2, 4] with one unscored completion: mean 7/3 and std of (1, 2, 4) alone; the unscored row gets 0.
    expected = torch.tensor([1.0 - 7 / 3, 2.0 - 7 / 3, 4.0 - 7 / 3]) / (math.sqrt(7 / 3) + 1e-4)
    for rewards, valid in (
        (torch.tensor([1.0, 2.0, 4.0, float("nan")]), None),  # NaN reward: out of the statistics by default
        (torch.tensor([1.0, 2.0, 4.0, 0.0]), torch.tensor([True, True, True, False])),  # scalarised 0, marked unscored
    ):
        adv = grpo.group_advantages(rewards, 4, valid=valid)
        torch.testing.assert_close(adv[:3], expected)
        assert adv[3] == 0
    assert adv.tolist() == pytest.approx([-0.873, -0.218, 1.091, 0.0], abs=1e-3)  # TRL's numbers
    # A group left with one scored completion has no spread: all 0, never NaN.
    lone = grpo.group_advantages(torch.tensor([5.0, 0.0, 0.0]), 3, valid=torch.tensor([True, False, False]))
    assert lone.tolist() == [0.0, 0.0, 0.0]


def test_scale_rewards_group_batch_none_hand_computed():
    rewards = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 9.0])
    centred = torch.tensor([-1.0, 0.0, 1.0, -4 / 3, -4 / 3, 8 / 3])
    group_std = torch.tensor([1.0, 1.0, 1.0, math.sqrt(16 / 3), math.sqrt(16 / 3), math.sqrt(16 / 3)])
    torch.testing.assert_close(grpo.group_advantages(rewards, 3, scale="group"), centred / (group_std + 1e-4))
    torch.testing.assert_close(grpo.group_advantages(rewards, 3, scale="batch"), centred / (rewards.std() + 1e-4))
    torch.testing.assert_close(grpo.group_advantages(rewards, 3, scale="none"), centred)
    assert grpo.group_advantages(torch.tensor([2.0, 2.0, 1.0, 3.0]), 2, scale="none")[:2].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="unknown scale_rewards"):
        grpo.group_advantages(rewards, 3, scale="std")


def test_sequence_level_ratio_is_one_clipped_ratio_per_completion():
    logprobs, old, _, mask = _loss_inputs()
    adv = torch.tensor([1.0, -2.0])
    # row 0: log-ratios (log 2, 0) over its 2 tokens → ρ = √2, clipped to 1 + 0.2 (A > 0);
    # row 1: (0, log .5, 0) → ρ = .5^(1/3) ≈ .794, inside [1 − 0.25, 1.2]: −ρ·A on each of its 3 tokens.
    loss, stats = grpo.clipped_policy_loss(
        logprobs, old, adv, mask, epsilon_low=0.25, importance_sampling_level="sequence", loss_type="bnpo"
    )
    torch.testing.assert_close(loss, torch.tensor((2 * -1.2 + 3 * 2 * 0.5 ** (1 / 3)) / 5))
    torch.testing.assert_close(stats.clip_fraction, torch.tensor(2 / 5))  # row 0's two tokens
    with pytest.raises(ValueError, match="unknown importance_sampling_level"):
        grpo.clipped_policy_loss(logprobs, old, adv, mask, importance_sampling_level="tokens")


def test_top_entropy_quantile_keeps_the_surrogate_on_high_entropy_tokens_only():
    logprobs, old, adv, mask = _loss_inputs()
    entropy = torch.tensor([[0.1, 0.9, 5.0], [0.5, 0.3, 0.7]])  # the masked token (5.0) never counts
    per_token = torch.tensor([[-1.2, -1.0, -1.0], [1.0, 0.8, 1.0]])
    kept = grpo.high_entropy_mask(entropy, mask, 0.6)  # the 0.6 quantile of (.1, .9, .5, .3, .7) is .58
    assert kept.tolist() == [[False, True, False], [False, False, True]]
    masked = {"loss_type": "bnpo", "token_entropy": entropy, "top_entropy_quantile": 0.4}
    loss, _ = grpo.clipped_policy_loss(logprobs, old, adv, mask, **masked)
    torch.testing.assert_close(loss, (per_token * kept).sum() / 5)
    with_kl, _ = grpo.clipped_policy_loss(logprobs, old, adv, mask, beta=0.5, ref_logprobs=logprobs - 0.1, **masked)
    torch.testing.assert_close(with_kl - loss, torch.tensor(0.5 * (math.exp(-0.1) + 0.1 - 1)))  # KL on every token
    with pytest.raises(ValueError, match="needs token_entropy"):
        grpo.clipped_policy_loss(logprobs, old, adv, mask, top_entropy_quantile=0.4)
