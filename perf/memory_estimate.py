"""Peak GPU memory of each GPU recipe, ESTIMATED by arithmetic (nothing here is measured).

    python perf/memory_estimate.py            # model × overlay table, in GB (1e9 bytes)
    python perf/memory_estimate.py --detail   # the terms of each row

The model shapes below are copied from the models' public ``config.json`` files (no download);
the run settings (prompts, G, token budgets, minibatches, merging, 4-bit, LoRA r) are read from
the composed configs themselves (``base/gpu.yaml`` (the paper's rewards and Conductor) + model +
``tasks/webinstruct`` + overlay, the README's GPU recipes), so the table follows the files. Terms, in bytes:

- weights: bf16 2·P; 4-bit NF4: 0.516 B per decoder-linear parameter (4 bits + double-quantised
  block scales), and embeddings / lm_head / norms in fp32 (peft's ``prepare_model_for_kbit_training``
  upcasts them; tests/test_gpu_compositions.py checks it); full FT: fp32 4·P (``overlays/full_ft.yaml``).
- trainable state: LoRA parameters are fp32 (peft casts adapters up): 4 weight + 4 grad + 8 AdamW
  = 16 B each; full FT: 4 grad + 8 AdamW per parameter, the frozen fp32 reference copy 4·P, and
  bf16 autocast's cached copy of the weights 2·P.
- merged rollout buffer (``merge_adapters_for_rollout``): one bf16 copy of the decoder linears.
- rollout KV cache: N completions × (prompt + new tokens) × layers × 2 (K, V) × kv_heads × head_dim × 2 B.
- activations kept for one minibatch's backward (m = N / num_minibatches rows of T tokens, bf16; with
  ``num_minibatches: auto``, m is the largest divisor of N whose row terms fit ``auto_memory_fraction`` of what the
  other terms leave of a ``--card-gb`` card: arithmetic standing in for the run's measured one-row probe):
  without checkpointing each layer keeps ≈ 6·d + 2·kv_dim + 4·i values per token (norm inputs and
  outputs, q/k/v, attention output, gate/up/SiLU/product of the MLP); with gradient checkpointing
  only each layer's input (d per token) plus one layer's full set during its recompute.
- logits of that minibatch: m·T·V bf16, plus one row's fp32 log-softmax and its gradient (2 × T·V × 4 B).
- reward models (bf16, resident): ``pref``'s Skywork-Reward-V2-Qwen3-4B. ``ppl``'s reference forward reuses the
  policy's weights (adapters off, or the synced reference adapter); the tasks' LLM judge runs on its own server.

FSDP rows: ``overlays/fsdp.yaml`` is FSDP2 with one unit per decoder layer (``policy/sharding.py``), so weights,
trainable state and full fine-tuning's reference copy divide by the overlay's ``trainer.devices``; one layer's
gathered weights (not counted) are added while it runs. Not counted: the CUDA context (~0.5 GB), allocator fragmentation
(often 10-20 %), temporary buffers of generate, and the scoring pass of the rewards. Treat a row as
a lower bound ± 15 %.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9
CARD_GB = 80.0  # the card ``num_minibatches: auto`` rows are sized for (--card-gb)


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a decoder-only model's ``config.json`` that memory depends on."""

    family: str  # qwen2 | qwen3 | llama: the transformers config class
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tie_embeddings: bool
    rope_theta: float
    rope_scaling: dict | None = None

    @property
    def linear_params_per_layer(self) -> int:
        d, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        bias = q + 2 * kv if self.family == "qwen2" else 0  # Qwen2 has q/k/v biases
        return d * q + 2 * d * kv + q * d + 3 * d * i + bias

    @property
    def lora_dims_per_layer(self) -> int:
        """Σ (in + out) over the seven linears LoRA's all-linear targets in each layer."""
        d, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return (d + q) + 2 * (d + kv) + (q + d) + 2 * (d + i) + (i + d)

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    @property
    def params(self) -> int:
        norms = self.layers * (2 * self.hidden + (2 * self.head_dim if self.family == "qwen3" else 0)) + self.hidden
        return self.layers * self.linear_params_per_layer + self.embedding_params + norms


# From each model's public config.json (hub page "Files"), model file name -> shape.
MODELS: dict[str, ModelShape] = {
    "qwen2.5-0.5b-instruct": ModelShape("qwen2", 896, 4864, 24, 14, 2, 64, 151936, True, 1e6),
    "qwen2.5-1.5b-instruct": ModelShape("qwen2", 1536, 8960, 28, 12, 2, 128, 151936, True, 1e6),
    "qwen2.5-7b-instruct": ModelShape("qwen2", 3584, 18944, 28, 28, 4, 128, 152064, False, 1e6),
    "qwen3-8b": ModelShape("qwen3", 4096, 12288, 36, 32, 8, 128, 151936, False, 1e6),
    "llama-3.1-8b-instruct": ModelShape(
        "llama",
        4096,
        14336,
        32,
        32,
        8,
        128,
        128256,
        False,
        5e5,
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    ),
}
REWARD_PARAMS = {"pref RM (Skywork-Reward-V2-Qwen3-4B)": 4.02e9}
JUDGE_PARAMS = 0.0  # the paper tasks' judge: an OpenAI-compatible server on other GPUs (or the offline proxy)
OVERLAYS = ("", "qlora", "full_ft", "ddp", "fsdp")


def hf_config(shape: ModelShape, **overrides):
    """The transformers config of ``shape`` (the real class of its family); ``overrides`` shrink it for a stand-in."""
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config

    cls = {"qwen2": Qwen2Config, "qwen3": Qwen3Config, "llama": LlamaConfig}[shape.family]
    kwargs = dict(
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        vocab_size=shape.vocab,
        tie_word_embeddings=shape.tie_embeddings,
        rope_theta=shape.rope_theta,
    )
    if shape.rope_scaling:
        kwargs["rope_scaling"] = dict(shape.rope_scaling)
    kwargs.update(overrides)
    return cls(**kwargs)


@dataclass(frozen=True)
class Run:
    """The settings of one composed recipe that memory depends on."""

    prompts: int
    generations: int
    prompt_tokens: int
    new_tokens: int
    minibatches: int | str  # a count, or "auto" (see estimate)
    lora_r: int | None  # None: full fine-tuning
    load_in_4bit: bool
    merged_rollout: bool
    gradient_checkpointing: bool
    devices: int
    auto_memory_fraction: float = 0.8

    @classmethod
    def from_config(cls, config: dict) -> Run:
        m = config["model"]
        lora = m["policy"].get("lora")
        return cls(
            prompts=config["data"]["batch_size"],
            generations=m["grpo_settings"]["num_generations"],
            prompt_tokens=m["sampling"]["max_prompt_tokens"],
            new_tokens=m["sampling"]["max_new_tokens"],
            minibatches=m["grpo_settings"]["num_minibatches"],
            lora_r=lora["r"] if lora else None,
            load_in_4bit=bool(m["policy"].get("load_in_4bit")),
            merged_rollout=bool(m["sampling"].get("merge_adapters_for_rollout")),
            gradient_checkpointing=bool(m["policy"].get("gradient_checkpointing")),
            devices=int(config["trainer"].get("devices") or 1),
            auto_memory_fraction=float(m["grpo_settings"].get("auto_memory_fraction", 0.8)),
        )


def rows_per_backward(shape: ModelShape, run: Run, card_gb: float = CARD_GB, sharded_over: int = 1) -> int:
    """Rows per backward: N / num_minibatches, or under ``auto`` the largest divisor of N whose per-row terms
    (activations, logits) fit ``auto_memory_fraction`` of what the other terms leave of the card."""
    n_rows = run.prompts * run.generations
    if run.minibatches != "auto":
        return max(1, n_rows // int(run.minibatches))
    one = estimate(shape, run, sharded_over, rows=1)
    per_row = one["activations"] + one["logits"]
    free = card_gb * GB - (sum(one.values()) - per_row)
    fitting = [d for d in range(1, n_rows + 1) if n_rows % d == 0 and d * per_row <= run.auto_memory_fraction * free]
    return max(fitting, default=1)


def estimate(
    shape: ModelShape, run: Run, sharded_over: int = 1, rows: int | None = None, card_gb: float = CARD_GB
) -> dict[str, float]:
    """Bytes per term for one GPU; ``sharded_over`` > 1 divides weights, trainable state and the reference copy
    (FSDP2 with one unit per decoder layer: ``overlays/fsdp.yaml``).
    ``rows``: rows per backward (default: ``rows_per_backward`` on a ``card_gb`` card)."""
    p, d, kv = shape.params, shape.hidden, shape.kv_heads * shape.head_dim
    linear = shape.layers * shape.linear_params_per_layer
    n_rows = run.prompts * run.generations
    tokens = run.prompt_tokens + run.new_tokens
    rows = rows_per_backward(shape, run, card_gb, sharded_over) if rows is None else rows
    terms: dict[str, float] = {}
    if run.lora_r is None:
        terms["weights"] = 4 * p / sharded_over
        terms["grads+AdamW"] = 12 * p / sharded_over
        terms["reference copy"] = 4 * p / sharded_over  # sharded like the policy under FSDP2
        terms["autocast bf16 copy"] = 2 * p / sharded_over  # bf16-mixed caches the cast weights during a forward
    else:
        terms["weights"] = (0.516 * linear + 4 * (p - linear) if run.load_in_4bit else 2 * p) / sharded_over
        terms["LoRA (w+grad+AdamW)"] = 16 * run.lora_r * shape.layers * shape.lora_dims_per_layer
    if run.merged_rollout:
        terms["merged rollout copy"] = 2 * linear
    terms["KV cache (rollout)"] = n_rows * tokens * shape.layers * 2 * kv * 2
    per_token_layer = 6 * d + 2 * kv + 4 * shape.intermediate
    if run.gradient_checkpointing:
        terms["activations"] = 2 * rows * tokens * (shape.layers * d + per_token_layer)
    else:
        terms["activations"] = 2 * rows * tokens * shape.layers * per_token_layer
    terms["logits"] = 2 * rows * tokens * shape.vocab + 2 * 4 * tokens * shape.vocab
    terms["rewards+judges"] = 2 * (sum(REWARD_PARAMS.values()) + JUDGE_PARAMS)
    return terms


def recipe_config(model: str, overlay: str) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from maestro_lit.cli import compose

    parts = ["base/gpu", f"models/{model}", "tasks/webinstruct"] + ([f"overlays/{overlay}"] if overlay else [])
    return compose([arg for part in parts for arg in ("--config", str(ROOT / "configs" / f"{part}.yaml"))])


def table(detail: bool = False, card_gb: float = CARD_GB) -> str:
    lines = [
        "ESTIMATES (arithmetic, not measured), GB per GPU, rollout + backward peak:",
        f"{'model':24s} {'overlay':8s} {'params':>7s} {'N':>4s} {'rows':>4s} {'total':>7s} {'no ckpt':>8s}  "
        "terms (with checkpointing)",
    ]
    for model, shape in MODELS.items():
        for overlay in OVERLAYS:
            run = Run.from_config(recipe_config(model, overlay))
            shards = int(recipe_config(model, overlay)["trainer"]["devices"]) if overlay == "fsdp" else 1
            terms = estimate(shape, run, shards, card_gb=card_gb)
            no_ckpt = Run(**{**run.__dict__, "gradient_checkpointing": False})
            off = estimate(shape, no_ckpt, shards, card_gb=card_gb)
            rows = rows_per_backward(shape, run, card_gb, shards)
            text = ", ".join(f"{k} {v / GB:.1f}" for k, v in terms.items()) if detail else ""
            lines.append(
                f"{model:24s} {overlay or '-':8s} {shape.params / 1e9:6.2f}B {run.prompts * run.generations:4d} "
                f"{rows:4d} {sum(terms.values()) / GB:7.1f} {sum(off.values()) / GB:8.1f}  {text}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detail", action="store_true", help="print every term of each row")
    parser.add_argument("--card-gb", type=float, default=CARD_GB, help="GPU memory num_minibatches: auto sizes for")
    args = parser.parse_args()
    print(table(args.detail, args.card_gb))


if __name__ == "__main__":
    main()
