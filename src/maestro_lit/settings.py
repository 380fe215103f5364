"""Settings of the training step (docs/design.md §1), in one place, validated when the config is parsed.

Each field carries an attribute docstring (the string right after it, as in litgpt's
``args.py``); jsonargparse reads them so ``fit --help`` documents every key. Choices are
``Literal`` types, so a typo fails at parse time with the valid values listed; ranges are
checked in ``__post_init__`` with the config key and the valid range in the message.

``RolloutSettings`` chooses the rollout engine (``maestro_lit.policy.engines``) and holds each engine's own
settings under the engine's name (docs/rollout.md says when to pick which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from jsonargparse import set_parsing_settings
from jsonargparse.typing import (
    ClosedUnitInterval,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    restricted_number_type,
)

set_parsing_settings(docstring_parse_attribute_docstrings=True)  # field docstrings → ``--help``

LossType = Literal["grpo", "bnpo", "dapo", "dr_grpo"]
ScaleRewards = Literal["group", "batch", "none"]  # same values as maestro_lit.grpo.SCALE_REWARDS
ImportanceSamplingLevel = Literal["token", "sequence"]  # same values as maestro_lit.grpo.IMPORTANCE_SAMPLING_LEVELS
RewardNormalization = Literal["normalize_then_sum", "sum_then_normalize"]
OnRewardError = Literal["raise", "skip"]
HiddenLayer = Literal["last", "middle", "first"]  # same values as maestro_lit.policy.scoring.HiddenLayer
HiddenPosition = Literal["completion_end", "prompt_end"]  # same values as maestro_lit.policy.scoring.HiddenPosition
# Range types: the parser checks them, so a bad value fails at parse time naming its key;
# ``__post_init__`` repeats the checks for settings built in Python (and alone checks
# num_generations, whose message says why: GRPO needs a group).
UnitIntervalOpenBelow = restricted_number_type("UnitIntervalOpenBelow", float, [(">", 0), ("<=", 1)])


def _check(ok: bool, key: str, valid: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{key} must be {valid}, got {value!r}")


TEMPLATE_ARGUMENTS = frozenset(
    {"conversation", "tokenize", "add_generation_prompt", "continue_final_message", "chat_template", "tools"}
    | {"documents", "return_tensors", "return_dict", "padding", "truncation", "max_length", "tokenizer_kwargs"}
)
"""apply_chat_template's own arguments: the rollout sets them (or they change what it returns), so they cannot be
template variables in ``model.sampling.chat_template_kwargs``."""


@dataclass
class SamplingSettings:
    """The training rollout (evaluation decodes greedily): sampling and token budgets."""

    temperature: PositiveFloat = 1.0
    """Softmax temperature of the rollout; > 0. Log-probs are taken at the same temperature."""
    top_p: UnitIntervalOpenBelow = 1.0
    """Nucleus sampling mass, in (0, 1]; 1 turns it off."""
    top_k: NonNegativeInt = 0
    """Sample among the k most likely tokens; >= 0, 0 turns it off."""
    max_new_tokens: PositiveInt = 32
    """Longest completion in tokens; >= 1. Longer ones are cut and counted as truncated."""
    max_prompt_tokens: PositiveInt = 256
    """Longest prompt in tokens; >= 1. Longer prompts keep their last tokens (counted in train/prompts_truncated)."""
    merge_adapters_for_rollout: bool = False
    """Generate with W + B·A merged into a separate buffer (faster decoding; the base is restored exactly).
    Not with policy.load_in_4bit."""
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    """Variables for the policy's chat template, passed to apply_chat_template for every prompt the policy answers
    (training, validation, evaluations), e.g. {enable_thinking: true} for Qwen3 (docs/data.md)."""

    def __post_init__(self) -> None:
        taken = sorted(set(self.chat_template_kwargs) & TEMPLATE_ARGUMENTS)
        _check(not taken, "model.sampling.chat_template_kwargs", f"free of {sorted(TEMPLATE_ARGUMENTS)}", taken)
        _check(self.temperature > 0, "model.sampling.temperature", "> 0", self.temperature)
        _check(0 < self.top_p <= 1, "model.sampling.top_p", "in (0, 1]", self.top_p)
        _check(self.top_k >= 0, "model.sampling.top_k", ">= 0 (0 = off)", self.top_k)
        _check(self.max_new_tokens >= 1, "model.sampling.max_new_tokens", ">= 1", self.max_new_tokens)
        _check(self.max_prompt_tokens >= 1, "model.sampling.max_prompt_tokens", ">= 1", self.max_prompt_tokens)


@dataclass
class GRPOSettings:
    """Group size, inner loop and loss of docs/design.md §1 steps 5–6."""

    num_generations: int = 4
    """G: completions sampled per prompt; >= 2 (GRPO compares within a group)."""
    num_iterations: PositiveInt = 1
    """μ: passes of policy updates over each rollout; >= 1. trainer.max_steps counts policy updates, so a
    rollout takes μ of them (× num_minibatches without accumulation); checkpoint cadence counts rollouts."""
    num_minibatches: PositiveInt | Literal["auto"] = 1
    """Minibatches per pass; >= 1 and must divide batch_size × num_generations (checked before the model loads).
    Without accumulate_minibatches each is one policy update, as trainer.max_steps counts them. ``auto`` (needs
    accumulate_minibatches, one device): the most rows per backward that fit auto_memory_fraction of the GPU's free
    memory, from a measured one-row probe (maestro_lit.train.minibatch_plan); one minibatch on a CPU; logged as
    train/num_minibatches."""
    epsilon_low: NonNegativeFloat = 0.2
    """Lower clip range of the importance ratio (1 − ε_low); >= 0."""
    epsilon_high: NonNegativeFloat = 0.2
    """Upper clip range of the importance ratio (1 + ε_high); >= 0."""
    beta: NonNegativeFloat = 0.0
    """Weight of the k3 KL penalty to the reference (adapters off); >= 0, 0 skips the reference forward."""
    loss_type: LossType = "grpo"
    """Loss aggregation over tokens: grpo (per sequence), bnpo (per minibatch), dapo (per update, by the rollout's
    loss tokens per update: TRL's num_items_in_batch scaled to one accumulation window), dr_grpo (constant: rows ×
    max_new_tokens)."""
    scale_rewards: ScaleRewards = "group"
    """TRL's scale_rewards: divide the group-centred reward by the group's std (group), by the std of the whole
    rollout's rewards (batch), or not at all (none: Dr. GRPO; TRL's scale_rewards=false)."""
    mask_truncated_completions: bool = False
    """TRL's option: completions with no EOS within max_new_tokens add no token to the loss (they still count in
    their group's advantage statistics; as in TRL, not in dapo's token count)."""
    importance_sampling_level: ImportanceSamplingLevel = "token"
    """TRL's option: one importance ratio per token (GRPO) or per completion (sequence: GSPO, the exp of the
    completion's mean log-ratio, clipped once for the whole completion)."""
    top_entropy_quantile: UnitIntervalOpenBelow = 1.0
    """TRL's option, in (0, 1]: the clipped surrogate keeps only this share of completion tokens, those with the
    highest entropy in the minibatch (the KL term keeps every token); 1 turns it off. Below 1 the scoring forwards
    also compute token entropies."""
    max_grad_norm: PositiveFloat = 1.0
    """Gradient clipping norm; > 0."""
    reward_normalization: RewardNormalization = "normalize_then_sum"
    """Group-normalise each reward component before weighting, or weight first and normalise the sum."""
    accumulate_minibatches: bool = False
    """One optimiser step per pass (gradients of its minibatches summed) instead of one per minibatch."""
    auto_memory_fraction: UnitIntervalOpenBelow = 0.8
    """With num_minibatches auto: the share of the GPU's free memory one backward's rows may take, in (0, 1]; the
    rest covers the optimiser state and allocator fragmentation."""
    max_consecutive_skips: PositiveInt = 10
    """Stop with DivergenceError after this many non-finite policy updates in a row; >= 1."""

    def __post_init__(self) -> None:
        key = "model.grpo_settings."
        _check(
            self.num_generations >= 2,
            key + "num_generations",
            ">= 2 (GRPO needs a group to compare)",
            self.num_generations,
        )
        _check(self.num_iterations >= 1, key + "num_iterations", ">= 1", self.num_iterations)
        if self.num_minibatches == "auto":
            _check(
                self.accumulate_minibatches,
                key + "num_minibatches",
                "a number unless accumulate_minibatches is true (auto keeps the update independent of the device)",
                self.num_minibatches,
            )
        else:
            _check(self.num_minibatches >= 1, key + "num_minibatches", ">= 1 or auto", self.num_minibatches)
        fraction = self.auto_memory_fraction
        _check(0 < fraction <= 1, key + "auto_memory_fraction", "in (0, 1]", fraction)
        _check(self.epsilon_low >= 0, key + "epsilon_low", ">= 0", self.epsilon_low)
        _check(self.epsilon_high >= 0, key + "epsilon_high", ">= 0", self.epsilon_high)
        _check(self.beta >= 0, key + "beta", ">= 0", self.beta)
        _check(self.max_grad_norm > 0, key + "max_grad_norm", "> 0", self.max_grad_norm)
        _check(self.max_consecutive_skips >= 1, key + "max_consecutive_skips", ">= 1", self.max_consecutive_skips)
        _check(self.loss_type in LossType.__args__, key + "loss_type", f"one of {LossType.__args__}", self.loss_type)
        valid = RewardNormalization.__args__
        _check(
            self.reward_normalization in valid,
            key + "reward_normalization",
            f"one of {valid}",
            self.reward_normalization,
        )
        valid = ScaleRewards.__args__
        _check(self.scale_rewards in valid, key + "scale_rewards", f"one of {valid}", self.scale_rewards)
        valid = ImportanceSamplingLevel.__args__
        level = self.importance_sampling_level
        _check(level in valid, key + "importance_sampling_level", f"one of {valid}", level)
        quantile = self.top_entropy_quantile
        _check(0 < quantile <= 1, key + "top_entropy_quantile", "in (0, 1] (1 = off)", quantile)


@dataclass
class ScoringSettings:
    """The scoring forward of docs/design.md §1 step 2: what it hands the Conductor."""

    hidden_layer: HiddenLayer = "last"
    """Layer whose hidden state (at the last non-pad token) the Conductor reads: last (after the final norm,
    the paper's default), middle or first decoder block (the paper's Table 4 ablation). Taken from the same
    forward by a hook: never an extra forward."""

    hidden_position: HiddenPosition = "completion_end"
    """Token whose hidden state the Conductor reads: the completion's last (the paper's: it sees prompt and answer)
    or the prompt's last (``prompt_end``: the prompt alone, the same for the G completions; for per-prompt actions)."""

    def __post_init__(self) -> None:
        valid = HiddenLayer.__args__
        _check(self.hidden_layer in valid, "model.scoring.hidden_layer", f"one of {valid}", self.hidden_layer)
        positions = HiddenPosition.__args__
        _check(
            self.hidden_position in positions,
            "model.scoring.hidden_position",
            f"one of {positions}",
            self.hidden_position,
        )


@dataclass
class ReferenceSettings:
    """The reference model of the KL term and of ``ppl`` (``maestro_lit.policy.reference``)."""

    sync_every: NonNegativeInt = 0
    """0 (default): the policy's weights with the LoRA adapters off (full fine-tuning: its frozen initial copy).
    N >= 1: a second LoRA adapter is the reference, mixed every N training steps as ref ← α·policy + (1−α)·ref
    (TRL's ref_model_sync_steps with sync_ref_model, as NOVER uses; the paper syncs every 6 steps, 12 on SS-GEN).
    Counted in training steps (TRL counts optimiser steps: the same with μ = 1 and one minibatch). Never a second
    copy of the base weights; LoRA only."""
    mix_alpha: ClosedUnitInterval = 0.6
    """α of the mix, in [0, 1]: the share of the policy's weights the reference takes at each sync (TRL's
    ref_model_mixup_alpha, same convention); 1 copies the policy, 0 never moves. 0.6 is TRL's default and NOVER's."""

    def __post_init__(self) -> None:
        _check(self.sync_every >= 0, "model.reference.sync_every", ">= 0 (0 = adapters off)", self.sync_every)
        _check(0 <= self.mix_alpha <= 1, "model.reference.mix_alpha", "in [0, 1]", self.mix_alpha)


@dataclass
class LoraSettings:
    """peft LoRA hyper-parameters; ``target_modules='all-linear'`` adapts every linear but the head."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"


@dataclass
class ModelSettings:
    """Which causal LM to load and how.

    Args:
        name_or_path: a hub id, a local folder, or the embedded ``maestro-lit/tiny``.
        dtype: weights dtype (float32, bfloat16, float16); the compute dtype under 4-bit.
        load_in_4bit: QLoRA: NF4 base weights via bitsandbytes >= 0.49 (CUDA, or CPU when the
            weight dimensions are multiples of 64). LoRA only.
        trust_remote_code: passed to ``from_pretrained``.
        lora: LoRA adapters, or ``null`` for full-parameter fine-tuning (the paper's setting).
            Full fine-tuning trains every weight and keeps a frozen copy of the initial weights
            as the reference (KL, ``ppl``): memory is one more copy of the weights (16 GB for
            an 8B model in bf16) on top of the weights, their gradients and AdamW's two moments
            (≈ 4× the weights in the optimiser's dtype); checkpoints then hold the full weights.
        gradient_checkpointing: recompute each decoder block in the backward instead of
            storing its activations (non-reentrant ``torch.utils.checkpoint``); saves activation
            memory for ~one extra forward of compute per training forward.
    """

    name_or_path: str = "maestro-lit/tiny"
    dtype: str = "float32"
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    gradient_checkpointing: bool = False


RolloutEngineName = Literal["generate", "fast", "continuous_batching", "vllm_server"]  # keys of policy.engines.ENGINES
# same values as maestro_lit.grpo.SAMPLER_CORRECTION_MODES (TRL's vllm_importance_sampling_mode)
SamplerCorrectionMode = Literal["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]


@dataclass
class FastRolloutSettings:
    """The ``fast`` engine's decode loop; the defaults suit CPU. On CUDA: static_cache, compile, check every 8–16."""

    static_cache: bool = False
    """Fixed-shape KV cache (reused between calls of the same shape); needed by compile."""
    compile: bool = False
    """``torch.compile`` the decode step (with a static cache)."""
    compile_mode: str = "reduce-overhead"
    """torch.compile mode; reduce-overhead replays the step as a CUDA graph on CUDA."""
    stop_check_every: PositiveInt = 1
    """Decode steps between checks that every row has ended (each check is one host sync); >= 1."""
    length_bucket: PositiveInt = 64
    """Static cache only: prompt length rounded up to a multiple of this, so new lengths reuse the compiled step."""


@dataclass
class ContinuousBatchingSettings:
    """The ``continuous_batching`` engine: transformers' paged-attention continuous batching on the trained module."""

    max_memory_percent: UnitIntervalOpenBelow = 0.3
    """Upper bound, in (0, 1], on the share of the device's free memory (after model and optimiser) that the KV cache
    and its batch buffers may take. The cache is sized for the rollout itself (rows × (prompt + max_new_tokens)
    tokens); when that does not fit in this share the rollout stops with an error naming this key, so it never
    takes the memory the training step needs."""
    max_batch_tokens: PositiveInt = 8192
    """Most tokens in one forward (prompts are prefilled in chunks of this size); at least the rollout's row count
    is used, so one decode step serves every row."""


@dataclass
class VllmServerSettings:
    """The ``vllm_server`` engine: an OpenAI-compatible vLLM server started with
    ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True --enable-lora --logprobs-mode processed_logprobs`` (docs/rollout.md)."""

    base_url: str = "http://127.0.0.1:8000"
    """The server's address, without ``/v1``."""
    adapter_name: str = "maestro_policy"
    """Name the pushed LoRA adapter is served under; the completions requests ask for it by this name."""
    adapter_dir: str = ""
    """Folder the adapter is written to (as ``<adapter_dir>/<adapter_name>``) before each load; the server reads
    that path, so on another machine it must be a shared disk. Empty: a temporary folder of this process."""
    timeout_s: PositiveFloat = 600.0
    """Seconds one request (adapter load or completions) may take before the rollout stops with a named error."""


@dataclass
class RolloutSettings:
    """Which engine samples the training rollout, validation and evals, and each engine's settings."""

    engine: RolloutEngineName = "generate"
    """generate (HF ``generate``: the reference), fast (the project's decode loop), continuous_batching
    (transformers' paged attention on the trained module), vllm_server (an OpenAI-compatible vLLM server that
    gets the adapter every step). docs/rollout.md says when to pick which."""
    fast: FastRolloutSettings = field(default_factory=FastRolloutSettings)
    """Settings of the fast engine."""
    continuous_batching: ContinuousBatchingSettings = field(default_factory=ContinuousBatchingSettings)
    """Settings of the continuous_batching engine."""
    vllm_server: VllmServerSettings = field(default_factory=VllmServerSettings)
    """Settings of the vllm_server engine."""
    importance_sampling_correction: bool = True
    """TRL's vllm_importance_sampling_correction: when the engine returns its own log-probs of the sampled tokens
    (vllm_server, continuous_batching), the loss weighs each token by the importance ratio of the scoring pass's
    log-probs over the engine's, bounded as ``importance_sampling_mode`` says, correcting for the engine's
    numerics differing from the training forward. generate and fast sample from the training forward itself,
    return no log-probs, and the loss is unchanged (with μ = 1 the sampler is the trainer)."""
    importance_sampling_mode: SamplerCorrectionMode = "sequence_mask"
    """TRL's vllm_importance_sampling_mode (and its default): the ratio per token or per completion (the sum of
    its tokens' log-ratios), clamped to the bounds (truncate) or set to 0 outside them (mask)."""
    importance_sampling_clip_max: PositiveFloat | None = 3.0
    """TRL's vllm_importance_sampling_clip_max (C, default 3); > 0, null: no upper bound."""
    importance_sampling_clip_min: NonNegativeFloat | None = None
    """TRL's vllm_importance_sampling_clip_min; >= 0, null (default): no lower bound."""

    def __post_init__(self) -> None:
        valid = RolloutEngineName.__args__
        _check(self.engine in valid, "model.rollout.engine", f"one of {valid}", self.engine)
        mode, valid = self.importance_sampling_mode, SamplerCorrectionMode.__args__
        _check(mode in valid, "model.rollout.importance_sampling_mode", f"one of {valid}", mode)
        high, low = self.importance_sampling_clip_max, self.importance_sampling_clip_min
        _check(high is None or high > 0, "model.rollout.importance_sampling_clip_max", "> 0 or null", high)
        _check(low is None or low >= 0, "model.rollout.importance_sampling_clip_min", ">= 0 or null", low)
