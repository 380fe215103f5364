"""The importance-sampling correction of engines with their own numerics against TRL 1.16.

The ratio is computed inside TRL's ``_generate_and_score_completions``, which needs a whole trainer, so it is
written out below from ``trl/trainer/grpo_trainer.py`` 1.16.0: ``importance_sampling_ratio`` from
``old_per_token_logps − sampling_per_token_logps`` (masked, NaN → 0; summed over the completion for
``sequence_*``), then clamped (``*_truncate``) or zeroed outside [C_min, C_max] (``*_mask``). The loss that
uses it is TRL's own ``_compute_loss`` (``trl_reference``), which multiplies ``per_token_loss`` by it before
adding β·KL.
"""

from __future__ import annotations

import math

import pytest
import torch
import trl_reference

from maestro_lit import grpo
from maestro_lit.settings import RolloutSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def trl_importance_sampling_ratio(old, sampling, mask, mode, clip_max, clip_min):
    diff = torch.nan_to_num((old - sampling) * mask, nan=0.0)
    if mode in ["sequence_mask", "sequence_truncate"]:
        diff = diff.sum(dim=-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode in ["sequence_truncate", "token_truncate"]:
        return torch.clamp(ratio, min=clip_min, max=clip_max)
    low = clip_min if clip_min is not None else -math.inf
    high = clip_max if clip_max is not None else math.inf
    return ratio.masked_fill((ratio < low) | (ratio > high), value=0.0)


def _hand_made():
    """Scoring-pass and engine log-probs [4, 5] where ratios fall below, inside and above [0.5, 3], a NaN."""
    old = torch.tensor(
        [
            [-0.5, -1.0, -2.0, -0.1, -3.0],
            [-1.2, -0.3, -0.7, -2.2, -0.4],
            [-0.9, -0.9, -0.9, -0.9, -0.9],
            [-2.5, -0.2, -1.1, -0.6, -1.6],
        ],
        dtype=torch.float64,
    )
    shift = torch.tensor(
        [
            [0.1, -0.2, 0.05, 0.0, 0.3],
            [1.5, 0.2, -0.1, 0.0, 0.0],  # a token with ratio e^1.5 > 3
            [-0.9, 0.0, 0.0, 0.0, 0.0],  # ratio e^-0.9 < 0.5
            [0.2, 0.3, 0.4, 0.5, 0.6],  # sums past log 3 over the completion
        ],
        dtype=torch.float64,
    )
    sampling = old - shift
    sampling[0, 2] = float("nan")  # a token whose engine log-prob is missing: ratio 1, as in TRL
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float64)
    return old, sampling, mask


@pytest.mark.parametrize("mode", grpo.SAMPLER_CORRECTION_MODES)
@pytest.mark.parametrize("clip_max, clip_min", [(3.0, None), (2.0, 0.5), (None, 0.5)])
def test_weights_equal_trls_importance_sampling_ratio(mode, clip_max, clip_min):
    old, sampling, mask = _hand_made()
    ours = grpo.sampler_importance_weights(old, sampling, mask, mode, clip_max, clip_min)
    trl = trl_importance_sampling_ratio(old, sampling, mask, mode, clip_max, clip_min).expand_as(old)
    torch.testing.assert_close(ours, trl, rtol=0, atol=1e-12)
    assert not torch.isnan(ours).any()
    bounded = clip_max is not None or clip_min is not None
    assert bounded and not torch.allclose(ours * mask, torch.exp(torch.nan_to_num(old - sampling)) * mask)


def test_defaults_are_trls():
    settings = RolloutSettings()
    assert settings.importance_sampling_correction is True
    assert settings.importance_sampling_mode == "sequence_mask"  # TRL 1.16's vllm_importance_sampling_mode
    assert settings.importance_sampling_clip_max == 3.0 and settings.importance_sampling_clip_min is None
    with pytest.raises(ValueError, match="model.rollout.importance_sampling_mode"):
        RolloutSettings(importance_sampling_mode="truncate")


@pytest.mark.parametrize("mode", ["token_truncate", "sequence_mask"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_weighted_advantages_give_trls_loss_and_gradient(mode, beta):
    """Our loss path takes the weights as per-token advantages A·w; TRL multiplies the per-token loss by them."""
    old, sampling, mask = _hand_made()
    advantages = torch.tensor([0.7, -1.1, 0.4, -0.2], dtype=torch.float64)
    ref = old - 0.3
    weights = grpo.sampler_importance_weights(old, sampling, mask, mode, 3.0, None)
    moved = old + torch.linspace(-0.4, 0.4, old.numel(), dtype=torch.float64).view_as(old)  # ratios leave [0.8, 1.2]
    ours_in = moved.clone().requires_grad_(True)
    ours, _ = grpo.clipped_policy_loss(
        ours_in, old, advantages.unsqueeze(-1) * weights, mask, beta=beta, ref_logprobs=ref
    )
    trl_in = moved.clone().requires_grad_(True)
    trl = trl_reference.compute_loss(
        trl_in,
        torch.zeros_like(old),
        old,
        ref,
        advantages,
        mask,
        mask.sum(),
        beta=beta,
        epsilon_low=0.2,
        epsilon_high=0.2,
        loss_type="grpo",
        importance_sampling_level="token",
        top_entropy_quantile=1.0,
        max_completion_length=old.shape[1],
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        importance_sampling_ratio=trl_importance_sampling_ratio(old, sampling, mask, mode, 3.0, None),
    )
    ours.backward()
    trl.backward()
    torch.testing.assert_close(ours, trl, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours_in.grad, trl_in.grad, rtol=0, atol=1e-12)
    unweighted, _ = grpo.clipped_policy_loss(moved, old, advantages, mask, beta=beta, ref_logprobs=ref)
    assert not torch.isclose(unweighted, ours)  # the weights did change the loss
