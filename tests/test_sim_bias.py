"""The simulator's null world: format failures by category, scores that carry no utility, and one short run."""

import pytest
import torch

from maestro_lab.sim.bias import (
    CONTROL_FAILURE_RATES,
    FORMAT_FAILURE_RATES,
    NULL_WORLD_NORMALIZATIONS,
    build_null_world,
    maestro_with,
)
from maestro_lab.sim.loop import SimConfig, run


@pytest.mark.parametrize("rates", [None, CONTROL_FAILURE_RATES], ids=["by_category", "control"])
def test_null_world_fails_the_format_at_each_categorys_rate_and_knows_no_utility(rates):
    world = build_null_world(failure_rates=rates)
    assert torch.equal(world.utility, torch.zeros(len(world.categories), len(world.types)))
    torch.manual_seed(0)
    n = 20_000
    expected = FORMAT_FAILURE_RATES if rates is None else rates
    for c, rate in enumerate(expected.values()):
        raw = world.scores(torch.randint(len(world.types), (n,)), categories=torch.full((n,), c))
        invalid = torch.isnan(raw[:, 0])
        assert abs(float(invalid.float().mean()) - rate) < 0.015
        assert torch.equal(raw[:, 1], (~invalid).float())  # fmt: 1 iff valid
        assert bool((raw[invalid, 3] == 0).all()) and bool(torch.isfinite(raw[:, [1, 2, 3, 4]]).all())


def test_a_short_null_world_run_uses_the_methods_normalisations():
    world = build_null_world()
    methods = maestro_with(NULL_WORLD_NORMALIZATIONS)
    assert [m.normalizations for m in methods] == list(NULL_WORLD_NORMALIZATIONS.values())
    result = run(methods[2], seed=0, world=world, config=SimConfig(steps=4, eval_every=2))
    assert result.action_names == [f"only_{c}" for c in world.components]
    assert result.action_joint.sum() == SimConfig.prompts_per_step * SimConfig.group_size  # the last quarter: 1 step
    assert result.curve_utility == [0.0, 0.0]


def test_the_control_fails_every_category_at_the_mean_rate():
    assert set(CONTROL_FAILURE_RATES) == set(FORMAT_FAILURE_RATES)
    mean = sum(FORMAT_FAILURE_RATES.values()) / len(FORMAT_FAILURE_RATES)
    assert all(abs(r - mean) < 1e-12 for r in CONTROL_FAILURE_RATES.values())
