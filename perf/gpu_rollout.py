"""Rollout speed of each rollout engine (``maestro_lit.policy.engines``) against HF ``generate``, in one run.

    python perf/gpu_rollout.py                      # GPU: Qwen2-0.5B-shaped, random bf16 weights
    python perf/gpu_rollout.py --tiny               # CPU smoke run on the embedded tiny model
    python perf/gpu_rollout.py --batches 64 --variants generate,fast_compiled,continuous_batching
    python perf/gpu_rollout.py --shape qwen3-8b --batches 32 --new-tokens 128   # the 8B training rollout's shape

Variants: ``generate`` and ``generate_static`` (HF ``generate``, dynamic or static cache), the ``fast`` engine's
settings presets ``fast_dynamic`` (= ``fast``), ``fast_static``, ``fast_compiled``, ``fast_compiled_nograph``, and
``continuous_batching`` (transformers' paged attention; its KV cache sized for the rollout, as in training).

The model is built from a config with random weights (nothing can be downloaded on the GPU
machines); EOS is disabled so every row decodes the full ``--new-tokens``. For each batch
size and variant: one warm-up call (its time includes any compilation), then ``--repeats``
timed calls. Reported: tokens/s, ms per decode step (call time / new tokens, prefill
included), the memory-bandwidth floor per step (weights + mean KV cache read once, over
``--bandwidth-tbs``) and its fraction, peak GPU memory, and the speed-up over ``generate``. On CPU the times
are process CPU time (every thread), so a loaded shared machine still gives comparable ratios.
``--check`` first compares greedy tokens of every other variant with ``generate``; where they differ it
prints each row's first differing position and the reference's top-1 minus top-2 logit there (a
near-tie flipped by a different kernel's rounding has a margin near 0; a broken cache does not need one).
``--check-only`` stops after the check; ``--dtype float32`` repeats it without bf16 rounding.
"""

from __future__ import annotations

import argparse
import time

import benchutil as bu
import torch

from maestro_lit.policy.continuous_batching import ContinuousBatchingEngine
from maestro_lit.policy.fast_rollout import decode_loop
from maestro_lit.settings import ContinuousBatchingSettings, FastRolloutSettings, SamplingSettings

QWEN2_05B = dict(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1e6,
    tie_word_embeddings=True,
)
FAST = {  # variant -> the fast engine's settings
    "fast": FastRolloutSettings(),
    "fast_dynamic": FastRolloutSettings(),
    "fast_static": FastRolloutSettings(static_cache=True),
    "fast_compiled": FastRolloutSettings(
        static_cache=True, compile=True, compile_mode="reduce-overhead", stop_check_every=16
    ),
    "fast_compiled_nograph": FastRolloutSettings(
        static_cache=True, compile=True, compile_mode="default", stop_check_every=16
    ),
}
ENGINES = ("continuous_batching",)  # variants run through their engine class, as training runs them
PEAK_TBS = {"H200": 4.8, "H100": 3.35, "A100": 2.0}


class _BarePolicy:
    """What an engine reads of a ``Policy``, for a bare HF model: ids in, ids out, no EOS (every row runs full)."""

    def __init__(self, model) -> None:
        self.causal_lm = self.model = model

        class _Tokenizer:
            pad_token_id = 0

            @staticmethod
            def batch_decode(ids, skip_special_tokens=True):
                return [""] * len(ids)

        self.tokenizer = _Tokenizer()

    @staticmethod
    def eos_token_ids() -> list[int]:
        return []


def build_model(tiny: bool, device: str, dtype: torch.dtype, shape: str = "qwen2-0.5b"):
    """Random weights of ``shape``: the Qwen2-0.5B numbers above, or any ``perf/memory_estimate.py`` model."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    if tiny:
        from maestro_lit.tiny import ensure_tiny_model

        model = AutoModelForCausalLM.from_pretrained(str(ensure_tiny_model()), dtype=dtype).to(device)
    else:
        from memory_estimate import MODELS, hf_config

        config = Qwen2Config(**QWEN2_05B) if shape == "qwen2-0.5b" else hf_config(MODELS[shape])
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.config.eos_token_id = model.generation_config.eos_token_id = None  # random weights: decode every token
    return model.eval()


def run_variant(model, name, ids, mask, new_tokens, greedy=False):
    """Completion ids [B, T] from one variant (no EOS, so T = new_tokens)."""
    if name.startswith("generate"):
        extra = {"cache_implementation": "static"} if name == "generate_static" else {}
        sample = (
            {"do_sample": False} if greedy else {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": None}
        )
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=0,
            eos_token_id=None,
            **sample,
            **extra,
        )
        return out[:, ids.shape[1] :]
    if name == "continuous_batching":
        engine = ContinuousBatchingEngine(ContinuousBatchingSettings())
        sampling = SamplingSettings(max_new_tokens=new_tokens, max_prompt_tokens=ids.shape[1])
        return engine.generate(_BarePolicy(model), ids, mask, 1, sampling, greedy).completion_ids
    return decode_loop(model, ids, mask, 1, SamplingSettings(max_new_tokens=new_tokens), greedy, [], 0, FAST[name])


def first_mismatch(a: torch.Tensor, b: torch.Tensor) -> list[int]:
    """Per row, the index of the first token where ``a`` and ``b`` differ (the row length where none do)."""
    diff = a != b
    none = torch.full((a.shape[0],), a.shape[1], device=a.device)
    return torch.where(diff.any(1), diff.int().argmax(1), none).tolist()


@torch.no_grad()
def greedy_margins(model, ids: torch.Tensor, completion: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 logit at each completion position, teacher-forced on ``completion`` ([B, T])."""
    full = torch.cat([ids, completion], 1)
    logits = model(input_ids=full, attention_mask=torch.ones_like(full)).logits[:, ids.shape[1] - 1 : -1].float()
    top = logits.topk(2, dim=-1).values
    return top[..., 0] - top[..., 1]


def timed(fn, device):
    """Seconds one call takes: wall time on CUDA; on CPU the process's CPU time (all threads: the continuous
    batching engine decodes in a thread of its own), which a shared machine's load does not inflate."""
    if device == "cuda":
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start
    start = time.process_time()
    fn()
    return time.process_time() - start


def floor_ms(model, batch, prompt_len, new_tokens, tbs):
    """Bytes that must move per decode step (weights + mean KV cache) over peak bandwidth."""
    c = model.config
    elem = next(model.parameters()).element_size()
    weights = sum(p.numel() for p in model.parameters()) * elem
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv = 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * batch * (prompt_len + new_tokens / 2) * elem
    return (weights + kv) / (tbs * 1e12) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="embedded tiny model, small shapes (CPU smoke run)")
    parser.add_argument("--batches", default=None, help="comma list; default 64,256 (GPU) or 4,16 (--tiny)")
    parser.add_argument("--prompt-len", type=int, default=None)
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument(
        "--variants", default=None, help="comma list of generate, generate_static, " + ", ".join([*FAST, *ENGINES])
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shape", default="qwen2-0.5b", help="qwen2-0.5b, or a model of perf/memory_estimate.py")
    parser.add_argument(
        "--bandwidth-tbs", type=float, default=None, help="peak memory bandwidth; default from the GPU's name"
    )
    parser.add_argument(
        "--check", action="store_true", help="greedy agreement of each fast variant with generate first"
    )
    parser.add_argument("--check-only", action="store_true", help="stop after --check (no timing table)")
    parser.add_argument(
        "--dtype", choices=["bfloat16", "float32"], default=None, help="default bfloat16 on CUDA, float32 on CPU"
    )
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(1)  # tiny matmuls gain nothing from more, and OpenMP spin-waits would count as work
    # Every (variant, batch) pair builds its own decoder, i.e. one more compile of the same step;
    # past dynamo's default of 8 it would fall back to eager without a word and time the wrong thing.
    torch._dynamo.config.recompile_limit = 64
    default_dtype = "bfloat16" if device == "cuda" and not args.tiny else "float32"
    dtype = getattr(torch, args.dtype or default_dtype)
    batches = [int(b) for b in (args.batches or ("4,16" if args.tiny else "64,256")).split(",")]
    prompt_len = args.prompt_len or (16 if args.tiny else 128)
    new_tokens = args.new_tokens or (32 if args.tiny else 256)
    default_variants = (
        "generate,fast_dynamic,fast_static,continuous_batching"
        if device == "cpu"
        else "generate,generate_static,fast_dynamic,fast_static,fast_compiled,fast_compiled_nograph,continuous_batching"
    )
    variants = (args.variants or default_variants).split(",")
    name = torch.cuda.get_device_name(0) if device == "cuda" else ""
    tbs = args.bandwidth_tbs or next((v for k, v in PEAK_TBS.items() if k in name), None)
    model = build_model(args.tiny, device, dtype, args.shape)
    gen = torch.Generator(device).manual_seed(0)

    if args.check or args.check_only:
        ids = torch.randint(10, model.config.vocab_size, (8, prompt_len), device=device, generator=gen)
        mask = torch.ones_like(ids)
        reference = run_variant(model, "generate", ids, mask, 32, greedy=True)
        margins = greedy_margins(model, ids, reference)
        print(
            f"greedy check ({dtype}): reference top-1 minus top-2 logit, "
            f"median over 8x32 positions {margins.median():.4f}",
            flush=True,
        )
        for v in variants:
            if not v.startswith("generate"):
                try:
                    tokens = run_variant(model, v, ids, mask, 32, greedy=True)
                    agree = (tokens == reference).float().mean().item()
                    line = f"greedy agreement {v} vs generate: {agree:.1%} of 8x32 tokens"
                    first = first_mismatch(tokens, reference)
                    if agree < 1:
                        there = [
                            f"{margins[row, i]:.4f}" if i < reference.shape[1] else "-" for row, i in enumerate(first)
                        ]
                        line += f"; first differing position per row {first}, reference margin there {there}"
                    print(line, flush=True)
                except Exception as err:  # report and go on: a later session needs every number it can get
                    print(f"greedy check {v} failed: {type(err).__name__}: {err}"[:400], flush=True)

    if args.check_only:
        return
    rows = []
    for batch in batches:
        ids = torch.randint(10, model.config.vocab_size, (batch, prompt_len), device=device, generator=gen)
        mask = torch.ones_like(ids)
        base_tps = None
        for v in variants:
            try:
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()

                def run(v=v, ids=ids, mask=mask):
                    return run_variant(model, v, ids, mask, new_tokens)

                first = timed(run, device)
                secs = bu.median([timed(run, device) for _ in range(args.repeats)])
            except Exception as err:
                print(f"{v} at batch {batch} failed: {type(err).__name__}: {err}"[:400], flush=True)
                rows.append([batch, v, "failed", "-", "-", "-", "-", "-"])
                continue
            tps, ms = batch * new_tokens / secs, secs / new_tokens * 1e3
            base_tps = base_tps or (tps if v == "generate" else None)
            fl = floor_ms(model, batch, prompt_len, new_tokens, tbs) if tbs else None
            peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f}" if device == "cuda" else "-"
            speedup = f"{tps / base_tps:.2f}x" if base_tps else "-"
            rows.append(
                [
                    batch,
                    v,
                    f"{tps:,.0f}",
                    f"{ms:.2f}",
                    f"{fl:.2f}" if fl else "-",
                    f"{fl / ms:.1%}" if fl else "-",
                    f"{first:.1f}",
                    peak,
                    speedup,
                ]
            )
            print(f"  batch {batch} {v}: {tps:,.0f} tok/s, {ms:.2f} ms/step (first call {first:.1f} s)", flush=True)
    what = "tiny Llama (fp32)" if args.tiny else f"{args.shape}-shaped, random weights ({dtype})"
    print(
        f"\n{bu.today()} · {name or bu.machine()} · {what} · "
        f"prompt {prompt_len} + {new_tokens} new tokens · median of {args.repeats}"
    )
    print(
        bu.table(
            [
                "batch",
                "variant",
                "tokens/s",
                "ms/step",
                "floor ms",
                "of floor",
                "first call s",
                "peak GiB",
                "vs generate",
            ],
            [r + ["-"] * (9 - len(r)) for r in rows],
        )
    )


if __name__ == "__main__":
    main()
