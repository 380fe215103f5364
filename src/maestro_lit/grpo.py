"""GRPO math in plain torch: reward normalisation, group advantages, clipped loss, k3 KL.

Nothing here knows about Lightning, models or tokenizers, so every formula of
docs/design.md §1 steps 3, 5 and 6 can be checked on hand-made tensors.

Choices where the paper is silent:
- the group std is the unbiased one (``torch.std``), as TRL uses;
- a component's NaN scores are left out of its group statistics and its normalised
  value is 0 (it neither helps nor hurts that completion); under ``rank`` a missing score
  ranks last whatever the sign of its weight (a negative weight ranks the negated score);
- a completion with no score at all is left out of its group's mean and std (and of the
  batch std) and gets advantage 0, as TRL does with unscorable completions;
- ``dapo`` normalises every minibatch by a token count its caller gives (``num_batch_tokens``: TRL's
  rollout-wide count per accumulation window, ``train.policy_update``), ``bnpo`` by those in the minibatch at hand.

TRL equivalence (``tests/test_grpo_trl.py``, float64): the advantages of ``sum_then_normalize`` (TRL's order) for
``scale_rewards`` group/batch/none with unscored rows, against TRL 1.16's lines written out in the test; and,
through ``train.policy_update.PolicyUpdater`` against TRL 1.16's own ``GRPOTrainer._compute_loss`` and
``get_high_entropy_mask`` (trl is a test dependency), the loss and its gradient at every update for each
``loss_type`` × β ∈ {0, 0.04} × (ε_low, ε_high) ∈ {(0.2, 0.2), (0.1, 0.28)} × ``importance_sampling_level`` ×
``top_entropy_quantile`` ∈ {1, 0.2} × ``mask_truncated_completions`` × minibatching (fused, one, two, two
accumulated) × μ ∈ {1, 2} agree within 1e-6. ``rank`` is this project's. So is ``normalize_then_sum``'s last step:
TRL 1.16's option of that name also z-scores each component within its group, but then re-normalises the weighted
sum over the whole batch; here the sum goes through the group advantage like every scalar reward.
``sampler_importance_weights`` is TRL's vLLM importance-sampling correction (``tests/test_sampler_correction.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo")
NORMALIZATION_ORDERS = ("normalize_then_sum", "sum_then_normalize")


def _grouped(values: torch.Tensor, group_size: int) -> torch.Tensor:
    if values.shape[0] % group_size:
        raise ValueError(f"{values.shape[0]} rows do not split into groups of {group_size}")
    return values.reshape(values.shape[0] // group_size, group_size, *values.shape[1:])


def normalize_within_groups(scores: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """Z-score each column of ``scores`` [N, K] over the G completions of one prompt.

    NaN entries are masked out of mean/std and come back as 0; a group whose finite
    values all agree (zero variance) comes back as all 0.
    """
    grouped = _grouped(scores, group_size)  # [B, G, K]
    finite = torch.isfinite(grouped)
    count = finite.sum(dim=1, keepdim=True).clamp(min=1)
    filled = torch.where(finite, grouped, torch.zeros_like(grouped))
    mean = filled.sum(dim=1, keepdim=True) / count
    sq = torch.where(finite, (grouped - mean) ** 2, torch.zeros_like(grouped)).sum(dim=1, keepdim=True)
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    z = torch.where(std > 0, (filled - mean) / (std + eps), torch.zeros_like(filled))
    return torch.where(finite, z, torch.zeros_like(z)).reshape_as(scores)


def rank_within_groups(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """NOVER's within-group rank of each column of ``scores`` [N, K], higher score = better.

    Among a group's n valid (finite) entries the best gets 1 and the i-th best (0-based rank r)
    gets (n − r)/n, so values lie in (0, 1]; tied entries share their average rank; invalid
    (NaN/±inf) entries get 0, below every valid one. This is the paper's rank normalisation
    (App. C.4) for ``ppl`` and ``ent``.
    """
    grouped = _grouped(scores, group_size)  # [B, G, K]
    valid = torch.isfinite(grouped)
    mine, other = grouped.unsqueeze(2), grouped.unsqueeze(1)  # [B, i, j, K]
    both = valid.unsqueeze(2) & valid.unsqueeze(1)
    better = ((other > mine) & both).sum(dim=2).to(scores.dtype)  # strictly better others
    tied = ((other == mine) & both).sum(dim=2).to(scores.dtype)  # includes itself
    rank = better + (tied - 1) / 2
    n_valid = valid.sum(dim=1, keepdim=True).to(scores.dtype)
    ranked = (n_valid - rank) / n_valid.clamp(min=1)
    return torch.where(valid, ranked, torch.zeros_like(ranked)).reshape_as(scores)


def centre_within_groups(values: torch.Tensor, scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """``values`` [N, K] minus their group mean over the rows whose ``scores`` are finite; the other rows get 0.

    Why: a component whose normalised values do not average 0 within a group hands a one-hot Conductor's
    action on it a constant share of every advantage (rank in (0, 1] averages (n + 1)/2n), whatever the
    component measures. Centring removes that; a missing score sits at the centre, so it favours no action
    (under a null component the credit of every action is symmetric around 0).
    """
    grouped, valid = _grouped(values, group_size), torch.isfinite(_grouped(scores, group_size))
    count = valid.sum(dim=1, keepdim=True).clamp(min=1)
    filled = torch.where(valid, grouped, torch.zeros_like(grouped))
    mean = filled.sum(dim=1, keepdim=True) / count
    return torch.where(valid, filled - mean, torch.zeros_like(filled)).reshape_as(values)


COMPONENT_NORMALIZATIONS = ("rank", "zscore", "none", "rank_centered", "centered")
CENTERED_COUNTERPART = {"rank": "rank_centered", "none": "centered", "zscore": "zscore"}
"""The centred mode for each mode: z-scores are centred already; the centred modes map to themselves."""


def centered_modes(modes: Sequence[str]) -> list[str]:
    """The per-component modes with every uncentred one replaced by its centred counterpart."""
    return [CENTERED_COUNTERPART.get(mode, mode) for mode in modes]


def normalize_components(scores: torch.Tensor, group_size: int, modes: Sequence[str] | None = None) -> torch.Tensor:
    """Normalise each column of ``scores`` [N, K] within its group by its own mode.

    ``modes[m]`` is ``rank`` (:func:`rank_within_groups`), ``zscore``
    (:func:`normalize_within_groups`, the default for every column when ``modes`` is None) or
    ``none`` (raw score, NaN → 0), ``rank_centered`` (the rank minus the group's mean rank over the
    valid rows) or ``centered`` (the raw score minus the group's mean over the valid rows): see
    :func:`centre_within_groups`. Missing scores always come out as 0.
    """
    modes = ["zscore"] * scores.shape[-1] if modes is None else list(modes)
    if len(modes) != scores.shape[-1]:
        raise ValueError(f"{len(modes)} normalisation modes for {scores.shape[-1]} reward components")
    unknown = sorted(set(modes) - set(COMPONENT_NORMALIZATIONS))
    if unknown:
        raise ValueError(f"unknown reward normalisation {unknown}; choose from {COMPONENT_NORMALIZATIONS}")
    out = torch.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)
    for mode, transform in (("zscore", normalize_within_groups), ("rank", rank_within_groups)):
        columns = [m for m, chosen in enumerate(modes) if chosen == mode]
        if columns:
            out[:, columns] = transform(scores[:, columns], group_size)
    for mode, transform in (("rank_centered", rank_within_groups), ("centered", None)):
        columns = [m for m, chosen in enumerate(modes) if chosen == mode]
        if columns:
            picked = scores[:, columns]
            values = picked if transform is None else transform(picked, group_size)
            out[:, columns] = centre_within_groups(values, picked, group_size)
    return out


SCALE_REWARDS = ("group", "batch", "none")


def _sqrt(variance: torch.Tensor) -> torch.Tensor:
    """√variance with a finite gradient at 0 (a zero-variance group; the joint Conductor backpropagates through it)."""
    positive = variance > 0
    root = torch.where(positive, variance, torch.ones_like(variance)).sqrt()
    return torch.where(positive, root, torch.zeros_like(variance))


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    eps: float = 1e-4,
    scale: str = "group",
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """A = (r - mean_g r) / (std r + eps) per completion (docs/design.md §1 step 5).

    ``scale`` is TRL's ``scale_rewards``: ``group`` divides by the group's std, ``batch`` by the
    std of every reward in the batch, ``none`` only centres. Only ``valid`` rows (default: the
    finite rewards) enter the means and stds; the others get advantage 0 (TRL's unscorable
    completions). A group whose valid rewards all agree gets 0 everywhere, never NaN.
    """
    if scale not in SCALE_REWARDS:
        raise ValueError(f"unknown scale_rewards {scale!r}; choose one of {SCALE_REWARDS}")
    keep = torch.isfinite(rewards) if valid is None else valid.to(torch.bool) & torch.isfinite(rewards)
    filled = torch.where(keep, rewards, torch.zeros_like(rewards))
    grouped, mask = _grouped(filled, group_size), _grouped(keep, group_size)
    count = mask.sum(dim=1, keepdim=True)
    mean = grouped.sum(dim=1, keepdim=True) / count.clamp(min=1)
    centred = torch.where(mask, grouped - mean, torch.zeros_like(grouped))
    std = _sqrt((centred**2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1))  # one valid row: 0, no signal
    if scale == "group":
        advantages = torch.where(std > 0, centred / (std + eps), torch.zeros_like(centred))
    else:
        advantages = torch.where(std > 0, centred, torch.zeros_like(centred))
        if scale == "batch":
            n = keep.sum()
            batch_mean = filled.sum() / n.clamp(min=1)
            spread = torch.where(keep, filled - batch_mean, torch.zeros_like(filled))
            batch_std = _sqrt(spread.pow(2).sum() / (n - 1).clamp(min=1))
            advantages = advantages / (batch_std + eps)
    return torch.where(mask, advantages, torch.zeros_like(advantages)).reshape(-1)


def zero_std_group_fraction(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Share of groups whose rewards all agree: those groups teach the policy nothing."""
    grouped = _grouped(rewards, group_size)
    return (grouped.max(dim=1).values - grouped.min(dim=1).values == 0).float().mean()


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(π_θ || π_ref): exp(d) - d - 1 with d = log π_ref - log π_θ."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1


@dataclass
class LossStats:
    """Detached diagnostics of one loss evaluation."""

    clip_fraction: torch.Tensor
    kl: torch.Tensor
    ratio_mean: torch.Tensor


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    max_completion_length: int | None = None,
    num_batch_tokens: float | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss [N, T] to a scalar the way ``loss_type`` prescribes."""
    mask = mask.to(per_token.dtype)
    if loss_type == "grpo":
        per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.mean()
    if loss_type == "bnpo":
        return (per_token * mask).sum() / mask.sum().clamp(min=1)
    if loss_type == "dapo":
        denominator = mask.sum() if num_batch_tokens is None else torch.as_tensor(num_batch_tokens)
        return (per_token * mask).sum() / denominator.clamp(min=1)
    if loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("loss_type 'dr_grpo' needs max_completion_length")
        return (per_token * mask).sum() / (per_token.shape[0] * max_completion_length)
    raise ValueError(f"unknown loss_type {loss_type!r}; choose one of {LOSS_TYPES}")


IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")


def high_entropy_mask(token_entropy: torch.Tensor, mask: torch.Tensor, quantile: float) -> torch.Tensor:
    """The completion tokens [N, T] whose entropy is at least the ``quantile`` of the masked entropies.

    TRL's ``get_high_entropy_mask`` (``top_entropy_quantile`` q keeps the tokens at or above the
    (1 − q) quantile, ``torch.quantile``'s linear interpolation); padding is never kept.
    """
    mask = mask.to(torch.bool)
    present = token_entropy[mask].float()
    if present.numel() == 0:
        return torch.zeros_like(mask)
    threshold = torch.quantile(present, quantile)
    return (token_entropy * mask.to(token_entropy.dtype) >= threshold) & mask


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    beta: float = 0.0,
    ref_logprobs: torch.Tensor | None = None,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    num_batch_tokens: float | None = None,
    importance_sampling_level: str = "token",
    token_entropy: torch.Tensor | None = None,
    top_entropy_quantile: float = 1.0,
) -> tuple[torch.Tensor, LossStats]:
    """GRPO's clipped surrogate plus β·k3 KL, per token, aggregated by ``loss_type``.

    ``logprobs``/``old_logprobs``/``ref_logprobs``/``mask``/``token_entropy`` are [N, T];
    ``advantages`` is [N] and applies to every token of its completion, or [N, T] per token: an advantage times
    the sampler's importance weight (``sampler_importance_weights``; a weight w >= 0 commutes with the min, so
    −min(r·A, clip(r)·A)·w = −min(r·A·w, clip(r)·A·w), TRL's per_token_loss × importance_sampling_ratio).
    ``importance_sampling_level``: ``token`` (one ratio per token) or ``sequence`` (GSPO: one ratio
    per completion, exp of the masked mean log-ratio), as TRL's option of that name.
    ``top_entropy_quantile`` q < 1 keeps the surrogate only on the share q of tokens with the
    highest ``token_entropy`` (TRL's option; the KL term stays on every token).
    """
    if beta > 0 and ref_logprobs is None:
        raise ValueError("beta > 0 needs ref_logprobs")
    if importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
        valid = IMPORTANCE_SAMPLING_LEVELS
        raise ValueError(f"unknown importance_sampling_level {importance_sampling_level!r}; choose one of {valid}")
    log_ratio = logprobs - old_logprobs
    if importance_sampling_level == "sequence":
        m = mask.to(log_ratio.dtype)
        log_ratio = ((log_ratio * m).sum(-1) / m.sum(-1).clamp(min=1)).unsqueeze(-1)  # [N, 1]
    ratio = torch.exp(log_ratio)
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high) * adv
    per_token = (-torch.min(unclipped, clipped)).expand_as(logprobs)
    if top_entropy_quantile < 1:
        if token_entropy is None:
            raise ValueError("top_entropy_quantile < 1 needs token_entropy")
        per_token = per_token * high_entropy_mask(token_entropy, mask, 1 - top_entropy_quantile)
    kl = k3_kl(logprobs, ref_logprobs) if ref_logprobs is not None else torch.zeros_like(logprobs)
    if beta > 0:
        per_token = per_token + beta * kl
    loss = aggregate(per_token, mask, loss_type, max_completion_length, num_batch_tokens)

    with torch.no_grad():
        m = mask.to(ratio.dtype)
        n_tokens = m.sum().clamp(min=1)
        was_clipped = ((ratio < 1 - epsilon_low) & (adv < 0)) | ((ratio > 1 + epsilon_high) & (adv > 0))
        stats = LossStats(
            clip_fraction=(was_clipped.to(m.dtype) * m).sum() / n_tokens,
            kl=(kl.detach() * m).sum() / n_tokens,
            ratio_mean=(ratio.detach() * m).sum() / n_tokens,
        )
    return loss, stats


SAMPLER_CORRECTION_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def sampler_importance_weights(
    logprobs: torch.Tensor,
    sampler_logprobs: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "sequence_mask",
    clip_max: float | None = 3.0,
    clip_min: float | None = None,
) -> torch.Tensor:
    """Importance weights [N, T] of tokens drawn by an engine whose numerics differ from the training forward.

    TRL's ``vllm_importance_sampling_correction``: the log-ratio ``logprobs − sampler_logprobs`` (the scoring
    pass's log-probs over the engine's, masked, NaN → 0) per token (``token_*``) or summed over the completion
    (``sequence_*``, one ratio for all its tokens), exponentiated, then clamped to [clip_min, clip_max]
    (``*_truncate``) or set to 0 outside it (``*_mask``); ``None`` bounds are open.
    """
    if mode not in SAMPLER_CORRECTION_MODES:
        raise ValueError(f"unknown importance sampling mode {mode!r}; choose one of {SAMPLER_CORRECTION_MODES}")
    diff = torch.nan_to_num((logprobs - sampler_logprobs) * mask.to(logprobs.dtype), nan=0.0)
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode.endswith("truncate"):
        ratio = torch.clamp(ratio, min=clip_min, max=clip_max)
    else:
        low = -math.inf if clip_min is None else clip_min
        high = math.inf if clip_max is None else clip_max
        ratio = ratio.masked_fill((ratio < low) | (ratio > high), 0.0)
    return ratio.expand_as(logprobs)


def minibatch_slices(n: int, num_minibatches: int) -> list[slice]:
    """Split N rows into ``num_minibatches`` contiguous, nearly equal slices."""
    if not 1 <= num_minibatches <= n:
        raise ValueError(f"num_minibatches must be in [1, {n}], got {num_minibatches}")
    bounds = torch.linspace(0, n, num_minibatches + 1).round().long().tolist()
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def scalarize(
    raw_scores: torch.Tensor,
    weights: torch.Tensor,
    group_size: int,
    order: str = "normalize_then_sum",
    normalizations: Sequence[str] | None = None,
) -> torch.Tensor:
    """Scalar reward r = w · R̃ per completion (docs/design.md §1 steps 3–4).

    ``normalize_then_sum`` normalises each component within its group first, by its own
    mode in ``normalizations`` (``rewards.base.normalizations(components)``; None = z-score
    for all, the design's default), so no component dominates by scale;
    ``sum_then_normalize`` is TRL's order (weighted raw sum, normalised only by the
    advantage; per-component modes are ignored). Missing (NaN) scores count 0.

    A negative weight −|w| rewards the component's opposite: under ``normalize_then_sum`` it
    contributes |w| · R̃(−R), the negated score normalised, so a missing score still counts 0
    and under ``rank`` still ranks below every present one (−R̃(R) would make it the best). For
    ``zscore`` and ``none`` that is exactly −|w| · R̃(R).
    """
    if order == "normalize_then_sum":
        components = normalize_components(raw_scores, group_size, normalizations)
        if bool((weights.detach() < 0).any()):
            weights = weights.to(components.dtype).expand_as(components)
            flipped = normalize_components(-raw_scores, group_size, normalizations)
            signed = torch.where(weights < 0, -weights * flipped, weights * components)
            return signed.sum(-1)
    elif order == "sum_then_normalize":
        components = torch.nan_to_num(raw_scores, nan=0.0, posinf=0.0, neginf=0.0)
    else:
        raise ValueError(f"unknown reward normalization order {order!r}; choose one of {NORMALIZATION_ORDERS}")
    return (components * weights.to(components.dtype)).sum(-1)


def unscored_rows(raw_scores: torch.Tensor) -> torch.Tensor:
    """Completions for which every component is missing: left out of the group statistics, advantage 0."""
    return ~torch.isfinite(raw_scores).any(dim=-1)
