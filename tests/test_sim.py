"""The simulator: its world separates methods, runs are reproducible, and its parts do what they say."""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
import statistics

import torch

from maestro_lit.conductor import Conductor, Scalarization
from maestro_lit.sim.__main__ import main
from maestro_lit.sim.compare import mi_bits, type_mi_bits
from maestro_lit.sim.loop import SimConfig, run
from maestro_lit.sim.methods import METHODS
from maestro_lit.sim.outer import OuterUpdate
from maestro_lit.sim.policy import TabularPolicy, policy_step
from maestro_lit.sim.scalarizers import DirichletWeights, OracleWeights
from maestro_lit.sim.world import build_world, static_check

WORLD = build_world()


def test_no_static_weighting_is_optimal_for_every_category():
    check = static_check(WORLD)
    assert check.oracle_utility - check.best_static_utility > 0.05
    assert len(set(check.best_type_per_category.values())) > 1


def test_same_seed_gives_identical_runs_and_different_seeds_differ():
    config = SimConfig(steps=15, eval_every=5)
    for name in ("maestro", "trusted", "random"):
        a, b, c = (run(METHODS[name], seed, WORLD, config) for seed in (3, 3, 4))
        assert (
            a.curve_utility == b.curve_utility and torch.equal(a.type_probs, b.type_probs) and torch.equal(a.action_joint, b.action_joint)
        )
        assert not torch.equal(a.type_probs, c.type_probs)


def test_oracle_beats_static_by_a_clear_margin():
    seeds = range(4)
    static = [run(METHODS["static"], s, WORLD).utility for s in seeds]
    oracle = [run(METHODS["oracle"], s, WORLD).utility for s in seeds]
    spread = max(statistics.stdev(static), statistics.stdev(oracle))
    assert statistics.fmean(oracle) - statistics.fmean(static) >= 3 * spread  # 20 seeds: 4.3 σ of static (its std 0.029)
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


def _conductor():
    conductor = Conductor()
    conductor.bind(["a", "b"], 4)
    return conductor


def test_outer_update_every_step_matches_the_module_and_buffers_every_m():
    torch.manual_seed(0)
    hidden, meta = torch.randn(6, 4), torch.randn(6)
    direct, outer_one = _conductor(), _conductor()
    choice = direct.choose(hidden, {}, group_size=2)
    opt = torch.optim.SGD(direct.parameters(), lr=0.1)
    loss, _ = direct.loss(choice, meta)
    opt.zero_grad(), loss.backward(), opt.step()
    replay = outer_one.choose(hidden, {}, greedy=True, group_size=2)
    OuterUpdate(outer_one, torch.optim.SGD(outer_one.parameters(), lr=0.1))(
        hidden, {}, 2, Scalarization(replay.weights, choice.actions, replay.log_probs), meta
    )
    assert torch.allclose(direct.head.weight, outer_one.head.weight)

    buffered = _conductor()
    outer = OuterUpdate(buffered, torch.optim.SGD(buffered.parameters(), lr=0.1), every=3)
    for step in range(3):
        before = buffered.head.weight.detach().clone()
        stats = outer(hidden, {}, 2, buffered.choose(hidden, {}, group_size=2), meta)
        changed = not torch.equal(before, buffered.head.weight.detach())
        assert changed == (step == 2) and bool(stats) == (step == 2)
    assert outer.buffer == []


def test_oracle_and_dirichlet_scalarisers():
    oracle = OracleWeights({"x": [1.0, 3.0], "y": [2.0, 0.0]}, ["p", "q"])
    oracle.bind(["q", "trusted", "p"], 4)
    weights = oracle.choose(torch.zeros(3, 4), {"category": ["x", "y", "x"]}).weights
    assert torch.allclose(weights, torch.tensor([[0.75, 0.0, 0.25], [0.0, 0.0, 1.0], [0.75, 0.0, 0.25]]))
    random = DirichletWeights()
    random.bind(["p", "q", "r"], 4)
    torch.manual_seed(0)
    w = random.choose(torch.zeros(500, 4), {}).weights
    assert (w >= 0).all() and torch.allclose(w.sum(-1), torch.ones(500))
    assert (w.mean(0) - 1 / 3).abs().max() < 0.05 and w.std(0).min() > 0.1
    assert torch.allclose(random.choose(torch.zeros(2, 4), {}, greedy=True).weights, torch.full((2, 3), 1 / 3))


def test_command_writes_results_csv_and_figure(tmp_path):
    main(["--seeds", "2", "--steps", "10", "--methods", "static", "oracle", "maestro", "--out", str(tmp_path)])
    for name in ("results.md", "results.csv", "curves.csv", "figure.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert all(None not in r and "" not in r.values() and None not in r.values() for r in rows)  # every column filled
    assert [(r["method"], r["seed"]) for r in rows] == [(m, s) for m in ("static", "oracle", "maestro") for s in ("0", "1")]
    mi = {r["method"]: float(r["mi_bits"]) for r in rows}
    assert mi["static"] == 0.0 and mi["oracle"] > 1.5  # static's argmax never moves; the oracle's is the category (≤ 2 bits)
    text = (tmp_path / "results.md").read_text()
    assert "| oracle |" in text and "| 1.00 |" in text and "emph_detail" in text


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


def test_an_injected_outer_loop_replaces_the_default_and_sees_every_step():
    calls = []

    def factory(scalarizer, optimizer):
        assert scalarizer.learnable and optimizer is not None
        return lambda hidden, columns, group_size, choice, meta_reward: calls.append((hidden.shape, group_size, meta_reward.shape)) or {}

    method = dataclasses.replace(METHODS["maestro"], name="maestro_injected", outer_factory=factory)
    result = run(method, 0, WORLD, SimConfig(steps=5, eval_every=5))
    assert calls == [((128, WORLD.hidden_size), 8, (128,))] * 5 and result.method == "maestro_injected"
