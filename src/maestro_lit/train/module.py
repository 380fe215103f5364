"""The MAESTRO LightningModule: one GRPO step with a Conductor, in the order of docs/design.md §1.

It orchestrates; the pieces are units of their own (``policy.sampler``, ``policy.scoring``,
``rewards.reward_set``, ``conductor.base``, ``conductor.outer_loop``, ``grpo``, ``train.policy_update``,
``policy.reference``, ``train.step_metrics``) and get what they need passed in. Callbacks read ``last_step``.
Choices where the paper is silent:
- the Conductor optimiser is the module's own (``train.conductor_optimizer``), outside Lightning's
  optimizer list, so ``trainer.global_step`` counts policy updates only (μ × num_minibatches per step)
  and DeepSpeed (one optimiser) can take the policy's;
- with μ = 1 and one set minibatch the scoring pass *is* the training forward (old log-probs =
  current ones detached): one forward with grad per step; never under ``num_minibatches: auto``, whose
  probe cannot see a graph kept alive through the reward models' forwards;
- ``train/policy_entropy`` is the Monte-Carlo estimate −mean log π(sampled token);
- step metrics go through ``self.log`` only on steps a logger writes (Lightning's per-key cost).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info

from maestro_lit import grpo
from maestro_lit.conductor.base import Conductor, Scalarizer
from maestro_lit.conductor.null_credit import run_start_null_credit
from maestro_lit.conductor.outer_loop import OuterLoop, OuterLoopSettings
from maestro_lit.data.messages import Prompt, prompt_text
from maestro_lit.policy.engines import build_engine
from maestro_lit.policy.model import Policy
from maestro_lit.policy.reference import ReferenceWeights, reference_nll_for
from maestro_lit.policy.rollout import Rollout, expand_groups, reward_inputs
from maestro_lit.policy.sampler import (
    NonFinitePolicy,
    Sampler,
    check_finite_forward,
    check_finite_weights,
    check_merge_allowed,
)
from maestro_lit.policy.scoring import ScoringPass
from maestro_lit.policy.sharding import shard_policy
from maestro_lit.rewards.base import RewardComponent
from maestro_lit.rewards.reward_set import MissingScores, RewardSet, missing_counts
from maestro_lit.settings import (
    GRPOSettings,
    ModelSettings,
    OnRewardError,
    ReferenceSettings,
    RolloutSettings,
    SamplingSettings,
    ScoringSettings,
)
from maestro_lit.train.conductor_optimizer import ConductorOptimizer, average_gradients, syncs_every_gradient
from maestro_lit.train.deepspeed_clipping import pass_clipping_to_deepspeed
from maestro_lit.train.minibatch_plan import MinibatchPlanner
from maestro_lit.train.module_state import load_module_state, save_module_state
from maestro_lit.train.policy_update import DivergenceError, PolicyUpdater, last_checkpoint_path
from maestro_lit.train.records import EvaluationResult, StepRecord, TrainerState
from maestro_lit.train.step_metrics import (
    evaluation_metrics,
    keep_for_this_step,
    logger_writes_this_step,
    reduce_over_ranks,
    sampler_weight_metrics,
    step_metrics,
)
from maestro_lit.train.strategy_checks import fsdp2_refusals
from maestro_lit.train.timing import PhaseTimer

__all__ = ["DivergenceError", "GRPOSettings", "MaestroModule"]  # re-exported: configs and tests import them here


class MaestroModule(L.LightningModule):
    """LoRA policy + scalariser trained with GRPO; the scalariser picks the reward weights.

    ``rollouts_done`` (training steps completed, checkpointed) is the project's one step counter, the
    callbacks' cadence and x-axis (= Lightning's logging step); ``trainer.global_step`` counts policy
    optimiser steps (μ × num_minibatches per rollout).
    """

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
        on_reward_error: OnRewardError = "raise",
        generation_batch_size: int = 64,
        rollout: RolloutSettings = RolloutSettings(),
        scoring: ScoringSettings = ScoringSettings(),
        reference: ReferenceSettings = ReferenceSettings(),
        outer_loop: OuterLoopSettings = OuterLoopSettings(),
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.strict_loading = False  # checkpoints hold only trainable state; checked in on_load_checkpoint
        if not rewards:
            raise ValueError(
                "model.rewards is empty: list the reward components in the config (see configs/quickstart.yaml)"
            )
        check_merge_allowed(sampling, policy.load_in_4bit)  # before the model loads
        self.model_settings, self.sampling, self.grpo_settings, self.scoring = policy, sampling, grpo_settings, scoring
        self.reward_set = RewardSet(rewards, on_reward_error)
        self.missing_scores = MissingScores(  # warns / stops (reward_set)
            self.reward_set.names,
            on_reward_error,
            scored_fractions=[getattr(c, "scored_fraction", 1.0) for c in self.reward_set.components],
        )
        self.rewards: list[RewardComponent] = self.reward_set.components
        try:
            self.policy = Policy(policy)
        except OSError as err:  # not a local folder, and the hub unreachable or without that id
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise OSError(f"model.policy.name_or_path={policy.name_or_path!r} cannot be loaded: {first_line}") from err
        self.scalarizer = scalarizer if scalarizer is not None else Conductor()
        self.scalarizer.bind(self.component_names, self.policy.hidden_size)
        self.scalarizer.use_reward_normalization(
            self.grpo_settings.reward_normalization, self.reward_set.normalizations
        )
        # the Conductor's buffer and update schedule (every M steps: its own M, else the run's); checkpointed
        self.outer = OuterLoop(self.scalarizer, outer_loop.update_every)
        self.reference = ReferenceWeights(self.policy, reference)  # adapters off, or a synced second adapter (option)
        reference_nll = reference_nll_for(self.policy, self.reference.context) if self.reward_set.needs_policy else None
        self.reward_set.bind(self.policy.tokenizer, reference_nll)  # ppl's reference forward, built once
        self.policy_optimizer, self.conductor_optimizer = policy_optimizer, conductor_optimizer
        self.conductor_optim = ConductorOptimizer(conductor_optimizer)  # not in Lightning's list; checkpointed
        self.policy_lr_scheduler = policy_lr_scheduler
        self.val_max_new_tokens = val_max_new_tokens or sampling.max_new_tokens
        self.generation_batch_size = generation_batch_size
        self.rollout_settings = rollout
        self.sampler = Sampler(self.policy, sampling, build_engine(rollout))  # model.rollout.engine
        planner = MinibatchPlanner(grpo_settings.auto_memory_fraction, report=rank_zero_info)  # num_minibatches auto
        self.updater = PolicyUpdater(grpo_settings, sampling.max_new_tokens, planner)
        self._rollouts_done = 0
        self.last_step: StepRecord | None = None  # the latest step's tensors, for callbacks
        # Not save_hyperparameters(): LightningCLI would parse these back as init args on resume.
        settings = {
            "policy": policy,
            "sampling": sampling,
            "grpo": grpo_settings,
            "scoring": scoring,
            "reference": reference,
            "rollout": rollout,
        }
        self.run_summary = {
            **{key: asdict(value) for key, value in settings.items()},
            "outer_loop": {"update_every": self.outer.update_every},  # M as used: the scalariser's own or the run's
            "rewards": ",".join(self.component_names),
            "scalarizer": type(self.scalarizer).__name__,
        }

    @property
    def rollouts_done(self) -> int:  # training steps completed, resumed ones included (class docstring)
        return self._rollouts_done

    @property
    def component_names(self) -> list[str]:
        return self.reward_set.names

    def setup(self, stage: str) -> None:
        if self.grpo_settings.num_minibatches == "auto" and self._trainer and self.trainer.world_size > 1:
            raise ValueError(
                "model.grpo_settings.num_minibatches=auto plans for one device; with "
                f"{self.trainer.world_size} processes set a number (every rank must run as many backwards)"
            )
        if self._trainer is not None:  # DeepSpeed formats its config after this hook
            pass_clipping_to_deepspeed(self.trainer.strategy, self.grpo_settings.max_grad_norm)
        self.reward_set.to(self.device)

    def on_fit_start(self) -> None:
        if self.logger is not None:  # plain values: hparams.yaml must load with yaml.safe_load
            self.logger.log_hyperparams(plain_values(self.run_summary))
            # the reward set's bias as this Conductor sees it: the credit per action under null rewards
            settings = self.grpo_settings
            null = run_start_null_credit(
                self.scalarizer,
                self.reward_set.normalizations,
                settings.num_generations,
                settings.reward_normalization,
                settings.scale_rewards,
            )
            if null:
                self.logger.log_metrics(null, step=0)

    def configure_model(self) -> None:
        """Under FSDP2 (``train.fsdp2.FSDP2Strategy``, which sets the device mesh): shard the policy per decoder
        layer (``policy.sharding``); the reference adapter's pairs are looked up again, as sharding replaces
        the parameters."""
        mesh = getattr(self, "_device_mesh", None)
        if mesh is None:
            return
        problems = fsdp2_refusals(
            self.rollout_settings.engine,
            self.sampling.merge_adapters_for_rollout,
            self.model_settings.load_in_4bit,
            [type(c).__name__ for c in self.trainer.callbacks] if self._trainer else [],
        )
        if problems:
            raise ValueError("; ".join(problems))
        shard_policy(self.policy, mesh["data_parallel"] if mesh.mesh_dim_names else mesh)
        self.reference.rebind()

    def trainable_policy_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.policy.parameters() if p.requires_grad]

    def configure_optimizers(self) -> Any:
        self._trainable = self.trainable_policy_parameters()  # cached: clipped every update
        policy_opt = self.policy_optimizer(self._trainable)
        if self.scalarizer.learnable:  # the module's own (train.conductor_optimizer): Lightning gets one optimiser
            self.conductor_optim.build(self.scalarizer.parameters())
        if self.policy_lr_scheduler is None:
            return policy_opt
        return [policy_opt], [{"scheduler": self.policy_lr_scheduler(policy_opt), "interval": "step"}]

    def _conductor_backward(self, loss: torch.Tensor) -> None:
        """The Conductor's backward: ``manual_backward`` where the strategy syncs every gradient (one process,
        DDP); else a plain backward and the gradient averaged over ranks (``train.conductor_optimizer``)."""
        if not self._trainer or syncs_every_gradient(self.trainer.strategy):
            self.manual_backward(loss)
            return
        loss.backward()
        average_gradients(self.scalarizer.parameters())

    @property
    def _entropy_masked(self) -> bool:
        """``top_entropy_quantile`` < 1: the training forwards also give token entropies."""
        return self.grpo_settings.top_entropy_quantile < 1

    def _scoring_pass(self, rollout: Rollout, rows: slice = slice(None), step: bool = False, entropy: bool = False):
        """One forward over rows of the rollout (a ``ScoringPass``); ``step``: the step's scoring pass (Conductor
        layer, token entropy if read or masked by); ``entropy``: token entropies too (top_entropy_quantile < 1)."""
        entropy = entropy or (step and self.reward_set.needs_token_entropy)
        extras = {"hidden_layer": self.scoring.hidden_layer, "hidden_position": self.scoring.hidden_position}
        extras = extras if step else {}
        if entropy:
            extras["with_entropy"] = True
        return self.policy.scoring_pass(
            rollout.input_ids[rows],
            rollout.attention_mask[rows],
            rollout.completion_start,
            self.sampling.temperature,
            **extras,
        )

    def _reference_logprobs(self, rollout: Rollout, for_kl: bool) -> torch.Tensor | None:
        if not ((for_kl and self.grpo_settings.beta > 0) or self.reward_set.needs_reference):
            return None  # no KL penalty and no component reads the reference
        with torch.no_grad(), self.reference.context():
            return self._scoring_pass(rollout).logprobs

    def _rewards(
        self, rollout, prompts, columns, group_size, scored: ScoringPass, ref_logprobs, timer=None
    ) -> torch.Tensor:
        state = (
            TrainerState(self.trainer.global_step, self._rollouts_done, self.trainer.max_steps)
            if self._trainer
            else None
        )
        reward_set = self.reward_set
        batch = reward_inputs(
            rollout,
            prompts,
            columns,
            group_size,
            tokenizer=reward_set.tokenizer,
            reference_nll=reward_set.reference_nll,
            logprobs=scored.logprobs.detach(),
            ref_logprobs=ref_logprobs,
            token_entropy=scored.token_entropy,
            trainer_state=state,
        )
        return reward_set.compute(batch, self.device, timer)

    @torch.no_grad()
    def generate_chat(self, conversations: list[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        """Greedy answers to chat conversations, in batches of ``generation_batch_size``; used by the evals."""
        with self._divergence_guard():
            return self.sampler.chat(conversations, max_new_tokens, self.generation_batch_size, self.device)

    @contextmanager
    def _divergence_guard(self) -> Iterator[None]:
        """A policy that is no longer finite (``policy.sampler.NonFinitePolicy``) stops the run as a divergence."""
        try:
            yield
        except NonFinitePolicy as err:
            last = last_checkpoint_path(self._trainer) if self._trainer else None
            raise DivergenceError(non_finite_message(err, self._rollouts_done + 1, last)) from err

    def training_step(self, batch: dict[str, list], batch_idx: int) -> None:
        with self._divergence_guard():
            self._training_step(batch)

    def _training_step(self, batch: dict[str, list]) -> None:
        G, timer = self.grpo_settings.num_generations, PhaseTimer()
        prompts, columns = expand_groups(batch, G)
        fused = self.grpo_settings.num_iterations == 1 and self.grpo_settings.num_minibatches == 1

        # 1. Rollout: G completions per prompt from the current policy, no grad.
        with timer("rollout"):
            rollout, prompts_truncated = self.sampler.prompts(batch["prompt"], G, False, self.device)

        # 2. Scoring pass: log-probs, the Conductor's hidden state (and token entropies) from one forward;
        # reference log-probs.
        with timer("scoring"), torch.set_grad_enabled(fused):
            scored = self._scoring_pass(rollout, step=True, entropy=fused and self._entropy_masked)
            check_finite_forward(scored.logprobs.detach(), rollout.completion_mask, scored.hidden)
            old_logprobs, ref_logprobs = scored.logprobs.detach(), self._reference_logprobs(rollout, for_kl=True)

        # 3. Rewards R ∈ ℝ^{N×K}; NaN = missing and masked. ``ppl`` adds one batched reference forward.
        with timer("rewards"):
            raw = self._rewards(rollout, prompts, columns, G, scored, ref_logprobs, timer)
            self._watch_missing_scores(raw)

        # 4–5. Scalarise (Conductor / static / single / random) per component's normalisation;
        # group-relative advantages.
        with timer("outer"):
            choice = self.scalarizer.choose(scored.hidden, columns, greedy=False, group_size=G)
            norms = self.reward_set.normalizations
            scalar = grpo.scalarize(
                raw, choice.weights, G, self.grpo_settings.reward_normalization, normalizations=norms
            )
            scored_rows = ~grpo.unscored_rows(raw)  # unscored: out of the group statistics, advantage 0
            advantages = grpo.group_advantages(scalar, G, scale=self.grpo_settings.scale_rewards, valid=scored_rows)

        # 6. Inner loop: μ clipped-GRPO updates of the LoRA policy (a joint Conductor collects ∂L/∂A here).
        with timer("inner"):
            policy_advantages = self.outer.policy_advantages(advantages)
            weights = self._sampler_weights(rollout, old_logprobs)  # None: the sampler is the training forward
            if weights is not None:
                policy_advantages = policy_advantages.unsqueeze(-1) * weights  # per token (grpo.clipped_policy_loss)
            fused_pass = scored if fused else None
            inner = self._policy_updates(rollout, old_logprobs, ref_logprobs, policy_advantages, fused_pass)
            self.sampler.engine.weights_changed()  # an engine holding a copy of the adapter refreshes it
            if weights is not None:
                inner.update(sampler_weight_metrics(weights, rollout.completion_mask))
            check_finite_weights(self._trainable)

        # 7. Outer step: buffer (h, a, A); every M steps the Conductor's REINFORCE update on the buffer.
        with timer("outer"):
            optimizer = self.conductor_optim.optimizer  # the module's own: global_step = policy updates
            outer = self.outer.step(choice, scored.hidden, advantages, raw, G, optimizer, self._conductor_backward)

        # 8. Record and log.
        self._rollouts_done += 1
        self.reference.after_step(self._rollouts_done)  # option: every N steps ref ← α·policy + (1−α)·ref
        self.last_step = StepRecord(
            step=self._rollouts_done,
            group_size=G,
            prompts=[prompt_text(prompt) for prompt in prompts],
            completions=rollout.completions,
            completion_lengths=rollout.lengths,
            raw_rewards=raw,
            scalar_rewards=scalar.detach(),
            advantages=advantages.detach(),
            choice=choice,
            component_names=self.component_names,
            action_names=self.scalarizer.action_names,
            categories=columns.get("category"),
            phase_seconds=dict(timer.seconds),
        )
        metrics = step_metrics(self.last_step, rollout, old_logprobs, prompts_truncated, {**inner, **outer})
        metrics.update(self.reward_set.cost_metrics())
        metrics = keep_for_this_step(metrics, logger_writes_this_step(self.trainer))
        metrics = reduce_over_ranks(metrics, self.device, self.trainer.strategy, self.trainer.world_size)
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=len(batch["prompt"]))

    def _watch_missing_scores(self, raw: torch.Tensor) -> None:
        """Counts summed over ranks, so every rank warns or stops alike (``rewards.reward_set.MissingScores``)."""
        counts = missing_counts(raw)
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            counts = trainer.strategy.reduce(counts, reduce_op="sum")
        report = trainer is None or trainer.is_global_zero
        self.missing_scores.update(counts, self._rollouts_done + 1, report=report)

    def _sampler_weights(self, rollout: Rollout, old_logprobs: torch.Tensor) -> torch.Tensor | None:
        """The importance weights [N, T] of an engine that returned its own log-probs (TRL's vLLM correction);
        None when it returned none (generate, fast: the scoring pass is the distribution sampled) or the
        correction is off."""
        settings = self.rollout_settings
        if rollout.sampler_logprobs is None or not settings.importance_sampling_correction:
            return None
        return grpo.sampler_importance_weights(
            old_logprobs,
            rollout.sampler_logprobs,
            rollout.completion_mask,
            settings.importance_sampling_mode,
            settings.importance_sampling_clip_max,
            settings.importance_sampling_clip_min,
        )

    def _policy_updates(self, rollout, old_logprobs, ref_logprobs, advantages, fused: ScoringPass | None) -> dict:
        optimizer = self.optimizers()
        optimizer = optimizer[0] if isinstance(optimizer, list) else optimizer

        def score(rows: slice):  # the current log-probs (and token entropies for top_entropy_quantile < 1)
            scored = self._scoring_pass(rollout, rows, entropy=self._entropy_masked)
            return (scored.logprobs, scored.token_entropy) if self._entropy_masked else scored.logprobs

        metrics = self.updater.run(
            optimizer,
            self._trainable,
            score,
            old_logprobs,
            ref_logprobs,
            advantages,
            rollout.completion_mask,
            None if fused is None else fused.logprobs,
            fused_entropy=None if fused is None else fused.token_entropy,
            truncated=rollout.truncated,
            backward=self.manual_backward,
            reduce_tokens=partial(self.trainer.strategy.reduce, reduce_op="mean"),
            last_checkpoint=last_checkpoint_path(self.trainer),
            row_tokens=rollout.input_ids.shape[1],
        )
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
            metrics["train/lr"] = torch.tensor(optimizer.param_groups[0]["lr"])
        return metrics

    @torch.no_grad()
    def evaluate_prompts(
        self, prompts: Sequence[Prompt], columns: dict[str, list], max_new_tokens: int | None = None
    ) -> EvaluationResult:
        """Greedy answers, their reward components and the scalariser's evaluation choice per prompt (the
        Conductor's continuous π_φ(·|h) or argmax, per its ``eval_weights``): held-out evaluation computed one
        way for validation and evaluation callbacks (the testbed)."""
        with self._divergence_guard():
            rollout, _ = self.sampler.prompts(prompts, 1, True, self.device, max_new_tokens or self.val_max_new_tokens)
        scored = self._scoring_pass(rollout, step=True)
        raw = self._rewards(rollout, prompts, columns, 1, scored, self._reference_logprobs(rollout, for_kl=False))
        choice = self.scalarizer.choose(scored.hidden, columns, greedy=True)
        return EvaluationResult(
            completions=rollout.completions, lengths=rollout.lengths, raw_rewards=raw, choice=choice
        )

    def validation_step(self, batch: dict[str, list], batch_idx: int) -> None:
        """Greedy answers to held-out prompts; the mean of each reward component and the evaluation weights per
        category."""
        columns = {k: v for k, v in batch.items() if k != "prompt"}
        result = self.evaluate_prompts(batch["prompt"], columns)
        metrics = evaluation_metrics(
            result, self.component_names, self.scalarizer.action_names, columns.get("category")
        )
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=len(batch["prompt"]))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Trainable tensors, counters, RNG and the Conductor's buffer only (``module_state``)."""
        save_module_state(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        load_module_state(self, checkpoint)


def non_finite_message(err: NonFinitePolicy, step: int, last_checkpoint: str | None) -> str:
    """``DivergenceError``'s text for a policy that is no longer finite, naming the newest checkpoint and whether
    it can hold the broken weights (a forward found them: they were broken when step ``step - 1`` ended)."""
    if not last_checkpoint:
        where = "No checkpoint was written in this run before the divergence."
    elif err.in_forward:
        where = (
            f"The weights were already broken when step {step - 1} ended: the newest checkpoint, {last_checkpoint}, "
            f"holds them if it was written after step {step - 1}; resume from an earlier one."
        )
    else:
        where = f"The last checkpoint written before this step is intact: {last_checkpoint}."
    return (
        f"the policy diverged at training step {step}: {err}. {where} "
        "Check the learning rate (model.policy_optimizer) and the sampling and reward settings."
    )


def plain_values(value: Any) -> Any:
    """``value`` with every container a dict or list and every scalar a plain ``bool``/``int``/``float``/``str``
    (jsonargparse's ``PositiveInt`` and friends are subclasses that YAML writes as Python tags); other objects
    become their ``str``."""
    if isinstance(value, dict):
        return {str(key): plain_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_values(item) for item in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return None if value is None else str(value)
