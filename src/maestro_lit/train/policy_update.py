"""The inner loop (docs/design.md §1 step 6): μ passes of clipped-GRPO updates over one rollout.

Plain torch, no Lightning: the caller passes the optimiser, how to backpropagate (the
LightningModule passes ``manual_backward`` so precision plugins and strategies apply), how to
sum token counts across ranks (dapo's denominator) and how to score a slice of rows.

As TRL's ``GRPOTrainer`` (``tests/test_grpo_trl.py``): the minibatches are TRL's
``steps_per_generation`` chunks of one generation batch, ``accumulate_minibatches`` is TRL's
gradient accumulation over them, and dapo divides every minibatch by TRL's ``num_items_in_batch`` (the
rollout's loss tokens, counted after ``mask_truncated_completions``, averaged over ranks) rescaled to one
accumulation window: with accumulation the whole rollout's count, without it that count ÷ ``num_minibatches``.

Choices where the paper is silent:
- a non-finite loss or gradient norm skips that update (counted); ``max_consecutive_skips``
  in a row stop the run with ``DivergenceError``;
- with ``accumulate_minibatches`` the minibatch losses are weighted by their share of the
  rollout, so one step on the summed gradient equals one full-batch step (dapo already divides
  by the whole rollout's token count there);
- ``num_minibatches: auto`` takes the split from ``train.minibatch_plan`` (a measured one-row probe
  against the device's free memory); the update is the hand-set split's with that count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from maestro_lit import grpo
from maestro_lit.settings import GRPOSettings
from maestro_lit.train.minibatch_plan import MinibatchPlanner


class DivergenceError(RuntimeError):
    """Too many consecutive policy updates had a non-finite loss or gradient."""


def divergence_message(skips: int, limit: int, last_checkpoint: str | None) -> str:
    """Name the checkpoint to resume from when one exists; never claim one that does not."""
    where = (
        f"The last checkpoint written before this step is intact: {last_checkpoint}."
        if last_checkpoint
        else "No checkpoint was written in this run before the divergence."
    )
    return (
        f"{skips} consecutive policy updates had a non-finite loss or gradient "
        f"(model.grpo_settings.max_consecutive_skips={limit}); stopping. {where} "
        "Check the learning rate (model.policy_optimizer) and the sampling and reward settings."
    )


def last_checkpoint_path(trainer) -> str | None:
    """The newest checkpoint a Lightning trainer wrote (or resumed from); duck-typed, so no Lightning import."""
    for callback in getattr(trainer, "checkpoint_callbacks", []):
        path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        if path:
            return path
    return getattr(trainer, "ckpt_path", None)


def _scored(scored: torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]) -> tuple:
    """``score``'s answer as (log-probs, token entropies or None)."""
    return scored if isinstance(scored, tuple) else (scored, None)


class PolicyUpdater:
    """Runs the μ × minibatch clipped-GRPO updates and keeps the skipped-update counters."""

    def __init__(self, settings: GRPOSettings, max_new_tokens: int, planner: MinibatchPlanner | None = None) -> None:
        """``planner``: chooses the split under ``num_minibatches: auto`` (default: a ``MinibatchPlanner`` with
        the settings' ``auto_memory_fraction``)."""
        self.settings, self.max_new_tokens = settings, max_new_tokens
        self.planner = planner or MinibatchPlanner(settings.auto_memory_fraction)
        self.skipped_updates = 0  # persisted in checkpoints by the module
        self.consecutive_skips = 0

    def num_minibatches(
        self, rows: int, row_tokens: int, device: torch.device, score: Callable[[slice], torch.Tensor | tuple]
    ) -> int:
        """The set count, or under ``auto`` the planner's (its probe: one row's forward and backward, whose
        gradient the update's ``zero_grad`` clears)."""
        if self.settings.num_minibatches != "auto":
            return self.settings.num_minibatches

        def probe() -> None:
            logprobs, _ = _scored(score(slice(0, 1)))
            (logprobs.sum() * 0.0).backward()

        return self.planner.choose(rows, row_tokens, device, probe).num_minibatches

    def run(
        self,
        optimizer: torch.optim.Optimizer,
        parameters: list[torch.nn.Parameter],
        score: Callable[[slice], torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]],
        old_logprobs: torch.Tensor,
        ref_logprobs: torch.Tensor | None,
        advantages: torch.Tensor,
        completion_mask: torch.Tensor,
        fused_logprobs: torch.Tensor | None = None,
        *,
        fused_entropy: torch.Tensor | None = None,
        truncated: torch.Tensor | None = None,
        backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
        reduce_tokens: Callable[[torch.Tensor], torch.Tensor] | None = None,
        last_checkpoint: str | None = None,
        row_tokens: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Update ``parameters``; ``score(rows)`` gives the current log-probs of those rows with grad (and,
        when ``top_entropy_quantile`` < 1, their token entropies: a ``(logprobs, token_entropy)`` pair).

        ``fused_logprobs`` (and ``fused_entropy``): with μ = 1 and one minibatch, the scoring pass's own
        log-probs (with grad) are the training forward, so ``score`` is not called. ``truncated`` [N]: rows
        with no EOS, left out of the loss under ``mask_truncated_completions``. ``backward``: e.g.
        Lightning's ``manual_backward``; ``reduce_tokens``: averages dapo's token count over ranks (TRL's
        num_items_in_batch / num_processes; identity when None); ``last_checkpoint``: named by
        ``DivergenceError``; ``row_tokens``: padded tokens of the rows ``score`` runs on (default: the completion
        mask's width), which ``num_minibatches: auto`` plans for. Returns ``train/*`` metrics.
        """
        s, n = self.settings, advantages.shape[0]
        row_tokens = completion_mask.shape[1] if row_tokens is None else row_tokens
        count = self.num_minibatches(n, row_tokens, completion_mask.device, score)
        if n % count:
            raise ValueError(
                f"{n} completions per step (data.batch_size × grpo_settings.num_generations) do not split into "
                f"grpo_settings.num_minibatches={count} equal minibatches"
            )
        slices = grpo.minibatch_slices(n, count)
        loss_mask = completion_mask
        if s.mask_truncated_completions and truncated is not None:
            loss_mask = completion_mask * ~truncated.to(torch.bool).unsqueeze(-1)
        tokens = None
        if s.loss_type == "dapo":  # TRL: num_items_in_batch / num_processes × window / steps_per_generation
            tokens = loss_mask.sum().float()
            tokens = reduce_tokens(tokens) if reduce_tokens is not None else tokens
            tokens = tokens * (len(slices) if s.accumulate_minibatches else 1) / len(slices)
        sums = {"policy_loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "grad_norm": 0.0}
        updates = 0
        for _ in range(s.num_iterations):
            optimizer.zero_grad()
            finite = True
            for rows in slices:
                fused = fused_logprobs is not None
                logprobs, entropy = (fused_logprobs, fused_entropy) if fused else _scored(score(rows))
                loss, stats = grpo.clipped_policy_loss(
                    logprobs,
                    old_logprobs[rows],
                    advantages[rows],
                    loss_mask[rows],
                    s.epsilon_low,
                    s.epsilon_high,
                    s.beta,
                    None if ref_logprobs is None else ref_logprobs[rows],
                    s.loss_type,
                    self.max_new_tokens,
                    tokens,
                    s.importance_sampling_level,
                    entropy,
                    s.top_entropy_quantile,
                )
                sums["policy_loss"] += float(loss.detach())
                if s.accumulate_minibatches and s.loss_type != "dapo":
                    loss = loss * (rows.stop - rows.start) / n
                finite = finite and bool(torch.isfinite(loss))
                if finite:
                    backward(loss)
                sums["kl"] += float(stats.kl)
                sums["clip_fraction"] += float(stats.clip_fraction)
                if not s.accumulate_minibatches:
                    updates += self._step(optimizer, parameters, finite, sums, last_checkpoint)
                    optimizer.zero_grad()
                    finite = True
            if s.accumulate_minibatches:
                updates += self._step(optimizer, parameters, finite, sums, last_checkpoint)
        evaluations = s.num_iterations * len(slices)
        metrics = {f"train/{k}": torch.tensor(v / evaluations) for k, v in sums.items() if k != "grad_norm"}
        metrics["train/grad_norm"] = torch.tensor(sums["grad_norm"] / max(updates, 1))
        metrics["train/skipped_updates"] = torch.tensor(float(self.skipped_updates))
        metrics["train/lr"] = torch.tensor(optimizer.param_groups[0]["lr"])
        metrics["train/num_minibatches"] = torch.tensor(float(count))
        return metrics

    def _step(
        self, optimizer, parameters: list[torch.nn.Parameter], finite: bool, sums: dict[str, float], last_checkpoint
    ) -> int:
        """Clip and apply the accumulated gradient unless it is non-finite; returns 1 if applied."""
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(parameters, self.settings.max_grad_norm)
            if finite
            else torch.tensor(float("nan"))
        )
        if not torch.isfinite(grad_norm):
            self._skip(optimizer, last_checkpoint)
            return 0
        optimizer.step()
        self.consecutive_skips = 0
        sums["grad_norm"] += float(grad_norm)
        return 1

    def _skip(self, optimizer, last_checkpoint: str | None) -> None:
        """Drop a non-finite update; stop the run once too many come in a row."""
        optimizer.zero_grad()
        self.skipped_updates += 1
        self.consecutive_skips += 1
        limit = self.settings.max_consecutive_skips
        if self.consecutive_skips >= limit:
            raise DivergenceError(divergence_message(self.consecutive_skips, limit, last_checkpoint))
