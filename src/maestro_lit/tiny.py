"""The embedded default model: a ~1M-parameter Llama with a BPE tokenizer of our own.

Nothing can be downloaded here, so the quick start and the tests need a model that the
project can make. It is built once, warmed up with a short supervised pass on the shipped
prompt/response pairs (so completions are readable words rather than noise), saved with
``save_pretrained`` into a cache folder, and from then on loaded through exactly the same
``from_pretrained(path)`` code that a user's hub id or local checkpoint takes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from maestro_lit.data.templates import question_prompt
from maestro_lit.paths import TRAIN_PROMPTS

TINY_MODEL_ID = "maestro-lit/tiny"
TINY_VERSION = "v4"  # bump when the recipe below changes, so stale caches are rebuilt

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]

FORMATTED_SHARE = 0.3  # of the NOVER-template warm-up answers that use the <think>/<answer> format

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where built models live: ``$MAESTRO_LIT_CACHE`` or ``~/.cache/maestro_lit``."""
    return Path(os.environ.get("MAESTRO_LIT_CACHE", Path.home() / ".cache" / "maestro_lit"))


def resolve_model_path(name_or_path: str) -> str:
    """Map an embedded model's id to its (built-on-demand) folder; pass anything else through."""
    if name_or_path == TINY_MODEL_ID:
        return str(ensure_tiny_model())
    return name_or_path


def read_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    return [(row["prompt"], row.get("response") or row.get("reference", "")) for row in read_rows(path)]


_THOUGHTS = {
    "creative": (
        "I picture the scene and pick vivid words.",
        "A short, vivid image will do.",
        "I want a fresh, playful line.",
    ),
    "factual": (
        "I recall the fact the question asks for.",
        "This is a known fact; I state it plainly.",
        "I check what I know about it.",
    ),
    "concise": ("One short sentence is enough.", "I keep it brief and clear.", "The core idea fits in a few words."),
}


def formatted_pairs(rows: list[dict], share: float, seed: int = 0) -> list[tuple[str, str]]:
    """The prompts in NOVER's template, a ``share`` of them answered in its format and the rest plainly.

    Why: the paper's quick start rewards ``<think>…</think><answer>…</answer>``; a model that never
    writes it gives the format reward nothing to select, one that always does leaves nothing to
    learn. A partly formatted warm-up makes the format a behaviour GRPO can reinforce.
    """
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.rand(len(rows), generator=generator) < share
    pairs = []
    for i, (row, formatted) in enumerate(zip(rows, chosen.tolist())):
        prompt = question_prompt(row["prompt"])
        answer = row.get("response") or row["reference"]
        if formatted:
            thoughts = _THOUGHTS.get(row.get("category", ""), _THOUGHTS["concise"])
            answer = f"<think>\n{thoughts[i % len(thoughts)]}\n</think>\n\n<answer>\n{answer}\n</answer>"
        pairs.append((prompt, answer))
    return pairs


def build_tokenizer(texts: list[str], vocab_size: int = 2048):
    """Train a byte-level BPE on ``texts`` and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<|pad|>", eos_token="<|end|>", padding_side="left"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(tokenizer, hidden_size: int = 128, layers: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 8 // 3,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def warm_up(
    model, tokenizer, pairs: list[tuple[str, str]], steps: int = 400, batch_size: int = 16, lr: float = 3e-3
) -> float:
    """Supervised pass on (prompt, response) pairs, loss on the response only. Returns final loss."""
    prompts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p, _ in pairs
    ]
    rows = []
    for prompt, (_, response) in zip(prompts, pairs):
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((p_ids + r_ids, [-100] * len(p_ids) + r_ids))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        batch = [rows[i] for i in torch.randint(len(rows), (batch_size,)).tolist()]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((batch_size, width), tokenizer.pad_token_id)
        labels = torch.full((batch_size, width), -100)
        attention = torch.zeros((batch_size, width), dtype=torch.long)
        for i, (ids, lab) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(lab)] = torch.tensor(lab)
            attention[i, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    return loss.item()


def ensure_tiny_model(root: Path | None = None, warmup_steps: int = 400) -> Path:
    """Build, warm up and save the embedded model once; later calls return the cached folder."""

    def pairs() -> list[tuple[str, str]]:
        return _read_pairs(TRAIN_PROMPTS) + formatted_pairs(read_rows(TRAIN_PROMPTS), FORMATTED_SHARE)

    return ensure_built((root or cache_dir()) / f"tiny-{TINY_VERSION}", pairs, warmup_steps)


def ensure_built(target: Path, pairs: Callable[[], list[tuple[str, str]]], warmup_steps: int) -> Path:
    """Build (tokenizer, model, warm-up on ``pairs()``) into ``target`` once, atomically; return it."""
    if (target / "config.json").exists():
        return target
    log.warning("Building the embedded model %s (runs once, one to two minutes on CPU)", target)
    corpus = pairs()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        tokenizer = build_tokenizer([text for pair in corpus for text in pair])
        model = build_model(tokenizer)
        loss = warm_up(model, tokenizer, corpus, steps=warmup_steps)
    log.warning("Warm-up of %s finished with loss %.3f", target.name, loss)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tiny-"))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)  # atomic: a half-written model is never picked up
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process won the race
    return target
