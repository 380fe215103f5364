"""The ``continuous_batching`` rollout engine: transformers' ``generate_batch`` (paged attention, continuous batching).

Why: HF ``generate`` pads every row to the longest prompt, keeps finished rows in the batch and runs its
per-step Python for the whole batch; the continuous-batching manager packs the live rows' tokens into one
ragged forward over a paged KV cache (its prefix cache lets a prompt's G copies share their full cache blocks)
and drops a row the step it emits EOS. It runs the module being trained (LoRA layers in place, or merged by
the caller), so there is no weight sync and nothing to load.

The KV cache is sized for the rollout it serves (rows × (prompt + max_new_tokens) tokens) and freed when the
call returns, so it holds no memory during the update; ``max_memory_percent`` caps it as a share of the free
device memory. Sampling uses the model's logits processors built from the same ``GenerationConfig`` fields
``rollout.generate`` passes (temperature, top-k, top-p; EOS ids), so every row samples from the distribution
``generate`` samples from. The manager's seed is drawn from torch's global generator, so a run's seed fixes it.

Works with transformers 5.17 (the GPU image) and later: the knobs used here exist in both.
"""

from __future__ import annotations

import math

import torch
from torch.nn.utils.rnn import pad_sequence

from maestro_lit.policy.rollout import Rollout, RolloutEngine, RolloutEngineError, finish_rollout
from maestro_lit.settings import ContinuousBatchingSettings, SamplingSettings

CACHE_PAGE_TOKENS = 256  # transformers' default page (block) size, the same in every version this supports


def cache_blocks_needed(row_prompt_lengths: list[int], max_new_tokens: int) -> int:
    """Cache blocks for every row at full length (an upper bound: rows of one prompt share its full blocks)."""
    return sum(math.ceil((length + max_new_tokens) / CACHE_PAGE_TOKENS) + 1 for length in row_prompt_lengths)


def generation_config(policy, sampling: SamplingSettings, greedy: bool):
    """The ``GenerationConfig`` ``rollout.generate`` samples with, one completion per request."""
    from transformers import GenerationConfig

    eos = policy.eos_token_ids() or -1  # -1: no EOS, as the manager expects
    common = dict(max_new_tokens=sampling.max_new_tokens, eos_token_id=eos, pad_token_id=policy.tokenizer.pad_token_id)
    if greedy:
        return GenerationConfig(do_sample=False, **common)
    return GenerationConfig(
        do_sample=True,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k or None,
        **common,
    )


class ContinuousBatchingEngine(RolloutEngine):
    """``model.rollout.engine: continuous_batching`` (settings ``model.rollout.continuous_batching``)."""

    def __init__(self, settings: ContinuousBatchingSettings | None = None) -> None:
        self.settings = settings or ContinuousBatchingSettings()

    def batching_config(self, row_prompt_lengths: list[int], max_new_tokens: int):
        from transformers.generation import ContinuousBatchingConfig

        rows = len(row_prompt_lengths)
        return ContinuousBatchingConfig(
            num_blocks=cache_blocks_needed(row_prompt_lengths, max_new_tokens),
            max_batch_tokens=max(min(self.settings.max_batch_tokens, sum(row_prompt_lengths)), rows),
            max_memory_percent=self.settings.max_memory_percent,
            return_logprobs=True,
            seed=int(torch.randint(0, 2**31 - 1, ())),
        )

    @torch.no_grad()
    def generate(self, policy, prompt_ids, prompt_mask, num_generations, sampling, greedy=False) -> Rollout:
        prompts = [ids[mask.bool()].tolist() for ids, mask in zip(prompt_ids, prompt_mask, strict=True)]
        # G requests per prompt, not num_return_sequences: greedy configs refuse it, and transformers 5.17's
        # generate_batch leaves the forked rows out of its result
        inputs = [p for p in prompts for _ in range(num_generations)]
        rows = len(inputs)
        config = self.batching_config([len(p) for p in inputs], sampling.max_new_tokens)
        model = policy.causal_lm  # LoRA layers are injected in place; the peft wrapper is not needed
        was_training = model.training
        try:
            results = model.generate_batch(
                inputs,
                generation_config=generation_config(policy, sampling, greedy),
                continuous_batching_config=config,
                progress_bar=False,
            )
        except MemoryError as err:
            raise RolloutEngineError(
                f"model.rollout.continuous_batching.max_memory_percent={self.settings.max_memory_percent} leaves "
                f"too little free device memory for the rollout's KV cache ({rows} rows of up to "
                f"{max(map(len, inputs)) + sampling.max_new_tokens} tokens): raise it, or lower "
                f"model.rollout.continuous_batching.max_batch_tokens ({err})"
            ) from err
        finally:
            model.train(was_training)
        outputs = list(results.values())  # in the order of ``inputs``: G consecutive rows per prompt
        failed = [o for o in outputs if o.error is not None]
        if len(outputs) != rows or failed:
            detail = f"; first error: {failed[0].error}" if failed else ""
            raise RolloutEngineError(
                f"continuous batching returned {len(outputs) - len(failed)} of {rows} completions{detail}"
            )
        device = prompt_ids.device
        pad = policy.tokenizer.pad_token_id
        tokens = [torch.tensor(o.generated_tokens, dtype=prompt_ids.dtype) for o in outputs]
        completion_ids = pad_sequence(tokens, batch_first=True, padding_value=pad).to(device)
        logprobs = [torch.tensor(o.logprobs or [0.0] * len(o.generated_tokens), dtype=torch.float32) for o in outputs]
        sampler_logprobs = None if greedy else pad_sequence(logprobs, batch_first=True).to(device)
        return finish_rollout(policy, prompt_ids, prompt_mask, num_generations, completion_ids, sampler_logprobs)
