"""The simulator: its world separates methods, runs are reproducible, and its parts do what they say."""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
import statistics

import pytest
import torch

from maestro_lab.sim.__main__ import main
from maestro_lab.sim.compare import mi_bits, type_mi_bits
from maestro_lab.sim.label_free import ConsensusConductor, ReferenceCreditConductor, reference_scalar
from maestro_lab.sim.loop import SimConfig, _joint_signal, run
from maestro_lab.sim.methods import CANDIDATES, METHODS, Method, _scalarizer
from maestro_lab.sim.policy import TabularPolicy, policy_step
from maestro_lab.sim.presets import build, from_file
from maestro_lab.sim.scalarizers import OracleWeights
from maestro_lab.sim.world import build_world, static_check
from maestro_lit import grpo
from maestro_lit.conductor.base import EMPHASIS_SETTINGS, Conductor, RandomWeights, StaticWeights
from maestro_lit.conductor.joint import JointConductor
from maestro_lit.conductor.outer_loop import resolve_update_every

WORLD = build_world()


def test_no_static_weighting_is_optimal_for_every_category():
    check = static_check(WORLD)
    assert check.oracle_utility - check.best_static_utility > 0.05
    assert len(set(check.best_type_per_category.values())) > 1


def test_same_seed_gives_identical_runs_and_different_seeds_differ():
    config = SimConfig(steps=15, eval_every=5)
    for name in ("maestro", "maestro_joint", "trusted", "random"):
        a, b, c = (run(METHODS[name], seed, WORLD, config) for seed in (3, 3, 4))
        assert (
            a.curve_utility == b.curve_utility
            and torch.equal(a.type_probs, b.type_probs)
            and torch.equal(a.action_joint, b.action_joint)
        )
        assert not torch.equal(a.type_probs, c.type_probs)


def test_oracle_beats_static_by_a_clear_margin():
    seeds = range(4)
    static = [run(METHODS["equal"], s, WORLD).utility for s in seeds]
    oracle = [run(METHODS["oracle"], s, WORLD).utility for s in seeds]
    spread = max(statistics.stdev(static), statistics.stdev(oracle))
    assert statistics.fmean(oracle) - statistics.fmean(static) >= 3 * spread  # 20 seeds: see docs/results.md, Simulator
    assert min(oracle) > max(static)


def test_policy_step_is_reinforce_with_the_group_advantages():
    policy = TabularPolicy(2, 3)
    categories, types = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 2, 1, 1])
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    policy_step(policy, torch.optim.SGD(policy.parameters(), lr=1.0), categories, types, advantages)
    expected = torch.zeros(2, 3)  # −∇ of −mean(A·log π) at uniform π: A·(onehot − 1/3) / N
    for c, t, a in zip(categories, types, advantages):
        expected[c] += a * (torch.nn.functional.one_hot(t, 3).float() - 1 / 3) / 4
    assert torch.allclose(policy.logits.detach(), expected, atol=1e-6)


def test_methods_are_the_project_presets_with_the_sims_documented_lr():
    config = SimConfig()
    scalarizer, make_optimizer = METHODS["maestro"].build(WORLD, config.conductor_lr)
    assert type(scalarizer) is Conductor and scalarizer.table_kind == "one_hot" and scalarizer.learn_temperature
    M = resolve_update_every(scalarizer)  # the file leaves M to the run (model.outer_loop); the sim's is the paper's 3
    assert (scalarizer.probability_floor, scalarizer.entropy_coef, M, scalarizer.eval_weights) == (
        1e-4,
        1e-3,
        3,
        "continuous",
    )
    scalarizer.bind(list(WORLD.components), WORLD.hidden_size)
    optimizer = make_optimizer(scalarizer.parameters())
    assert (
        type(optimizer) is torch.optim.AdamW
        and optimizer.defaults["lr"] == config.conductor_lr
        and optimizer.defaults["weight_decay"] == 0.01
    )
    paper, make_paper = METHODS["maestro_paper_lr"].build(WORLD, config.conductor_lr)
    paper.bind(list(WORLD.components), WORLD.hidden_size)
    assert make_paper(paper.parameters()).defaults["lr"] == 5e-5
    assert type(METHODS["maestro_joint"].build(WORLD, 0.05)[0]) is JointConductor
    assert (
        type(METHODS["equal"].build(WORLD, 0.05)[0]) is StaticWeights
        and type(METHODS["random"].build(WORLD, 0.05)[0]) is RandomWeights
    )


def test_preset_errors_name_the_problem():
    with pytest.raises(FileNotFoundError, match="no method file .*nope.yaml"):
        from_file("nope", 0.1)
    with pytest.raises(Exception, match="scalarizer"):
        build({"scalarizer": {"class_path": "torch.optim.AdamW"}}, 0.1)


def test_the_paper_preset_updates_every_third_step_and_the_paper_lr_barely_moves_it():
    config = SimConfig(steps=12, eval_every=6)
    fast, slow = run(METHODS["maestro"], 0, WORLD, config), run(METHODS["maestro_paper_lr"], 0, WORLD, config)
    assert fast.conductor_updates == slow.conductor_updates == 4
    share = lambda r: float(r.action_joint.sum(0).max() / r.action_joint.sum())  # noqa: E731
    assert share(fast) > share(slow)  # the sim lr concentrates the actions; 5e-5 leaves them near uniform


def test_joint_gradient_through_the_grpo_loss_is_zero_because_group_advantages_sum_to_zero():
    # the policy-loss reading of "joint" (JointConductor gradient: policy_loss); the shipped ablation is REINFORCE
    joint = _scalarizer("maestro_lit.conductor.joint.JointConductor", gradient="policy_loss")
    policy_loss = Method("joint_policy_loss", joint)
    result = run(policy_loss, 0, WORLD, SimConfig(steps=5, eval_every=5))
    assert result.conductor_updates == 5 and result.joint_signal < 1e-6
    shipped = run(METHODS["maestro_joint"], 0, WORLD, SimConfig(steps=5, eval_every=5))
    assert shipped.conductor_updates == 5  # methods/maestro_joint.yaml: a REINFORCE update after every step
    # the same path with unequal per-completion loss weights is not zero: the wiring carries grad
    conductor = JointConductor()
    conductor.bind(["a", "b", "c"], 4)
    with torch.no_grad():
        conductor.head.weight.normal_()
    torch.manual_seed(0)
    raw, hidden = torch.randn(8, 3), torch.randn(8, 4)
    advantages = grpo.group_advantages(grpo.scalarize(raw, conductor.choose(hidden, {}, group_size=4).weights, 4), 4)
    assert _joint_signal(conductor, advantages, torch.full((8,), -1 / 8)) < 1e-6
    assert _joint_signal(conductor, advantages, torch.randn(8)) > 1e-3


def test_oracle_scalariser():
    oracle = OracleWeights({"x": [1.0, 3.0], "y": [2.0, 0.0]}, ["p", "q"])
    oracle.bind(["q", "trusted", "p"], 4)
    weights = oracle.choose(torch.zeros(3, 4), {"category": ["x", "y", "x"]}).weights
    assert torch.allclose(weights, torch.tensor([[0.75, 0.0, 0.25], [0.0, 0.0, 1.0], [0.75, 0.0, 0.25]]))


def test_label_free_candidates_credit_agreement_with_the_equal_weight_reference():
    torch.manual_seed(0)
    raw = torch.randn(8, 3)
    reference = grpo.group_advantages(reference_scalar(raw, 4), 4)
    credit = ReferenceCreditConductor()
    credit.bind(["a", "b", "c"], 4)
    assert torch.allclose(credit.meta_reward(torch.randn(8), raw, 4), reference)  # its own advantages play no part
    consensus = ConsensusConductor(**EMPHASIS_SETTINGS)  # the earlier defaults: uniform + emphasis rows
    consensus.bind(["a", "b", "c"], 4)
    assert consensus.action_table.shape == (4, 3)  # every column optimised
    agreeing = torch.cat([reference[:4], -reference[4:]])  # group 1 agrees with the reference, group 2 opposes it
    meta = consensus.meta_reward(agreeing, raw, 4)
    assert torch.allclose(meta, torch.tensor([1.0] * 4 + [-1.0] * 4), atol=1e-5)
    for name in CANDIDATES:
        assert run(CANDIDATES[name], 0, WORLD, SimConfig(steps=6, eval_every=3)).conductor_updates > 0


def test_command_writes_results_csv_and_figure(tmp_path):
    main(["--seeds", "2", "--steps", "10", "--methods", "equal", "oracle", "maestro", "--out", str(tmp_path)])
    for name in ("results.md", "results.csv", "curves.csv", "figure.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert all(None not in r and "" not in r.values() and None not in r.values() for r in rows)  # every column filled
    assert [(r["method"], r["seed"]) for r in rows] == [
        (m, s) for m in ("equal", "oracle", "maestro") for s in ("0", "1")
    ]
    mi = {r["method"]: float(r["mi_bits"]) for r in rows}
    # static's argmax never moves; the oracle's is the category (≤ 2 bits)
    assert mi["equal"] == 0.0 and mi["oracle"] > 1.5
    text = (tmp_path / "results.md").read_text()
    assert "| oracle |" in text and "| 1.00 |" in text and "only_detail" in text


def test_mi_of_an_action_that_is_the_category_is_its_entropy():
    result = run(METHODS["oracle"], 0, WORLD, SimConfig(steps=8, eval_every=4))
    counts = result.action_joint.sum(1).double()
    p = counts / counts.sum()
    assert abs(mi_bits(result) - float(-(p * p.log2()).sum())) < 1e-9


def test_type_mi_is_zero_for_per_prompt_weights_and_positive_when_actions_follow_the_type():
    oracle = run(METHODS["oracle"], 0, WORLD, SimConfig(steps=8, eval_every=4))
    assert abs(type_mi_bits(oracle)) < 1e-12
    follows = copy.copy(oracle)
    follows.type_action_joint = torch.zeros(2, 3, 3)
    follows.type_action_joint[:, [0, 1, 2], [0, 1, 2]] = 5.0  # within each category the action is the type
    assert abs(type_mi_bits(follows) - math.log2(3)) < 1e-9


def test_the_old_name_static_still_selects_equal_weights(tmp_path):
    main(["--seeds", "1", "--steps", "4", "--methods", "static", "--out", str(tmp_path)])
    assert [r["method"] for r in csv.DictReader(open(tmp_path / "results.csv"))] == ["equal"]


def test_label_free_methods_are_blind_to_which_category_wants_what():
    """Permuting the true weights among categories leaves a label-free run bit-identical, so averaged over
    relabelings its utility is mean_c w̄·m(p_c) ≤ max_t w̄·m_t (docs/results.md, Simulator); the trusted labels do
    see it."""
    relabelled = dataclasses.replace(WORLD, true_weights=WORLD.true_weights[[1, 2, 3, 0]])
    config = SimConfig(steps=12, eval_every=6)
    for name in ("maestro", "consensus", "reference_credit", "trusted"):
        method = {**METHODS, **CANDIDATES}[name]
        a, b = run(method, 0, WORLD, config), run(method, 0, relabelled, config)
        assert torch.equal(a.type_probs, b.type_probs) == (name != "trusted")
