"""The GRPO options wired through one real training step on the tiny model."""

import pytest
import torch
from test_module import _fit_one_step

from maestro_lit.rewards.base import RewardComponent

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny model: one thread avoids OpenMP spin-waits

G = 3


class _CharsButFirst(RewardComponent):
    """Characters per completion; the first completion of every group has no score (NaN)."""

    def __init__(self, name):
        self.name = name

    def __call__(self, prompts, completions, **columns):
        scores = torch.tensor([float(len(c)) for c in completions])
        scores[::G] = float("nan")
        return scores


def _spy_on_updates(module):
    seen = {}
    run = module.updater.run

    def spy(*args, **kwargs):
        seen.update(kwargs, fused_logprobs=args[7] if len(args) > 7 else None)
        return run(*args, **kwargs)

    module.updater.run = spy
    return seen


@pytest.mark.parametrize(
    "options",
    [
        {},  # the defaults
        {"top_entropy_quantile": 0.5},  # μ = 1, one minibatch: the scoring pass is the training forward
        {
            "top_entropy_quantile": 0.5,
            "num_minibatches": 2,
            "scale_rewards": "none",
            "mask_truncated_completions": True,
            "importance_sampling_level": "sequence",
        },
    ],
)
def test_unscored_completions_leave_the_group_baseline_and_the_options_reach_the_update(make_module, options):
    torch.manual_seed(0)
    module = make_module(rewards=[_CharsButFirst("a"), _CharsButFirst("b")], grpo=options)
    seen = _spy_on_updates(module)
    _fit_one_step(module)
    step = module.last_step
    scalar = step.scalar_rewards.reshape(-1, G)[:, 1:]  # the two scored completions of each group
    centred = scalar - scalar.mean(dim=1, keepdim=True)
    if options.get("scale_rewards", "group") == "group":
        centred = centred / (scalar.std(dim=1, keepdim=True) + 1e-4)
    expected = torch.cat([torch.zeros(scalar.shape[0], 1), centred], dim=1).reshape(-1)
    torch.testing.assert_close(step.advantages, expected)  # the unscored row neither counts nor moves the others
    assert (step.advantages[::G] == 0).all()
    fused = options.get("num_minibatches", 1) == 1
    assert (seen["fused_logprobs"] is not None) == fused
    masked = options.get("top_entropy_quantile", 1.0) < 1
    assert (seen["fused_entropy"] is not None) == (fused and masked)  # the scoring pass computed what the mask needs
    assert seen["truncated"].dtype == torch.bool and seen["truncated"].shape == (step.advantages.shape[0],)
