"""Ours against TRL's GRPO on the same tensors: advantages, and the loss and its gradient at every update.

The loss side is TRL 1.16's own code: ``GRPOTrainer._compute_loss`` and ``get_high_entropy_mask``, called on the
test's tensors through ``trl_reference`` (trl is a test dependency, pinned). The rest of TRL's step is written out
here from ``trl/trainer/grpo_trainer.py`` 1.16.0, kept to what the comparison needs:

- advantages: ``_generate_and_score_completions`` (``sum_then_normalize``: unscorable rows, every reward
  NaN, become NaN; ``nanmean``/``nanstd`` per group, ``nanstd`` over the batch for ``scale_rewards="batch"``;
  ``(r − mean) / (std + 1e-4)`` unless ``"none"``; NaN advantages → 0), with TRL's own ``nanstd``;
- ``num_items_in_batch``: the generation batch's loss tokens, counted after ``mask_truncated_completions``
  zeroes the truncated rows of ``completion_mask`` (``_generate_and_score_completions``);
- the schedule: the generation batch split into ``steps_per_generation`` chunks (TRL shuffles the rows first;
  here they stay in order so both sides see the same minibatches), each reused ``num_iterations`` times, an
  optimiser step every ``gradient_accumulation_steps`` chunks. Our ``num_minibatches`` is
  ``steps_per_generation``; ``accumulate_minibatches`` is ``gradient_accumulation_steps = steps_per_generation``
  (off: 1).
"""

from __future__ import annotations

import itertools

import pytest
import torch
import trl_reference
from trl.trainer.utils import nanstd as trl_nanstd

from maestro_lit import grpo
from maestro_lit.settings import GRPOSettings
from maestro_lit.train.policy_update import PolicyUpdater

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread avoids OpenMP spin-waits

N, T, V, H = 8, 5, 6, 3  # completions, completion tokens, vocabulary, features
MAX_COMPLETION_LENGTH = 7  # dr_grpo's constant (TRL's max_completion_length, our max_new_tokens)
TOLERANCE = 1e-6
SEED = 1  # its two halves hold 14 and 11 completion tokens: a per-minibatch count cannot pass for dapo's

# ---------------------------------------------------------------------------------------------------------------
# TRL's advantages, written out
# ---------------------------------------------------------------------------------------------------------------


def trl_advantages(rewards_per_func: torch.Tensor, weights: torch.Tensor, G: int, scale_rewards: str) -> torch.Tensor:
    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
    rewards[unscorable] = torch.nan
    mean = torch.nanmean(rewards.view(-1, G), dim=1).repeat_interleave(G)
    if scale_rewards == "batch":
        std = trl_nanstd(rewards).expand_as(rewards)
    else:
        std = trl_nanstd(rewards.view(-1, G), dim=1).repeat_interleave(G)
    advantages = rewards - mean
    if scale_rewards != "none":
        advantages = advantages / (std + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0)


# ---------------------------------------------------------------------------------------------------------------
# One problem, both trainers
# ---------------------------------------------------------------------------------------------------------------


class TinyPolicy(torch.nn.Module):
    """Per-position logits from row features: log-probs of fixed tokens with grad, entropies without."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.features = torch.randn(N, H, generator=generator, dtype=torch.float64)
        self.tokens = torch.randint(0, V, (N, T), generator=generator)
        self.head = torch.nn.Linear(H, T * V, dtype=torch.float64)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(T * V, H, generator=generator, dtype=torch.float64))
            self.head.bias.copy_(torch.randn(T * V, generator=generator, dtype=torch.float64))

    def forward(self, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        logp = torch.log_softmax(self.head(self.features[rows]).view(-1, T, V), dim=-1)
        logprobs = logp.gather(-1, self.tokens[rows].unsqueeze(-1)).squeeze(-1)
        return logprobs, -(logp.exp() * logp).sum(-1).detach()


def _problem(seed: int = SEED):
    generator = torch.Generator().manual_seed(seed + 100)
    lengths = torch.randint(1, T + 1, (N,), generator=generator)
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).long()
    truncated = torch.zeros(N, dtype=torch.bool)
    truncated[[1, 6]] = True  # no EOS within the budget
    mask[truncated] = 1
    advantages = torch.randn(N, generator=generator, dtype=torch.float64)
    ref_offset = 0.3 * torch.randn(N, T, generator=generator, dtype=torch.float64)  # reference = old log-probs + this
    return mask, truncated, advantages, ref_offset


def _recorder(parameters, record):
    """Backpropagate and record the loss and the gradient accumulated so far (both sides accumulate alike)."""

    def backward(loss):
        loss.backward()
        record.append((loss.detach().clone(), [p.grad.detach().clone() for p in parameters]))

    return backward


def run_ours(settings: GRPOSettings, fused: bool, seed: int = SEED, lr: float = 0.2):
    mask, truncated, advantages, ref_offset = _problem(seed)
    policy = TinyPolicy(seed)
    with torch.no_grad():
        old, _ = policy(slice(None))
    ref = old + ref_offset
    parameters = list(policy.parameters())
    record: list = []
    fused_logprobs, fused_entropy = policy(slice(None)) if fused else (None, None)
    PolicyUpdater(settings, MAX_COMPLETION_LENGTH).run(
        torch.optim.SGD(parameters, lr=lr),
        parameters,
        policy,
        old,
        ref if settings.beta > 0 else None,
        advantages,
        mask,
        fused_logprobs,
        fused_entropy=fused_entropy,
        truncated=truncated,
        backward=_recorder(parameters, record),
    )
    return record, [p.detach().clone() for p in parameters]


def run_trl(settings: GRPOSettings, seed: int = SEED):
    mask, truncated, advantages, ref_offset = _problem(seed)
    policy = TinyPolicy(seed)
    with torch.no_grad():
        old, _ = policy(slice(None))
    ref = old + ref_offset
    parameters = list(policy.parameters())
    optimizer = torch.optim.SGD(parameters, lr=0.2)
    if settings.mask_truncated_completions:
        mask = mask * (~truncated).unsqueeze(1).int()
    num_items_in_batch = mask.sum()  # counted after truncated rows are masked
    steps_per_generation = settings.num_minibatches
    accumulation = steps_per_generation if settings.accumulate_minibatches else 1
    chunk = N // steps_per_generation
    record: list = []
    backward = _recorder(parameters, record)
    for step in range(steps_per_generation * settings.num_iterations):
        rows = slice((step % steps_per_generation) * chunk, (step % steps_per_generation + 1) * chunk)
        logps, entropies = policy(rows)
        loss = trl_reference.compute_loss(
            logps,
            entropies,
            old[rows],
            ref[rows],
            advantages[rows],
            mask[rows],
            num_items_in_batch,
            beta=settings.beta,
            epsilon_low=settings.epsilon_low,
            epsilon_high=settings.epsilon_high,
            loss_type=settings.loss_type,
            importance_sampling_level=settings.importance_sampling_level,
            top_entropy_quantile=settings.top_entropy_quantile,
            max_completion_length=MAX_COMPLETION_LENGTH,
            gradient_accumulation_steps=accumulation,
            steps_per_generation=steps_per_generation,
        )
        backward(loss)
        if (step + 1) % accumulation == 0:
            optimizer.step()
            optimizer.zero_grad()
    return record, [p.detach().clone() for p in parameters]


# (num_minibatches, accumulate_minibatches, num_iterations, fused): the fused pass (μ = 1, one minibatch: the
# scoring pass's log-probs are the training forward); then μ = 2 with one minibatch, two minibatches with a step
# each, and two accumulated into one step. The first pass of a μ = 2 run is the μ = 1 run of that schedule.
SCHEDULES = [(1, False, 1, True), (1, False, 2, False), (2, False, 2, False), (2, True, 2, False)]
BETAS, EPSILONS = (0.0, 0.04), ((0.2, 0.2), (0.1, 0.28))


def differences(loss_type, level, quantile, mask_truncated):
    """Max |Δloss|, |Δgrad| and |Δparameters| between ours and TRL over β × ε × schedule, and the count of updates."""
    worst = {"loss": 0.0, "grad": 0.0, "params": 0.0, "evaluations": 0}
    for beta, (low, high), (minibatches, accumulate, mu, fused) in itertools.product(BETAS, EPSILONS, SCHEDULES):
        settings = GRPOSettings(
            loss_type=loss_type,
            beta=beta,
            epsilon_low=low,
            epsilon_high=high,
            num_minibatches=minibatches,
            accumulate_minibatches=accumulate,
            num_iterations=mu,
            importance_sampling_level=level,
            top_entropy_quantile=quantile,
            mask_truncated_completions=mask_truncated,
            max_grad_norm=1e9,
        )
        ours, our_params = run_ours(settings, fused)
        trl, trl_params = run_trl(settings)
        assert len(ours) == len(trl) == minibatches * mu
        for (our_loss, our_grads), (trl_loss, trl_grads) in zip(ours, trl):
            worst["loss"] = max(worst["loss"], float((our_loss - trl_loss).abs()))
            worst["grad"] = max(worst["grad"], max(float((a - b).abs().max()) for a, b in zip(our_grads, trl_grads)))
        worst["params"] = max(worst["params"], max(float((a - b).abs().max()) for a, b in zip(our_params, trl_params)))
        worst["evaluations"] += len(ours)
    return worst


@pytest.mark.parametrize("mask_truncated", [False, True])
@pytest.mark.parametrize("quantile", [1.0, 0.2])
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo"])
def test_loss_and_gradient_equal_trls(loss_type, level, quantile, mask_truncated):
    worst = differences(loss_type, level, quantile, mask_truncated)
    assert worst["loss"] <= TOLERANCE and worst["grad"] <= TOLERANCE and worst["params"] <= TOLERANCE, worst


def test_the_options_change_the_loss():
    """The comparison is not vacuous: each option changes the loss or gradient on these tensors."""
    base = dict(num_minibatches=2, beta=0.04, loss_type="dapo", num_iterations=2)
    reference, _ = run_ours(GRPOSettings(**base), fused=False)
    options = [
        {"importance_sampling_level": "sequence"},
        {"top_entropy_quantile": 0.2},
        {"mask_truncated_completions": True},
        {"accumulate_minibatches": True},
        {"epsilon_low": 0.1, "epsilon_high": 0.28},
    ]
    for option in options:
        changed, _ = run_ours(GRPOSettings(**base, **option), fused=False)
        assert any(not torch.allclose(a[1][0], b[1][0]) for a, b in zip(reference, changed)), option


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_equal_trls_with_unscored_rows(scale):
    generator = torch.Generator().manual_seed(3)
    raw = torch.randn(12, 3, generator=generator, dtype=torch.float64)
    raw[torch.rand(12, 3, generator=generator) < 0.25] = float("nan")  # missing scores
    raw[[2, 7]] = float("nan")  # two completions with no score at all
    raw[8:12, 0] = 2.5  # a group whose scores agree on one component
    weights = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    scalar = grpo.scalarize(raw, weights, 4, "sum_then_normalize")
    ours = grpo.group_advantages(scalar, 4, scale=scale, valid=~grpo.unscored_rows(raw))
    torch.testing.assert_close(ours, trl_advantages(raw, weights, 4, scale), atol=TOLERANCE, rtol=0)
    assert ours[[2, 7]].tolist() == [0.0, 0.0]


def test_high_entropy_mask_is_trls():
    generator = torch.Generator().manual_seed(5)
    entropies, mask = torch.rand(6, 9, generator=generator), (torch.rand(6, 9, generator=generator) > 0.3).long()
    for quantile in (0.0, 0.2, 0.5, 0.8, 1.0):
        ours = grpo.high_entropy_mask(entropies, mask, quantile)
        assert torch.equal(ours, trl_reference.high_entropy_mask(entropies, mask, quantile))
    assert not grpo.high_entropy_mask(entropies, torch.zeros_like(mask), 0.5).any()


def test_the_reference_is_the_pinned_trl():
    import trl

    assert trl.__version__ == trl_reference.TRL_VERSION
