"""``num_minibatches: auto``: the planner's choice against a faked device, and the update it leads to."""

import pytest
import torch
import torch.nn.functional as F
from jsonargparse import Namespace

from maestro_lit.cli import ConfigError, check_step_settings
from maestro_lit.settings import GRPOSettings
from maestro_lit.train.minibatch_plan import MinibatchPlanner, rows_per_backward
from maestro_lit.train.policy_update import PolicyUpdater

N, T = 12, 5  # completions, completion tokens
CPU = torch.device("cpu")


class FakeDevice:
    """``free`` bytes free; the probe's peak is ``row_bytes``; counts probes and checks each one backpropagates."""

    def __init__(self, free: int | None, row_bytes: int) -> None:
        self.free, self.row_bytes, self.probes = free, row_bytes, 0

    def free_memory(self, device):
        return self.free

    def measure(self, probe, device):
        self.probes += 1
        probe()
        return self.row_bytes


def planner(device: FakeDevice, fraction: float = 0.8, lines: list | None = None) -> MinibatchPlanner:
    report = lines.append if lines is not None else None
    return MinibatchPlanner(fraction, free_memory=device.free_memory, measure=device.measure, report=report)


def test_rows_per_backward_is_the_largest_divisor_that_fits():
    assert rows_per_backward(12, 100, 1000) == 6  # 10 rows fit; 6 is the largest divisor of 12 up to 10
    assert rows_per_backward(12, 100, 1200) == 12
    assert rows_per_backward(12, 100, 399) == 3
    assert rows_per_backward(12, 100, 50) == 1  # not even one row fits: one row per backward, the least there is
    assert rows_per_backward(7, 100, 600) == 1  # a prime count: one row or all


def test_plan_respects_the_free_memory_and_is_logged():
    lines = []
    device = FakeDevice(free=10_000, row_bytes=1_000)
    plan = planner(device, lines=lines).choose(N, 40, CPU, probe=lambda: None)
    # 0.8 × 10 000 bytes fit 8 rows of 1 000; the largest divisor of 12 up to 8 is 6
    assert (plan.num_minibatches, plan.rows_per_backward, plan.row_bytes, plan.free_bytes) == (2, 6, 1_000, 10_000)
    assert len(lines) == 1 and "2 minibatches of 6 rows" in lines[0] and "40 tokens" in lines[0]
    more_free = planner(FakeDevice(free=20_000, row_bytes=1_000)).choose(N, 40, CPU, probe=lambda: None)
    assert more_free.num_minibatches == 1
    tighter = planner(FakeDevice(free=20_000, row_bytes=1_000), fraction=0.2).choose(N, 40, CPU, lambda: None)
    assert tighter.rows_per_backward == 4


def test_plan_is_measured_once_and_again_only_when_rows_grow():
    lines = []
    device = FakeDevice(free=10_000, row_bytes=1_000)
    chooser = planner(device, lines=lines)
    first = chooser.choose(N, 40, CPU, probe=lambda: None)
    assert chooser.choose(N, 40, CPU, lambda: None) is first and chooser.choose(N, 30, CPU, lambda: None) is first
    assert device.probes == 1 and len(lines) == 1
    device.row_bytes = 2_000  # longer rows cost more
    longer = chooser.choose(N, 80, CPU, probe=lambda: None)
    assert device.probes == 2 and len(lines) == 2 and longer.rows_per_backward == 4 and longer.row_tokens == 80


def test_without_a_memory_query_every_row_goes_in_one_backward_and_nothing_is_probed():
    device = FakeDevice(free=None, row_bytes=1_000)
    plan = planner(device).choose(N, 40, CPU, probe=lambda: None)
    assert (plan.num_minibatches, device.probes) == (1, 0)
    assert "no device memory query" in plan.describe()


def _problem():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, T)
    inputs = torch.randn(N, 4)
    mask = (torch.rand(N, T) > 0.3).long()
    mask[:, 0] = 1
    return model, inputs, mask, torch.randn(N)


def _update(settings: GRPOSettings, device: FakeDevice | None = None):
    """One accumulated update of a linear stand-in policy; returns its weights after the step and the metrics."""
    model, inputs, mask, advantages = _problem()
    scored_rows = []

    def score(rows):
        scored_rows.append(rows)
        return -F.softplus(model(inputs[rows]))

    with torch.no_grad():
        old = score(slice(None))
    updater = PolicyUpdater(settings, max_new_tokens=T, planner=planner(device) if device else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    metrics = updater.run(optimizer, list(model.parameters()), score, old, None, advantages, mask)
    return [p.detach().clone() for p in model.parameters()], metrics, scored_rows


@pytest.mark.parametrize("loss_type", ["bnpo", "grpo", "dapo"])
def test_auto_updates_exactly_as_the_hand_set_split_it_chose(loss_type):
    # bnpo normalises each minibatch by its own tokens, so its update depends on the split: the test tells splits apart
    base = dict(loss_type=loss_type, accumulate_minibatches=True, max_grad_norm=1e9)
    device = FakeDevice(free=5_000, row_bytes=1_000)  # 0.8 × 5 000 fits 4 rows: 3 minibatches of 4
    auto, metrics, scored_rows = _update(GRPOSettings(num_minibatches="auto", **base), device)
    hand, hand_metrics, _ = _update(GRPOSettings(num_minibatches=3, **base))
    assert device.probes == 1 and slice(0, 1) in scored_rows  # the probe ran one row through score
    assert metrics["train/num_minibatches"] == 3 == hand_metrics["train/num_minibatches"]
    before, *_ = _problem()
    assert not torch.allclose(hand[0], before.weight)  # the step moved the weights
    for a, h in zip(auto, hand):
        torch.testing.assert_close(a, h, rtol=0, atol=0)
    if loss_type == "bnpo":
        whole, *_ = _update(GRPOSettings(num_minibatches=1, **base))
        assert not torch.allclose(whole[0], hand[0])  # another split would have given another update


def test_auto_needs_accumulation_and_a_valid_fraction():
    with pytest.raises(ValueError, match="model.grpo_settings.num_minibatches must be a number unless accumulate"):
        GRPOSettings(num_minibatches="auto")
    with pytest.raises(ValueError, match="model.grpo_settings.auto_memory_fraction must be in"):
        GRPOSettings(num_minibatches="auto", accumulate_minibatches=True, auto_memory_fraction=0.0)


@pytest.mark.parametrize("devices, nodes", [(2, 1), ("4", 1), ([0, 1], 1), (1, 2)])
def test_auto_with_several_processes_is_refused_before_anything_loads(devices, nodes):
    config = Namespace(
        trainer=Namespace(devices=devices, num_nodes=nodes, max_steps=10),
        data=Namespace(batch_size=4),
        model=Namespace(grpo_settings=Namespace(num_generations=8, num_minibatches="auto")),
    )
    with pytest.raises(ConfigError, match="num_minibatches=auto plans for one device"):
        check_step_settings(config)
    config.trainer.devices, config.trainer.num_nodes = 1, 1
    check_step_settings(config)  # one device: fine
