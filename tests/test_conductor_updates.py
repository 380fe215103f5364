"""The Conductor's outer loop: buffered REINFORCE every M steps, checkpointable; the joint variant's gradient path."""

import copy
import io

import pytest
import torch

from maestro_lit import grpo
from maestro_lit.conductor.base import Conductor, StaticWeights
from maestro_lit.conductor.joint import JointConductor
from maestro_lit.conductor.outer_loop import OuterLoop, OuterLoopSettings
from maestro_lit.conductor.trusted import TrustedConductor

NAMES = ["ppl", "fmt", "ent", "len", "pref"]
H, G, N = 6, 4, 12


def make_conductor(**options) -> Conductor:
    torch.manual_seed(0)
    conductor = Conductor(
        action_table="one_hot", learn_temperature=True, probability_floor=1e-4, entropy_coef=1e-3, **options
    )
    conductor.bind(NAMES, H)
    with torch.no_grad():
        conductor.head.weight.normal_(std=0.5)  # away from the uniform start, so gradients differ between contexts
    return conductor


def fake_step(seed: int):
    """Hidden states, raw rewards and advantages of one training step, made up but fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, H, generator=g), torch.rand(N, 5, generator=g), torch.randn(N, generator=g)


def run_steps(conductor, outer, optimizer, seeds, backward=None):
    metrics = []
    for seed in seeds:
        hidden, raw, advantages = fake_step(seed)
        choice = conductor.choose(hidden, {}, group_size=G)
        kwargs = {} if backward is None else {"backward": backward}
        metrics.append(outer.step(choice, hidden, outer.policy_advantages(advantages), raw, G, optimizer, **kwargs))
    return metrics


def test_updates_happen_exactly_every_m_steps():
    conductor = make_conductor(update_every=3)
    outer = OuterLoop(conductor)
    assert outer.update_every == 3  # taken from the scalariser's option
    optimizer = torch.optim.SGD(conductor.parameters(), lr=0.1)
    snapshots, metrics = [], []
    for seed in range(7):
        metrics += run_steps(conductor, outer, optimizer, [seed])
        snapshots.append(conductor.head.weight.detach().clone())
    changed = [not torch.equal(snapshots[i], snapshots[i - 1]) for i in range(1, 7)]
    assert changed == [False, True, False, False, True, False]  # steps 2→3 and 5→6 (1-based: after steps 3 and 6)
    assert [float(m["conductor/updates"]) for m in metrics] == [0, 0, 1, 1, 1, 2, 2]
    assert [float(m["conductor/buffered"]) for m in metrics] == [1, 2, 0, 1, 2, 0, 1]
    assert ["conductor/loss" in m for m in metrics] == [False, False, True, False, False, True, False]
    assert all("conductor/temperature" in m and "conductor/entropy" in m for m in metrics)


def test_update_uses_every_buffered_triplet():
    conductor = make_conductor(update_every=3)
    reference = copy.deepcopy(conductor)
    outer = OuterLoop(conductor)
    grads = []

    def recording_backward(loss):
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in conductor.named_parameters()})

    torch.manual_seed(1)
    actions = []
    for seed in range(3):
        hidden, raw, advantages = fake_step(seed)
        choice = conductor.choose(hidden, {}, group_size=G)
        actions.append(choice.actions)
        outer.step(
            choice, hidden, advantages, raw, G, torch.optim.SGD(conductor.parameters(), lr=0.1), recording_backward
        )
    assert len(grads) == 1
    # the loss over all 3·N triplets, written out by hand on an untouched copy
    hidden = torch.cat([fake_step(s)[0] for s in range(3)])
    meta = torch.cat([fake_step(s)[2] for s in range(3)])
    a = torch.cat(actions)
    log_probs = reference.log_policy(hidden)
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    loss = -(meta * log_probs[torch.arange(3 * N), a]).mean() - 1e-3 * entropy
    loss.backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grads[0][name], p.grad, msg=name)
    # and it is not the gradient of the last step alone
    last = copy.deepcopy(reference)
    last.zero_grad()
    lp = last.log_policy(hidden[-N:])
    (-(meta[-N:] * lp[torch.arange(N), a[-N:]]).mean()).backward()
    assert not torch.allclose(last.head.weight.grad, grads[0]["head.weight"])


def test_m_equal_one_reproduces_the_per_step_update():
    old, new = make_conductor(), make_conductor()
    old_opt, new_opt = torch.optim.AdamW(old.parameters(), lr=1e-2), torch.optim.AdamW(new.parameters(), lr=1e-2)
    outer = OuterLoop(new, update_every=1)
    for seed in range(4):
        hidden, raw, advantages = fake_step(seed)
        torch.manual_seed(seed)
        choice = old.choose(hidden, {}, group_size=G)
        # the per-step REINFORCE loss
        loss, _ = old.reinforce_loss(choice.log_probs, choice.actions, old.meta_reward(advantages, raw, G))
        old_opt.zero_grad()
        loss.backward()
        old_opt.step()
        torch.manual_seed(seed)
        metrics = outer.step(new.choose(hidden, {}, group_size=G), hidden, advantages, raw, G, new_opt)
        assert torch.equal(metrics["conductor/loss"], loss.detach())
    for (name, p), q in zip(old.named_parameters(), new.parameters()):
        assert torch.equal(p, q), name


def test_trusted_conductor_buffers_its_own_meta_reward_per_prompt():
    torch.manual_seed(0)
    conductor = TrustedConductor("pref", update_every=2)
    conductor.bind(NAMES, H)
    outer = OuterLoop(conductor)
    hidden, raw, advantages = fake_step(0)
    choice = conductor.choose(hidden, {}, group_size=G)
    outer.step(choice, hidden, advantages, raw, G, torch.optim.SGD(conductor.parameters(), lr=0.1))
    torch.testing.assert_close(outer.buffer[0].meta_reward, conductor.meta_reward(advantages, raw, G))
    # recomputed log-probs are per prompt, repeated per completion, and equal the ones the choice used
    torch.testing.assert_close(conductor.policy_log_probs(hidden, G), choice.log_probs)
    loss, _ = outer.buffered_loss()
    torch.testing.assert_close(
        loss, conductor.reinforce_loss(choice.log_probs, choice.actions, conductor.meta_reward(advantages, raw, G))[0]
    )


def test_state_dict_round_trip_with_a_non_empty_buffer_resumes_exactly():
    def fresh():
        conductor = make_conductor(update_every=3)
        return conductor, OuterLoop(conductor), torch.optim.AdamW(conductor.parameters(), lr=1e-2)

    conductor, outer, optimizer = fresh()
    torch.manual_seed(5)
    run_steps(conductor, outer, optimizer, range(4))  # one update done, one step buffered
    assert len(outer.buffer) == 1 and outer.updates == 1
    blob = io.BytesIO()
    torch.save(
        {
            "outer": outer.state_dict(),
            "conductor": conductor.state_dict(),
            "opt": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
        },
        blob,
    )

    torch.manual_seed(6)
    straight = run_steps(conductor, outer, optimizer, range(4, 9))

    blob.seek(0)
    saved = torch.load(blob, weights_only=True)
    resumed_conductor, resumed, resumed_opt = fresh()
    resumed_conductor.load_state_dict(saved["conductor"])
    resumed_opt.load_state_dict(saved["opt"])
    resumed.load_state_dict(saved["outer"])
    assert len(resumed.buffer) == 1 and resumed.updates == 1
    torch.manual_seed(6)
    again = run_steps(resumed_conductor, resumed, resumed_opt, range(4, 9))
    for a, b in zip(straight, again):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for p, q in zip(conductor.parameters(), resumed_conductor.parameters()):
        assert torch.equal(p, q)


def test_malformed_outer_state_is_a_clear_error():
    with pytest.raises(KeyError, match="outer-loop state"):
        OuterLoop(make_conductor()).load_state_dict({"buffer": []})


def test_static_scalarizers_have_no_outer_step():
    static = StaticWeights()
    static.bind(NAMES, H)
    outer = OuterLoop(static)
    hidden, raw, advantages = fake_step(0)
    assert outer.step(static.choose(hidden, {}), hidden, advantages, raw, G, None) == {}
    assert outer.policy_advantages(advantages.requires_grad_()).requires_grad is False


# ------------------------------------------------------------------ joint


def joint_setup(raw=None):
    torch.manual_seed(0)
    conductor = JointConductor()
    conductor.bind(NAMES, H)
    with torch.no_grad():
        conductor.head.weight.normal_(std=0.5)
    hidden, fake_raw, _ = fake_step(3)
    raw = fake_raw if raw is None else raw
    return conductor, hidden, raw


def test_joint_weights_are_the_continuous_policy_with_grad():
    conductor, hidden, _ = joint_setup()
    choice = conductor.choose(hidden, {}, group_size=G)
    assert choice.weights.requires_grad
    torch.testing.assert_close(choice.weights, conductor.log_policy(hidden).exp())
    assert conductor.learns_through_policy_loss and conductor.learnable


def test_joint_passes_the_policy_loss_gradient_into_phi():
    conductor, hidden, raw = joint_setup()
    outer = OuterLoop(conductor)
    choice = conductor.choose(hidden, {}, group_size=G)
    advantages = grpo.group_advantages(grpo.scalarize(raw, choice.weights, G), G)
    policy_adv = outer.policy_advantages(advantages)
    assert policy_adv.requires_grad and policy_adv.grad_fn is None  # a leaf: the policy's graph stays separate
    lengths = torch.arange(1.0, N + 1)  # a toy token-weighted policy loss, split in two "minibatches"
    for rows in (slice(0, N // 2), slice(N // 2, N)):
        (-(policy_adv[rows] * lengths[rows]).sum() / lengths.sum()).backward()
    grads = {}

    def recording_backward(objective):
        objective.backward()
        grads.update({n: p.grad.clone() for n, p in conductor.named_parameters()})

    before = conductor.head.weight.detach().clone()
    metrics = outer.step(
        choice, hidden, advantages, raw, G, torch.optim.SGD(conductor.parameters(), lr=0.1), recording_backward
    )
    assert metrics["conductor/updates"] == 1 and not torch.equal(conductor.head.weight, before)
    # the same gradient by autograd straight through A(φ) on an untouched copy
    reference, _, _ = joint_setup()
    ref_choice = reference.choose(hidden, {}, group_size=G)
    ref_adv = grpo.group_advantages(grpo.scalarize(raw, ref_choice.weights, G), G)
    entropy = -(ref_choice.log_probs.exp() * ref_choice.log_probs).sum(-1).mean()
    (-(ref_adv * lengths).sum() / lengths.sum() - reference.entropy_coef * entropy).backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, msg=name)
    assert grads["head.weight"].abs().max() > 1e-4


def test_joint_gradient_vanishes_for_a_plain_mean_over_completions():
    """The docstring's caveat: −mean(A) is 0 for every φ, since advantages are centred per group."""
    conductor, hidden, raw = joint_setup()
    conductor.entropy_coef = 0.0
    outer = OuterLoop(conductor)
    choice = conductor.choose(hidden, {}, group_size=G)
    advantages = grpo.group_advantages(grpo.scalarize(raw, choice.weights, G), G)
    (-outer.policy_advantages(advantages).mean()).backward()
    outer.step(choice, hidden, advantages, raw, G, torch.optim.SGD(conductor.parameters(), lr=0.1))
    assert conductor.head.weight.grad.abs().max() < 1e-6


def test_joint_gradient_is_finite_with_a_zero_variance_group():
    raw = fake_step(3)[1]
    raw[:G] = raw[0]  # the first group's completions score identically on every component
    conductor, hidden, raw = joint_setup(raw)
    outer = OuterLoop(conductor)
    choice = conductor.choose(hidden, {}, group_size=G)
    advantages = grpo.group_advantages(grpo.scalarize(raw, choice.weights, G), G)
    (outer.policy_advantages(advantages) * torch.arange(1.0, N + 1)).sum().backward()
    outer.step(choice, hidden, advantages, raw, G, torch.optim.SGD(conductor.parameters(), lr=0.1))
    assert all(torch.isfinite(p.grad).all() for p in conductor.parameters())
    assert torch.equal(advantages[:G].detach(), torch.zeros(G))


def test_joint_without_a_policy_backward_does_not_update():
    conductor, hidden, raw = joint_setup()
    outer = OuterLoop(conductor)
    choice = conductor.choose(hidden, {}, group_size=G)
    advantages = grpo.group_advantages(grpo.scalarize(raw, choice.weights, G), G)
    outer.policy_advantages(advantages)  # every policy update skipped (non-finite): no .grad
    before = conductor.head.weight.detach().clone()
    metrics = outer.step(choice, hidden, advantages, raw, G, torch.optim.SGD(conductor.parameters(), lr=0.1))
    assert metrics["conductor/updates"] == 0 and torch.equal(conductor.head.weight, before)


# ------------------------------------------------------------------ M: the scalariser's own, else the run's


def test_m_is_the_scalarisers_own_else_the_runs_else_the_papers():
    assert OuterLoop(make_conductor()).update_every == 3  # the class default leaves M open: the paper's 3
    assert OuterLoop(make_conductor(), update_every=6).update_every == 6  # the run's M (model.outer_loop, a task file)
    assert OuterLoop(make_conductor(update_every=2), update_every=6).update_every == 2  # an explicit M is kept
    assert OuterLoop(JointConductor(gradient="reinforce"), update_every=6).update_every == 1  # joint: every step
    static = StaticWeights()
    static.bind(NAMES, H)
    hidden = torch.zeros(N, H)
    outer = OuterLoop(static, update_every=6)
    assert outer.step(static.choose(hidden, {}), hidden, torch.zeros(N), None, G, None) == {}
    with pytest.raises(ValueError, match="model.outer_loop.update_every must be >= 1"):
        OuterLoopSettings(update_every=0)


def test_joint_reinforce_is_the_paper_preset_updated_after_every_step():
    """methods/maestro_joint.yaml: sampled actions, MAESTRO's REINFORCE loss, M = 1, nothing kept in a buffer."""
    joint, preset = JointConductor(gradient="reinforce"), Conductor()
    for conductor in (joint, preset):
        torch.manual_seed(0)
        conductor.bind(NAMES, H)
        with torch.no_grad():
            conductor.head.weight.normal_(std=0.5)
    assert not joint.learns_through_policy_loss and joint.learnable and joint.gradient == "reinforce"
    outer = OuterLoop(joint, update_every=6)
    optimizer = torch.optim.SGD(joint.parameters(), lr=0.1)
    for seed in range(3):
        hidden, raw, advantages = fake_step(seed)
        torch.manual_seed(seed)
        choice = joint.choose(hidden, {}, group_size=G)
        torch.manual_seed(seed)
        same = preset.choose(hidden, {}, group_size=G)
        assert torch.equal(choice.actions, same.actions) and not choice.weights.requires_grad
        torch.testing.assert_close(choice.weights, torch.eye(5)[choice.actions])
        expected, _ = preset.reinforce_loss(preset.log_policy(hidden), choice.actions, advantages)
        loss, _ = joint.reinforce_loss(joint.log_policy(hidden), choice.actions, advantages)
        torch.testing.assert_close(loss, expected)
        before = joint.head.weight.detach().clone()
        policy_advantages = outer.policy_advantages(advantages.requires_grad_())
        assert not policy_advantages.requires_grad  # the policy loss sees plain advantages, as for every method
        metrics = outer.step(choice, hidden, policy_advantages, raw, G, optimizer)
        assert metrics["conductor/updates"] == seed + 1 and metrics["conductor/buffered"] == 0
        assert "conductor/loss" in metrics
        assert not torch.equal(joint.head.weight, before)
        preset.load_state_dict(joint.state_dict())
    with pytest.raises(ValueError, match="gradient must be"):
        JointConductor(gradient="both")
