"""Rollout: G sampled completions per prompt, and the engine interface every way of sampling them follows.

Rows come out grouped: completion g of prompt b is row ``b * G + g``, the layout every
group statistic in ``grpo.py`` assumes. ``generate`` (HF ``generate``, one batched call) is the
reference engine; the others (``maestro_lit.policy.engines``) must sample from the same distribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from maestro_lit.data.messages import Conversation, Prompt, continues_answer, conversational_prompts, prompt_text
from maestro_lit.policy.sharding import is_sharded
from maestro_lit.rewards.base import RewardInputs, id_lists
from maestro_lit.settings import SamplingSettings


@dataclass
class Rollout:
    """Token tensors and decoded text of N = B·G completions."""

    prompt_ids: torch.Tensor  # [N, P], left-padded
    prompt_mask: torch.Tensor  # [N, P]
    completion_ids: torch.Tensor  # [N, T]
    completion_mask: torch.Tensor  # [N, T], 1 up to and including the first EOS
    completions: list[str]
    truncated: torch.Tensor  # [N] bool: no EOS within max_new_tokens
    # [N, T] the engine's own log-probs of the sampled tokens (0 past the mask), from the distribution it sampled
    # (temperature, top-k, top-p applied); None when the engine is the training forward itself (generate, fast)
    sampler_logprobs: torch.Tensor | None = None

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.completion_mask], dim=1)

    @property
    def completion_start(self) -> int:
        return self.prompt_ids.shape[1]

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(-1)


def reward_inputs(
    rollout: Rollout, prompts: Sequence[Prompt], columns: Mapping[str, list[Any]], group_size: int, **extras: Any
) -> RewardInputs:
    """What the reward components read about a rollout: texts, unpadded ids, masks, the step's prompts,
    columns repeated per completion and G; ``extras`` are the other ``RewardInputs`` fields
    (``trainer_state``, ``logprobs``, ``ref_logprobs``, ``token_entropy``, ``tokenizer``, ``reference_nll``).
    Conversational prompts also give ``prompt_messages``/``completion_messages``, TRL's conversational shape."""
    messages = conversational_prompts(prompts, rollout.completions)
    prompt_messages, completion_messages = messages if messages else (None, None)
    return RewardInputs(
        prompts=[prompt_text(prompt) for prompt in prompts],
        completions=list(rollout.completions),
        prompt_messages=prompt_messages,
        completion_messages=completion_messages,
        completion_ids=id_lists(rollout.completion_ids, rollout.completion_mask),
        columns={key: list(values) for key, values in columns.items()},
        group_size=group_size,
        completion_mask=rollout.completion_mask,
        prompt_ids=rollout.prompt_ids,
        prompt_mask=rollout.prompt_mask,
        **extras,
    )


def expand_groups(batch: dict[str, list], group_size: int) -> tuple[list[Prompt], dict[str, list]]:
    """Prompts and data columns of a batch repeated G times, one row per completion, in group layout."""
    prompts = [p for p in batch["prompt"] for _ in range(group_size)]
    columns = {k: [v for v in values for _ in range(group_size)] for k, values in batch.items() if k != "prompt"}
    return prompts, columns


def render_prompt(tokenizer, conversation: Conversation, template_kwargs: Mapping[str, Any] | None = None) -> str:
    """Chat-template the conversation when the tokenizer has a template; else plain text.

    The generation prompt follows, unless the conversation ends in an assistant turn: generation then continues
    that turn (TRL's ``continue_final_message``). ``template_kwargs`` reach the template as variables
    (``model.sampling.chat_template_kwargs``, e.g. Qwen3's ``enable_thinking``).
    """
    continues = continues_answer(conversation)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            conversation,
            tokenize=False,
            add_generation_prompt=not continues,
            continue_final_message=continues,
            **dict(template_kwargs or {}),
        )
    return "\n\n".join(message["content"] for message in conversation) + ("" if continues else "\n")


def tokenize_prompts(
    tokenizer, conversations: list[Conversation], max_prompt_tokens: int, template_kwargs: Mapping | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Left-padded prompt ids and mask; over-long prompts keep their last tokens.

    Returns the number of prompts that were truncated so the caller can log it.
    """
    texts = [render_prompt(tokenizer, c, template_kwargs) for c in conversations]
    full = tokenizer(texts, add_special_tokens=False)["input_ids"]
    truncated = sum(len(ids) > max_prompt_tokens for ids in full)
    batch = tokenizer(
        texts,
        add_special_tokens=False,
        padding=True,
        truncation=True,
        max_length=max_prompt_tokens,
        return_tensors="pt",
    )
    return batch["input_ids"], batch["attention_mask"], truncated


def completion_mask_from_ids(
    completion_ids: torch.Tensor, eos_token_ids: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask [N, T] covering tokens up to and including the first EOS; and a truncated flag [N]."""
    is_eos = torch.isin(completion_ids, torch.tensor(eos_token_ids, device=completion_ids.device))
    has_eos = is_eos.any(dim=1)
    first_eos = torch.where(
        has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, completion_ids.shape[1], dtype=torch.long)
    )
    positions = torch.arange(completion_ids.shape[1], device=completion_ids.device)
    mask = (positions.unsqueeze(0) <= first_eos.unsqueeze(1)).long()
    return mask, ~has_eos


@torch.no_grad()
def generate(
    policy,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    num_generations: int,
    sampling: SamplingSettings,
    greedy: bool = False,
) -> Rollout:
    """Sample ``num_generations`` completions per prompt with the policy in eval mode."""
    model = policy.model
    was_training = model.training
    model.eval()
    eos_ids = policy.eos_token_ids()
    kwargs = dict(
        max_new_tokens=sampling.max_new_tokens,
        num_return_sequences=num_generations,
        pad_token_id=policy.tokenizer.pad_token_id,
        eos_token_id=eos_ids,
    )
    if is_sharded(policy.causal_lm):  # every forward is collective: a rank whose rows are done keeps stepping
        kwargs["synced_gpus"] = True
    if greedy:
        kwargs.update(do_sample=False, top_p=None, top_k=None, temperature=None)
    else:
        kwargs.update(
            do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or None
        )
    try:
        sequences = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, **kwargs)
    finally:
        model.train(was_training)
    return finish_rollout(policy, prompt_ids, prompt_mask, num_generations, sequences[:, prompt_ids.shape[1] :])


def finish_rollout(
    policy,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    num_generations: int,
    completion_ids: torch.Tensor,
    sampler_logprobs: torch.Tensor | None = None,
) -> Rollout:
    """Mask everything after the first EOS, decode, and lay the prompts out in groups."""
    mask, truncated = completion_mask_from_ids(completion_ids, policy.eos_token_ids())
    completion_ids = completion_ids.masked_fill(mask == 0, policy.tokenizer.pad_token_id)
    if sampler_logprobs is not None:
        sampler_logprobs = sampler_logprobs.masked_fill(mask == 0, 0.0)
    texts = policy.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
    return Rollout(
        prompt_ids=prompt_ids.repeat_interleave(num_generations, dim=0),
        prompt_mask=prompt_mask.repeat_interleave(num_generations, dim=0),
        completion_ids=completion_ids,
        completion_mask=mask,
        completions=[t.strip() for t in texts],
        truncated=truncated,
        sampler_logprobs=sampler_logprobs,
    )


class RolloutEngine:
    """One way of sampling a rollout. ``generate`` returns the same ``Rollout`` as ``rollout.generate``: rows
    grouped b·G + g, masked after the first EOS, sampled with ``sampling``'s temperature, top-p and top-k (greedy:
    argmax) up to ``max_new_tokens``, from the policy as it is now (LoRA active, or merged when the caller merged
    it). ``weights_changed`` is called after each policy update, so an engine holding a copy can refresh it."""

    samples_the_module = True  # False: it samples elsewhere (a server), so merging LoRA for it would be wasted

    def generate(
        self,
        policy,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        num_generations: int,
        sampling: SamplingSettings,
        greedy: bool = False,
    ) -> Rollout:
        raise NotImplementedError

    def weights_changed(self) -> None:
        """Engines that run the trained module itself have nothing to refresh."""


class RolloutEngineError(RuntimeError):
    """An engine could not return the rollout it was asked for (a server error or timeout, missing completions)."""


class GenerateEngine(RolloutEngine):
    """HF ``generate``: the reference every engine is checked against; samples with the training forward's
    module and kernels, so the importance ratio of the first update is exactly 1 (with μ = 1 the sampler is the
    trainer)."""

    def __init__(self, settings: None = None) -> None:
        del settings  # no settings of its own

    def generate(self, policy, prompt_ids, prompt_mask, num_generations, sampling, greedy=False) -> Rollout:
        return generate(policy, prompt_ids, prompt_mask, num_generations, sampling, greedy)
