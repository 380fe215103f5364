"""The per-category weight picture (paper Figure 3) from a Scalarization."""

import pytest
import torch

from maestro_lit.conductor.base import Scalarization
from maestro_lit.conductor.metrics import weight_metrics


def test_mean_weight_per_reward_overall_and_per_category():
    weights = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.8]])
    metrics = weight_metrics(
        Scalarization(weights=weights), ["ppl", "ent"], ["math", "story", "story", None], "val/conductor"
    )
    expected = {
        "val/conductor/weight/ppl": 0.425,
        "val/conductor/weight/ent": 0.575,
        "val/conductor/math/weight/ppl": 1.0,
        "val/conductor/math/weight/ent": 0.0,
        "val/conductor/story/weight/ppl": 0.25,
        "val/conductor/story/weight/ent": 0.75,
    }
    assert metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert float(metrics[key]) == pytest.approx(value), key


def test_without_categories_only_the_overall_means():
    metrics = weight_metrics(Scalarization(weights=torch.tensor([[0.3, 0.7]])), ["a", "b"], None, "conductor")
    assert sorted(metrics) == ["conductor/weight/a", "conductor/weight/b"]


def test_mismatched_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="2 columns but there are 3"):
        weight_metrics(Scalarization(weights=torch.ones(1, 2)), ["a", "b", "c"], None, "p")
    with pytest.raises(ValueError, match="1 categories for 2 weight rows"):
        weight_metrics(Scalarization(weights=torch.ones(2, 2)), ["a", "b"], ["x"], "p")
