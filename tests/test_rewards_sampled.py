"""SampledReward: the inner component scores exactly the configured share of groups, whole groups, NaN elsewhere."""

import pytest
import torch

from maestro_lit.rewards.base import RewardComponent, RewardInputs, score_components
from maestro_lit.rewards.sampled import SampledReward


class WordCount(RewardComponent):
    name = "words"

    def __init__(self):
        self.seen: list[list[str]] = []

    def __call__(self, prompts, completions, **kwargs):
        assert len(prompts) == len(completions) == len(kwargs["reference"])
        self.seen.append(list(completions))
        return [float(len(c.split())) for c in completions]


def batch(step: int, groups: int = 4, group_size: int = 3) -> RewardInputs:
    n = groups * group_size
    completions = [f"s{step} " + "w " * i for i in range(n)]
    return RewardInputs(
        prompts=[f"p{i // group_size}" for i in range(n)],
        completions=completions,
        completion_ids=[[1]] * n,
        columns={"reference": ["r"] * n},
        group_size=group_size,
    )


@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.5, 1.0])
def test_exactly_the_fraction_of_groups_is_scored_and_the_rest_masked(fraction):
    inner = WordCount()
    sampled = SampledReward(inner, fraction=fraction, seed=3)
    steps, groups, g = 20, 4, 3
    labelled = 0
    for step in range(steps):
        b = batch(step, groups, g)
        scores = score_components([sampled], b)[:, 0]
        per_group = torch.isfinite(scores).reshape(groups, g)
        assert bool((per_group.all(1) | ~per_group.any(1)).all())  # whole groups only
        labelled += int(per_group.all(1).sum())
        expected = torch.tensor([float(len(c.split())) for c in b.completions])
        finite = torch.isfinite(scores)
        assert torch.equal(scores[finite], expected[finite])  # the inner's score lands on its own row
    assert labelled == round(fraction * steps * groups)
    assert sampled.scored_rows == labelled * g == sum(len(s) for s in inner.seen)  # the inner sees only those rows
    assert sampled.scored_fraction == fraction  # what the missing-score warning allows for


def labelled_rows(sampled: SampledReward, steps) -> list[list[bool]]:
    return [torch.isfinite(score_components([sampled], batch(step))[:, 0]).tolist() for step in steps]


def test_a_restored_state_labels_the_groups_an_uninterrupted_run_would():
    def build():
        return SampledReward(WordCount(), fraction=0.3, seed=3)

    straight, stopped, resumed, fresh = build(), build(), build(), build()
    labelled_rows(straight, range(5))
    labelled_rows(stopped, range(5))
    resumed.load_state_dict(stopped.state_dict())
    expected = labelled_rows(straight, range(5, 12))
    assert labelled_rows(resumed, range(5, 12)) == expected
    assert resumed.cost() == straight.cost() == {"scored_rows": float(straight.scored_rows), "calls": straight.calls}
    assert straight.calls == 12  # one inner call per step that labels a group (0.3 × 4 groups: every step here)
    assert labelled_rows(fresh, range(5, 12)) != expected  # the same seed without the state starts over


def test_fraction_out_of_range_is_refused():
    with pytest.raises(ValueError, match="fraction"):
        SampledReward(WordCount(), fraction=0.0)


def test_the_module_warns_about_a_sampled_component_only_below_a_tenth_of_its_share(make_module):
    from maestro_lit.rewards.diversity import DistinctN
    from maestro_lit.rewards.length import LengthBand

    module = make_module(rewards=[LengthBand(), SampledReward(DistinctN(), fraction=0.1, name="judge")])
    assert module.missing_scores.warn_above == pytest.approx([0.9, 0.99])
