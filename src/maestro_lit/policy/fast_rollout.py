"""The ``fast`` rollout engine: a hand-written decode loop in place of HF ``generate``.

Why: for small models, and for any model once the GPU kernels are fast, a decode step
costs more in ``generate``'s per-step Python (input preparation, logits-processor list,
stopping criteria, ``torch.multinomial``) than in the model (docs/design.md §7). This loop keeps
only what a GRPO rollout needs:

- one prefill that keeps logits for the last prompt position only;
- per step: one decoder call on the base model (the peft wrapper is skipped; LoRA layers
  stay active, or merged if the caller merged them), temperature / top-k / top-p, and a
  sampler that draws with the exponential race ``argmax(p / E)``, E ~ Exp(1), which is
  an exact categorical sample without ``multinomial``'s CPU cost or a host sync;
- optional static KV cache (fixed shapes) and ``torch.compile`` of the decode step,
  which on CUDA with ``mode="reduce-overhead"`` replays the step as a CUDA graph. Prompts
  are then left-padded to a multiple of ``length_bucket`` and the decoder (cache + compiled
  step) is kept for the next call with the same shapes: a training run's rollouts differ in
  prompt length, each new length would otherwise recompile (dynamo gives up after 8), and a
  new cache's addresses make cudagraphs re-record;
- finished rows emit the pad token; the loop ends when every row has emitted an EOS
  (checked every ``stop_check_every`` steps: each check is one host sync).

Greedy decoding returns the same tokens as ``rollout.generate`` (tested on the tiny model).
"""

from __future__ import annotations

import inspect
import weakref

import torch
import torch.nn.functional as F

from maestro_lit.policy.rollout import Rollout, RolloutEngine, finish_rollout
from maestro_lit.settings import FastRolloutSettings, SamplingSettings


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus), as HF's default processors apply them."""
    logits = logits.float() / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1)  # ascending, like HF's TopPLogitsWarper
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative <= 1 - top_p
        drop_sorted[:, -1] = False  # always keep the most likely token
        logits = logits.masked_fill(drop_sorted.scatter(1, order, drop_sorted), float("-inf"))
    return logits


def sample_tokens(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One categorical draw per row by the exponential race: argmax(softmax(logits) / Exp(1))."""
    probs = logits.softmax(-1)
    noise = torch.empty_like(probs).exponential_(1.0, generator=generator)
    return (probs / noise).argmax(-1)


def cache_argument_name(model) -> str:
    """``cache`` in recent transformers, ``past_key_values`` before (e.g. 5.17): a wrong name lands in
    ``**kwargs`` silently and every step would decode without its past."""
    parameters = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    raise TypeError(
        f"{type(model).__name__}.forward takes neither `cache` nor `past_key_values`; the fast rollout needs a KV cache"
    )


class _Decoder:
    """Holds the cache and (optionally) the compiled step; a static one is reused while ``key`` matches."""

    def __init__(self, model, batch: int, total_len: int, settings: FastRolloutSettings) -> None:
        from transformers import DynamicCache, StaticCache

        self.model, self.settings = model, settings
        self.key = _decoder_key(model, batch, total_len, settings)
        config = model.config
        self.cache = (
            StaticCache(config=config, max_cache_len=total_len)
            if settings.static_cache
            else DynamicCache(config=config)
        )
        self.cache_kwarg = cache_argument_name(model)
        step = self._step
        if settings.compile:
            step = torch.compile(step, mode=settings.compile_mode, dynamic=False)
        self.step_fn = step

    def _step(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        cache = {self.cache_kwarg: self.cache}
        out = self.model(
            input_ids=tokens, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1, **cache
        )
        return out.logits[:, -1]

    def prefill(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._step(ids, positions, mask)  # never compiled: one call, variable shape

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.settings.compile and tokens.is_cuda:
            torch.compiler.cudagraph_mark_step_begin()
        return self.step_fn(tokens, positions, mask).clone()  # clone: a CUDA-graph output is overwritten on replay


_STATIC_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its last static-cache decoder


def _decoder_key(model, batch: int, total_len: int, settings: FastRolloutSettings) -> tuple:
    weight = next(model.parameters())
    return batch, total_len, weight.device, weight.dtype, settings


def decoder_for(model, batch: int, total_len: int, settings: FastRolloutSettings) -> _Decoder:
    """A fresh decoder, or with a static cache the previous one (cache zeroed) when shapes and settings match."""
    if not settings.static_cache:
        return _Decoder(model, batch, total_len, settings)
    previous = _STATIC_DECODERS.get(model)
    if previous is not None and previous.key == _decoder_key(model, batch, total_len, settings):
        previous.cache.reset()
        return previous
    decoder = _STATIC_DECODERS[model] = _Decoder(model, batch, total_len, settings)
    return decoder


@torch.no_grad()
def fast_generate(
    policy,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    num_generations: int,
    sampling: SamplingSettings,
    greedy: bool = False,
    settings: FastRolloutSettings | None = None,
    generator: torch.Generator | None = None,
) -> Rollout:
    """Drop-in for ``rollout.generate``: same arguments and the same ``Rollout`` (rows grouped b·G + g)."""
    settings = settings or FastRolloutSettings()
    model = policy.causal_lm  # LoRA layers are injected in place; skip the peft wrapper
    was_training = model.training
    model.eval()
    try:
        completion_ids = decode_loop(
            model,
            prompt_ids,
            prompt_mask,
            num_generations,
            sampling,
            greedy,
            policy.eos_token_ids(),
            policy.tokenizer.pad_token_id,
            settings,
            generator,
        )
    finally:
        model.train(was_training)
    return finish_rollout(policy, prompt_ids, prompt_mask, num_generations, completion_ids)


class FastEngine(RolloutEngine):
    """The decode loop above as a rollout engine (``model.rollout.engine: fast``, settings ``model.rollout.fast``)."""

    def __init__(self, settings: FastRolloutSettings | None = None) -> None:
        self.settings = settings or FastRolloutSettings()

    def generate(self, policy, prompt_ids, prompt_mask, num_generations, sampling, greedy=False) -> Rollout:
        return fast_generate(policy, prompt_ids, prompt_mask, num_generations, sampling, greedy, self.settings)


@torch.no_grad()
def decode_loop(
    model,
    prompt_ids,
    prompt_mask,
    num_generations,
    sampling,
    greedy,
    eos_token_ids,
    pad_token_id,
    settings,
    generator=None,
) -> torch.Tensor:
    """Completion token ids [N, T≤max_new_tokens] for a plain HF causal LM; pad after a row's EOS."""
    ids = prompt_ids.repeat_interleave(num_generations, dim=0)
    prompt_mask = prompt_mask.repeat_interleave(num_generations, dim=0)
    if settings.static_cache and settings.length_bucket > 1:  # masked left padding: same positions, same tokens
        extra = -ids.shape[1] % settings.length_bucket
        ids, prompt_mask = F.pad(ids, (extra, 0), value=pad_token_id), F.pad(prompt_mask, (extra, 0), value=0)
    n, p = ids.shape
    t_max = sampling.max_new_tokens
    mask = torch.zeros(n, p + t_max, dtype=prompt_mask.dtype, device=ids.device)
    mask[:, :p] = prompt_mask
    decoder = decoder_for(model, n, p + t_max, settings)
    full = settings.static_cache  # a static cache wants the full-length mask every step (fixed shape)
    positions = (mask[:, :p].cumsum(-1) - 1).clamp(min=0)
    logits = decoder.prefill(ids, positions, mask if full else mask[:, :p])
    next_pos = mask[:, :p].sum(-1, keepdim=True)
    eos = torch.tensor(eos_token_ids or [-1], device=ids.device)
    done = torch.zeros(n, dtype=torch.bool, device=ids.device)
    out = torch.full((n, t_max), pad_token_id, dtype=ids.dtype, device=ids.device)
    for t in range(t_max):
        tok = (
            logits.argmax(-1)
            if greedy
            else sample_tokens(filter_logits(logits, sampling.temperature, sampling.top_k, sampling.top_p), generator)
        )
        tok = tok.masked_fill(done, pad_token_id)
        out[:, t] = tok
        done |= torch.isin(tok, eos)
        last = t == t_max - 1
        if last or ((t + 1) % settings.stop_check_every == 0 and bool(done.all())):
            return out[:, : t + 1]
        mask[:, p + t] = 1
        logits = decoder.decode(tok.unsqueeze(-1), next_pos, mask if full else mask[:, : p + t + 1])
        next_pos = next_pos + 1
    return out
