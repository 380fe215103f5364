"""The inner loop as a plain-torch unit: no Lightning, a tiny nn.Module standing in for the policy."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from maestro_lit.settings import GRPOSettings
from maestro_lit.train.policy_update import DivergenceError, PolicyUpdater, divergence_message, last_checkpoint_path

N, T = 6, 5  # completions, completion tokens


class CountingSGD(torch.optim.SGD):
    def __init__(self, params, lr=0.1):
        super().__init__(params, lr=lr)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        return super().step(closure)


def _problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, T)
    inputs = torch.randn(N, 4)
    mask = (torch.rand(N, T) > 0.3).long()
    mask[:, 0] = 1
    advantages = torch.randn(N)
    return model, inputs, mask, advantages


def _run(settings, model, inputs, mask, advantages, nan=False, **run_kwargs):
    def score(rows):
        logprobs = -F.softplus(model(inputs[rows]))
        return logprobs * float("nan") if nan else logprobs

    with torch.no_grad():
        old = score(slice(None))
    updater = PolicyUpdater(settings, max_new_tokens=T)
    optimizer = CountingSGD(model.parameters())
    metrics = updater.run(optimizer, list(model.parameters()), score, old, None, advantages, mask, **run_kwargs)
    return updater, optimizer, metrics


def test_mu_times_minibatches_steps_or_mu_steps_when_accumulating():
    problem = _problem()
    _, optimizer, metrics = _run(GRPOSettings(num_iterations=2, num_minibatches=3), *problem)
    assert optimizer.steps == 6
    assert torch.isfinite(metrics["train/policy_loss"]) and metrics["train/skipped_updates"] == 0
    _, optimizer, _ = _run(GRPOSettings(num_iterations=2, num_minibatches=3, accumulate_minibatches=True), *_problem())
    assert optimizer.steps == 2


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_accumulated_minibatches_step_like_one_full_batch(loss_type):
    full_model, *rest = _problem()
    _run(GRPOSettings(num_minibatches=1, loss_type=loss_type, max_grad_norm=1e9), full_model, *rest)
    accumulated_model, *rest = _problem()
    _run(
        GRPOSettings(num_minibatches=3, accumulate_minibatches=True, loss_type=loss_type, max_grad_norm=1e9),
        accumulated_model,
        *rest,
    )
    before, *_ = _problem()
    assert not torch.allclose(full_model.weight, before.weight)  # the step moved the weights
    for full, accumulated in zip(full_model.parameters(), accumulated_model.parameters()):
        torch.testing.assert_close(full, accumulated)


def test_non_finite_loss_is_skipped_and_counted():
    model, *rest = _problem()
    before = [p.detach().clone() for p in model.parameters()]
    updater, optimizer, metrics = _run(GRPOSettings(num_minibatches=2, max_consecutive_skips=5), model, *rest, nan=True)
    assert optimizer.steps == 0 and updater.skipped_updates == 2 and metrics["train/skipped_updates"] == 2
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_divergence_error_after_n_consecutive_skips_names_no_checkpoint_when_none_exists():
    with pytest.raises(DivergenceError, match="3 consecutive policy updates") as info:
        _run(GRPOSettings(num_minibatches=3, max_consecutive_skips=3), *_problem(), nan=True)
    assert "No checkpoint was written" in str(info.value) and "intact" not in str(info.value)
    with pytest.raises(DivergenceError, match="intact: runs/x/last.ckpt"):
        _run(
            GRPOSettings(num_minibatches=3, max_consecutive_skips=3),
            *_problem(),
            nan=True,
            last_checkpoint="runs/x/last.ckpt",
        )


def test_divergence_message_and_last_checkpoint_lookup():
    assert "intact: a.ckpt" in divergence_message(2, 2, "a.ckpt")
    assert "intact" not in divergence_message(2, 2, None)

    class Checkpoint:
        last_model_path, best_model_path = "", ""

    class Trainer:
        checkpoint_callbacks = [Checkpoint()]
        ckpt_path = None

    assert last_checkpoint_path(Trainer()) is None
    Trainer.ckpt_path = "resumed.ckpt"
    assert last_checkpoint_path(Trainer()) == "resumed.ckpt"  # resumed from it: it exists
    Checkpoint.best_model_path = "step2.ckpt"
    assert last_checkpoint_path(Trainer()) == "step2.ckpt"


def test_unit_does_not_import_lightning():
    code = (
        "import sys, maestro_lit.train.policy_update; "
        "print(any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_backward_and_token_reducer_are_injected():
    calls = []

    def backward(loss):
        calls.append("backward")
        loss.backward()

    def reduce_tokens(tokens):
        calls.append("reduce")
        return tokens * 2  # as if a second rank held as many tokens

    model, *rest = _problem()
    _, optimizer, _ = _run(GRPOSettings(loss_type="dapo"), model, *rest, backward=backward, reduce_tokens=reduce_tokens)
    assert calls == ["reduce", "backward"] and optimizer.steps == 1


def _minibatch_losses(settings, truncated=None):
    """The loss each update backpropagates, on the same problem, the weights held still (lr 0)."""
    model, inputs, mask, advantages = _problem()
    losses = []

    def backward(loss):
        losses.append(float(loss.detach()))
        loss.backward()

    def score(rows):
        return -F.softplus(model(inputs[rows]))

    with torch.no_grad():
        old = score(slice(None))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    extra = {} if truncated is None else {"truncated": truncated}
    PolicyUpdater(settings, max_new_tokens=T).run(
        optimizer, list(model.parameters()), score, old, None, advantages, mask, backward=backward, **extra
    )
    return losses, old, advantages, mask


def test_dapo_divides_each_minibatch_by_the_rollouts_tokens_per_update():
    """TRL 1.16: num_items_in_batch (the rollout's tokens) scaled to one accumulation window, the same for every
    minibatch: without accumulation each minibatch is one update (the count ÷ 2 here), with it the two are one."""
    losses, old, advantages, mask = _minibatch_losses(GRPOSettings(loss_type="dapo", num_minibatches=2))
    assert mask[:3].sum() != mask[3:].sum()  # so this is not bnpo's per-minibatch count in disguise
    per_token = -advantages.unsqueeze(-1) * torch.ones_like(old)  # ratio 1 (lr 0): −A on every token
    expected = [float((per_token[rows] * mask[rows]).sum() / (mask.sum() / 2)) for rows in (slice(0, 3), slice(3, 6))]
    assert losses == pytest.approx(expected, abs=1e-6)
    accumulated, *_ = _minibatch_losses(GRPOSettings(loss_type="dapo", num_minibatches=2, accumulate_minibatches=True))
    assert accumulated == pytest.approx([loss / 2 for loss in losses], abs=1e-7)  # over the whole count


def test_truncated_completions_leave_the_loss_and_dapos_token_count():
    truncated = torch.tensor([True, False, False, False, False, True])
    base = {"loss_type": "dapo", "num_minibatches": 1}
    masked, old, advantages, mask = _minibatch_losses(GRPOSettings(**base, mask_truncated_completions=True), truncated)
    keep = mask * ~truncated.unsqueeze(-1)
    assert keep.sum() < mask.sum()
    assert masked == pytest.approx([float((-advantages.unsqueeze(-1) * keep).sum() / keep.sum())], abs=1e-6)
    kept, *_ = _minibatch_losses(GRPOSettings(**base), truncated)  # off (the default): truncated rows train
    assert kept == pytest.approx([float((-advantages.unsqueeze(-1) * mask).sum() / mask.sum())], abs=1e-6)


def test_score_may_return_token_entropies_for_top_entropy_quantile():
    model, inputs, mask, advantages = _problem()
    entropy = torch.rand(N, T)

    def score(rows):
        return -F.softplus(model(inputs[rows])), entropy[rows]

    with torch.no_grad():
        old = score(slice(None))[0]
    settings = GRPOSettings(top_entropy_quantile=0.5, num_minibatches=2)
    parameters = list(model.parameters())
    metrics = PolicyUpdater(settings, T).run(CountingSGD(parameters), parameters, score, old, None, advantages, mask)
    assert torch.isfinite(metrics["train/policy_loss"])
    with pytest.raises(ValueError, match="needs token_entropy"):
        _run(settings, *_problem())  # a score without entropies
