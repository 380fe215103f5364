"""The MAESTRO LightningModule: one GRPO step with a Conductor, in the order of DESIGN §1.

Manual optimisation with two optimisers: the policy's LoRA parameters (inner loop) and
the scalariser's parameters (outer step; absent for the static and single baselines).

Choices where the paper is silent:
- the Conductor optimiser is stepped without Lightning's optimiser wrapper, so
  ``trainer.global_step`` counts policy updates only (μ × num_minibatches per step);
- with μ = 1 and one minibatch the scoring pass *is* the training forward (old
  log-probs = current ones detached), so each step runs a single forward with grad;
- ``train/policy_entropy`` is the Monte-Carlo estimate −mean log π(sampled token);
- a non-finite loss or gradient norm skips that policy update (``train/skipped_updates``).
- the full set of step metrics goes through ``self.log`` only on steps a logger writes
  (``log_every_n_steps``); in between, only the reward means, scalar reward and completion
  length do, because Lightning's per-key bookkeeping was ~10 % of a tiny-model step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from maestro_lit import grpo
from maestro_lit.conductor import Conductor, Scalarization, Scalarizer
from maestro_lit.data import POSITION_KEY
from maestro_lit.fast_rollout import FastRolloutSettings, fast_generate
from maestro_lit.policy import ModelSettings, Policy
from maestro_lit.rewards.base import RewardComponent, RewardError, as_score_tensor
from maestro_lit.rewards.diversity import DistinctN
from maestro_lit.rewards.length import LengthBand
from maestro_lit.rng import restore_rng_states, rng_states
from maestro_lit.rollout import Rollout, SamplingSettings, generate, tokenize_prompts
from maestro_lit.settings import GRPOSettings
from maestro_lit.step_logging import (
    completion_table,
    keep_for_this_step,
    logger_writes_this_step,
    reduce_over_ranks,
    reward_metrics,
    scalarizer_metrics,
)
from maestro_lit.timing import PhaseTimer

__all__ = ["DivergenceError", "GRPOSettings", "MaestroModule"]  # GRPOSettings re-exported: configs and tests import it here


def _user_turn(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


class DivergenceError(RuntimeError):
    """Too many consecutive policy updates had a non-finite loss or gradient."""


class MaestroModule(L.LightningModule):
    """LoRA policy + scalariser trained with GRPO; the scalariser picks the reward weights."""

    def __init__(
        self,
        policy: ModelSettings = ModelSettings(),
        rewards: list[RewardComponent] | None = None,
        scalarizer: Scalarizer | None = None,
        sampling: SamplingSettings = SamplingSettings(),
        grpo_settings: GRPOSettings = GRPOSettings(),
        policy_optimizer: OptimizerCallable = torch.optim.AdamW,
        conductor_optimizer: OptimizerCallable = torch.optim.Adam,
        policy_lr_scheduler: LRSchedulerCallable | None = None,
        val_max_new_tokens: int | None = None,
        log_completions_every_n_steps: int = 10,
        on_reward_error: Literal["raise", "skip"] = "raise",
        generation_batch_size: int = 64,
        fast_rollout: FastRolloutSettings | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.strict_loading = False  # checkpoints hold only trainable state; checked in on_load_checkpoint
        self.settings, self.sampling, self.grpo = policy, sampling, grpo_settings
        self.rewards: list[RewardComponent] = list(rewards) if rewards is not None else [LengthBand(), DistinctN()]
        names = [component.name for component in self.rewards]
        if len(set(names)) != len(names):
            raise ValueError(f"reward component names must be unique, got {names}")
        if grpo_settings.merge_adapters_for_rollout and policy.load_in_4bit:
            raise ValueError(
                "grpo_settings.merge_adapters_for_rollout=true does not work with policy.load_in_4bit=true: "
                "B·A cannot be added to 4-bit weights without dequantising the whole model; set it to false"
            )
        self.policy = Policy(policy)
        self.scalarizer = scalarizer if scalarizer is not None else Conductor()
        self.scalarizer.bind(names, self.policy.hidden_size)
        self.policy_optimizer, self.conductor_optimizer = policy_optimizer, conductor_optimizer
        self.policy_lr_scheduler = policy_lr_scheduler
        self.val_max_new_tokens = val_max_new_tokens or sampling.max_new_tokens
        self.log_completions_every_n_steps = log_completions_every_n_steps
        self.on_reward_error, self.generation_batch_size = on_reward_error, generation_batch_size
        self.fast_rollout = fast_rollout  # opt-in hand-written decode loop (maestro_lit.fast_rollout)
        self.skipped_updates = self.consecutive_skips = 0
        self.last_step: dict[str, Any] = {}
        self.data_position: tuple[int, int] | None = None
        # Not save_hyperparameters(): LightningCLI would parse these back as init args on resume.
        self.run_summary = {
            "policy": asdict(policy),
            "sampling": asdict(sampling),
            "grpo": asdict(grpo_settings),
            "rewards": ",".join(names),
            "scalarizer": type(self.scalarizer).__name__,
        }

    # ------------------------------------------------------------------ setup
    @property
    def component_names(self) -> list[str]:
        return [component.name for component in self.rewards]

    @property
    def needs_reference(self) -> bool:
        return self.grpo.beta > 0 or any(getattr(c, "requires_reference_logprobs", False) for c in self.rewards)

    def setup(self, stage: str) -> None:
        for component in self.rewards:
            if hasattr(component, "to"):
                component.to(self.device)

    def on_fit_start(self) -> None:
        if self.logger is not None:
            self.logger.log_hyperparams(self.run_summary)

    def trainable_policy_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.policy.parameters() if p.requires_grad]

    def configure_optimizers(self) -> Any:
        self._trainable = self.trainable_policy_parameters()  # cached: clipped every update
        policy_opt = self.policy_optimizer(self._trainable)
        optimizers = [policy_opt]
        if self.scalarizer.learnable:
            optimizers.append(self.conductor_optimizer(self.scalarizer.parameters()))
        if self.policy_lr_scheduler is None:
            return optimizers
        return optimizers, [{"scheduler": self.policy_lr_scheduler(policy_opt), "interval": "step"}]

    # --------------------------------------------------------------- helpers
    def score_rewards(
        self, prompts: Sequence[str], completions: Sequence[str], columns: dict[str, list], extra: dict[str, Any]
    ) -> torch.Tensor:
        """R ∈ ℝ^{N×M}: every component scores every completion; NaN marks a missing score."""
        scores = []
        for component in self.rewards:
            kwargs = dict(columns)
            if getattr(component, "requires_reference_logprobs", False):
                kwargs.update(extra)
            try:
                output = component(list(prompts), list(completions), **kwargs)
            except Exception as err:
                if self.on_reward_error == "raise":
                    raise RewardError(f"reward component '{component.name}' raised {type(err).__name__}: {err}") from err
                output = [None] * len(completions)  # skipped: missing for this step, logged as NaN
            scores.append(as_score_tensor(component.name, output, len(completions)))
        raw = torch.stack(scores, dim=-1).to(self.device)
        return raw.masked_fill(~torch.isfinite(raw), float("nan"))

    def _score(self, rollout: Rollout, rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy.score(rollout.input_ids[rows], rollout.attention_mask[rows], rollout.completion_start, self.sampling.temperature)

    def _generate(
        self, conversations: list[list[dict[str, str]]], num_generations: int, sampling: SamplingSettings, greedy: bool
    ) -> tuple[Rollout, int]:
        """Tokenise once, generate with LoRA merged if configured; also returns the truncated-prompt count."""
        prompt_ids, prompt_mask, n_truncated = tokenize_prompts(self.policy.tokenizer, conversations, sampling.max_prompt_tokens)
        prompt_ids, prompt_mask = prompt_ids.to(self.device), prompt_mask.to(self.device)
        with self.policy.merged_adapters(self.grpo.merge_adapters_for_rollout):
            if self.fast_rollout is None:
                rollout = generate(self.policy, prompt_ids, prompt_mask, num_generations, sampling, greedy)
            else:
                rollout = fast_generate(self.policy, prompt_ids, prompt_mask, num_generations, sampling, greedy, self.fast_rollout)
        return rollout, n_truncated

    def _rollout(
        self, prompts: Sequence[str], num_generations: int, greedy: bool, max_new_tokens: int | None = None
    ) -> tuple[Rollout, int]:
        sampling = (
            self.sampling if max_new_tokens is None else SamplingSettings(**{**asdict(self.sampling), "max_new_tokens": max_new_tokens})
        )
        return self._generate([_user_turn(p) for p in prompts], num_generations, sampling, greedy)

    @torch.no_grad()
    def generate_chat(self, conversations: list[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        """Greedy answers to chat conversations, in batches of ``generation_batch_size``; used by benchmarks."""
        settings = SamplingSettings(max_new_tokens=max_new_tokens, max_prompt_tokens=self.sampling.max_prompt_tokens)
        answers: list[str] = []
        for start in range(0, len(conversations), self.generation_batch_size):
            chunk = conversations[start : start + self.generation_batch_size]
            answers.extend(self._generate(chunk, 1, settings, greedy=True)[0].completions)
        return answers

    # ------------------------------------------------------------ training
    def training_step(self, batch: dict[str, list], batch_idx: int) -> None:
        self.data_position = batch.pop(POSITION_KEY, None)  # saved by the datamodule for exact resume
        G, timer = self.grpo.num_generations, PhaseTimer()
        prompts = [p for p in batch["prompt"] for _ in range(G)]
        columns = {k: [v for v in values for _ in range(G)] for k, values in batch.items() if k != "prompt"}
        fused = self.grpo.num_iterations == 1 and self.grpo.num_minibatches == 1

        # 1. Rollout: G completions per prompt from the current policy, no grad.
        with timer("rollout"):
            rollout, prompts_truncated = self._rollout(batch["prompt"], G, greedy=False)

        # 2. Scoring pass: completion log-probs and terminal hidden state from one forward.
        with timer("scoring"):
            if fused:
                logprobs, hidden = self._score(rollout)
                old_logprobs = logprobs.detach()
            else:
                with torch.no_grad():
                    old_logprobs, hidden = self._score(rollout)
            ref_logprobs = None
            if self.needs_reference:
                with torch.no_grad(), self.policy.adapters_disabled():
                    ref_logprobs, _ = self._score(rollout)

        # 3. Rewards R ∈ ℝ^{N×M}; NaN = missing and masked.
        with timer("rewards"):
            extra = {"ref_logprobs": ref_logprobs, "completion_mask": rollout.completion_mask}
            raw = self.score_rewards(prompts, rollout.completions, columns, extra)

        # 4–5. Scalarise (Conductor / static / single) and take group-relative advantages.
        with timer("outer"):
            choice = self.scalarizer.choose(hidden, columns, greedy=False, group_size=G)
            scalar = grpo.scalarize(raw, choice.weights, G, self.grpo.reward_normalization)
            advantages = grpo.group_advantages(scalar, G).masked_fill(grpo.unscored_rows(raw), 0.0)

        # 6. Inner loop: μ clipped-GRPO updates of the LoRA policy.
        with timer("inner"):
            inner = self._policy_updates(rollout, old_logprobs, ref_logprobs, advantages, logprobs if fused else None)

        # 7. Outer step: the Conductor learns from the advantages its actions produced.
        with timer("outer"):
            outer = self._conductor_update(choice, self.scalarizer.meta_reward(advantages, raw, G))

        # 8. Logging.
        metrics = {
            **reward_metrics(raw, self.component_names, "train"),
            "train/scalar_reward": scalar.mean(),
            "train/advantage_mean": advantages.mean(),
            "train/advantage_std": advantages.std(),
            "train/advantage_abs": advantages.abs().mean(),
            "train/zero_std_groups": grpo.zero_std_group_fraction(scalar, G),
            "train/policy_entropy": -(old_logprobs * rollout.completion_mask).sum() / rollout.completion_mask.sum().clamp(min=1),
            "train/completion_length": rollout.lengths.float().mean(),
            "train/truncation_rate": rollout.truncated.float().mean(),
            "train/prompts_truncated": float(prompts_truncated),
            **inner,
            **outer,
            **scalarizer_metrics(choice, self.scalarizer.action_names, columns.get("category"), "conductor"),
            **{f"time/{phase}": seconds for phase, seconds in timer.seconds.items()},
        }
        metrics = keep_for_this_step(metrics, logger_writes_this_step(self.trainer))
        self.log_dict(self._reduce_across_ranks(metrics), on_step=True, on_epoch=False, batch_size=len(batch["prompt"]))
        self._log_completions(prompts, rollout.completions, raw, scalar, choice)
        # Raw tensors of this step for callbacks (histograms, figures); replaced every step.
        self.last_step = {
            "advantages": advantages.detach(),
            "scalar_rewards": scalar.detach(),
            "raw_rewards": raw,
            "completion_lengths": rollout.lengths,
            "actions": choice.actions,
            "categories": columns.get("category"),
            "prompts": prompts,
            "completions": rollout.completions,
            "phase_seconds": dict(timer.seconds),
        }

    def _reduce_across_ranks(self, metrics: dict[str, Any]) -> dict[str, torch.Tensor]:
        values = {k: torch.as_tensor(v, dtype=torch.float32, device=self.device).detach() for k, v in metrics.items()}
        return reduce_over_ranks(values, self.trainer.strategy, self.trainer.world_size)

    def _policy_updates(
        self,
        rollout: Rollout,
        old_logprobs: torch.Tensor,
        ref_logprobs: torch.Tensor | None,
        advantages: torch.Tensor,
        fused_logprobs: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """μ passes over the rollout's minibatches; one optimiser step per minibatch, or per pass
        when ``accumulate_minibatches`` (gradients summed, each minibatch weighted by its share)."""
        optimizer = self.optimizers()
        optimizer = optimizer[0] if isinstance(optimizer, list) else optimizer
        s, n = self.grpo, advantages.shape[0]
        if n % s.num_minibatches:
            raise ValueError(
                f"{n} completions per step (data.batch_size × grpo_settings.num_generations) do not split into "
                f"grpo_settings.num_minibatches={s.num_minibatches} equal minibatches"
            )
        slices = grpo.minibatch_slices(n, s.num_minibatches)
        mask_all = rollout.completion_mask
        sums = {"policy_loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "grad_norm": 0.0}
        updates = 0
        for _ in range(s.num_iterations):
            optimizer.zero_grad()
            finite = True
            for rows in slices:
                logprobs = fused_logprobs if fused_logprobs is not None else self._score(rollout, rows)[0]
                token_rows = mask_all if s.accumulate_minibatches else mask_all[rows]
                tokens = self.trainer.strategy.reduce(token_rows.sum().float(), reduce_op="mean") if s.loss_type == "dapo" else None
                loss, stats = grpo.clipped_policy_loss(
                    logprobs, old_logprobs[rows], advantages[rows], mask_all[rows], s.epsilon_low, s.epsilon_high, s.beta,
                    None if ref_logprobs is None else ref_logprobs[rows], s.loss_type, self.sampling.max_new_tokens, tokens,
                )  # fmt: skip
                sums["policy_loss"] += float(loss.detach())
                if s.accumulate_minibatches and s.loss_type != "dapo":
                    loss = loss * (rows.stop - rows.start) / n  # dapo already divides by the whole rollout's tokens
                finite = finite and bool(torch.isfinite(loss))
                if finite:
                    self.manual_backward(loss)
                sums["kl"] += float(stats.kl)
                sums["clip_fraction"] += float(stats.clip_fraction)
                if not s.accumulate_minibatches:
                    updates += self._step_policy(optimizer, finite, sums)
                    optimizer.zero_grad()
                    finite = True
            if s.accumulate_minibatches:
                updates += self._step_policy(optimizer, finite, sums)
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        evaluations = s.num_iterations * len(slices)
        metrics = {f"train/{k}": torch.tensor(v / evaluations) for k, v in sums.items() if k != "grad_norm"}
        metrics["train/grad_norm"] = torch.tensor(sums["grad_norm"] / max(updates, 1))
        metrics["train/skipped_updates"] = torch.tensor(float(self.skipped_updates))
        metrics["train/lr"] = torch.tensor(optimizer.param_groups[0]["lr"])
        return metrics

    def _step_policy(self, optimizer, finite: bool, sums: dict[str, float]) -> int:
        """Clip and apply the accumulated gradient unless it is non-finite; returns 1 if applied."""
        grad_norm = torch.nn.utils.clip_grad_norm_(self._trainable, self.grpo.max_grad_norm) if finite else torch.tensor(float("nan"))
        if not torch.isfinite(grad_norm):
            self._skip_update(optimizer)
            return 0
        optimizer.step()
        self.consecutive_skips = 0
        sums["grad_norm"] += float(grad_norm)
        return 1

    def _skip_update(self, optimizer) -> None:
        """Drop a non-finite update; stop the run once too many come in a row."""
        optimizer.zero_grad()
        self.skipped_updates += 1
        self.consecutive_skips += 1
        if self.consecutive_skips >= self.grpo.max_consecutive_skips:
            raise DivergenceError(
                f"{self.consecutive_skips} consecutive policy updates had a non-finite loss or gradient "
                f"(grpo_settings.max_consecutive_skips={self.grpo.max_consecutive_skips}); stopping. "
                "The last checkpoint written before this step is intact; try a lower learning rate."
            )

    def _conductor_update(self, choice: Scalarization, meta_reward: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.scalarizer.learnable:
            return {}
        optimizer = self.optimizers()[1].optimizer  # raw: keep global_step = policy updates
        loss, entropy = self.scalarizer.loss(choice, meta_reward)
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        return {"conductor/loss": loss.detach(), "conductor/entropy": entropy}

    def _log_completions(self, prompts, completions, raw, scalar, choice) -> None:
        every = self.log_completions_every_n_steps
        experiment = getattr(self.logger, "experiment", None)
        if not every or self.global_step % every or not hasattr(experiment, "add_text"):
            return
        table = completion_table(prompts, completions, raw, scalar, choice, self.component_names, self.scalarizer.action_names)
        experiment.add_text("samples/completions", table, global_step=self.global_step)

    # ---------------------------------------------------------- validation
    @torch.no_grad()
    def evaluate_prompts(self, prompts: Sequence[str], columns: dict[str, list], max_new_tokens: int | None = None) -> dict[str, Any]:
        """Greedy answers, their reward components and the scalariser's argmax action per prompt.

        Shared by validation and by evaluation callbacks (e.g. the testbed), so held-out
        evaluation is computed one way everywhere.
        """
        rollout, _ = self._rollout(prompts, 1, greedy=True, max_new_tokens=max_new_tokens or self.val_max_new_tokens)
        _, hidden = self._score(rollout)
        extra = {"completion_mask": rollout.completion_mask}
        if self.needs_reference:
            with self.policy.adapters_disabled():
                extra["ref_logprobs"] = self._score(rollout)[0]
        raw = self.score_rewards(prompts, rollout.completions, columns, extra)
        choice = self.scalarizer.choose(hidden, columns, greedy=True)
        return {"completions": rollout.completions, "lengths": rollout.lengths, "raw_rewards": raw, "choice": choice}

    def validation_step(self, batch: dict[str, list], batch_idx: int) -> None:
        """Greedy answers to held-out prompts; the mean of each reward component."""
        batch.pop(POSITION_KEY, None)
        columns = {k: v for k, v in batch.items() if k != "prompt"}
        result = self.evaluate_prompts(batch["prompt"], columns)
        raw = result["raw_rewards"]
        metrics = {
            **{f"val/reward/{name}": torch.nanmean(raw[:, m]) for m, name in enumerate(self.component_names)},
            "val/completion_length": result["lengths"].float().mean(),
            **scalarizer_metrics(result["choice"], self.scalarizer.action_names, columns.get("category"), "val/conductor"),
        }
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=len(batch["prompt"]))

    # ---------------------------------------------------------- checkpoints
    def _trainable_state_keys(self) -> set[str]:
        keys = {f"policy.{name}" for name, p in self.policy.named_parameters() if p.requires_grad}
        return keys | {f"scalarizer.{name}" for name in self.scalarizer.state_dict()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep LoRA + scalariser state only: the frozen base weights are reloaded from the model id."""
        keep = self._trainable_state_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["maestro"] = {"skipped_updates": self.skipped_updates, "model": self.settings.name_or_path, "rng": rng_states()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        missing = sorted(self._trainable_state_keys() - set(checkpoint.get("state_dict", {})))
        if missing:
            raise KeyError(f"checkpoint does not match this model/config: {len(missing)} trainable tensors are missing, e.g. {missing[:3]}")
        state = checkpoint.get("maestro", {})
        self.skipped_updates = int(state.get("skipped_updates", 0))
        if "rng" in state:
            restore_rng_states(state["rng"])
