"""A tiny, randomly initialised reward model saved to a folder, for offline tests and benchmarks.

It exercises the real ``from_pretrained`` path of ``SequenceClassifierScorer`` without a hub:
a 2-layer Llama sequence classifier and a word-level tokenizer with a chat template.
"""

from __future__ import annotations

import os
from pathlib import Path

TINY_RM_ID = "maestro-lit/tiny-rm"
TINY_RM_VERSION = "v1"  # bump when the recipe below changes, so stale caches are rebuilt

WORDS = (
    "the a an is are was of to and in on for with that this it you i not what how why write explain answer question "
    "good bad cat dog sat mat"
).split()
CHAT_TEMPLATE = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"


def build_tiny_reward_model(
    path: str | os.PathLike, seed: int = 0, chat_template: bool = True, num_labels: int = 1
) -> str:
    """Write a tiny ``LlamaForSequenceClassification`` + tokenizer under ``path``; returns the path."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<pad>", "<unk>", "<s>", "</s>", "user", "assistant", ":", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        num_labels=num_labels,
        pad_token_id=vocab["<pad>"],
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
    )
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def ensure_tiny_reward_model() -> str:
    """Build the stand-in once under the project cache (``MAESTRO_LIT_CACHE``) and return its folder.

    Lets configs name ``maestro-lit/tiny-rm`` and run offline, as ``maestro-lit/tiny`` does for the policy.
    """
    import shutil
    import tempfile

    from maestro_lit.tiny import cache_dir

    target = cache_dir() / f"tiny-rm-{TINY_RM_VERSION}"
    if (target / "config.json").exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tiny-rm-"))
    build_tiny_reward_model(staging)
    try:
        staging.rename(target)  # atomic: a half-written model is never picked up
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process won the race
    return str(target)


def resolve_reward_model_path(name_or_path: str) -> str:
    """The stand-in's id → its built-on-demand folder; anything else passes through."""
    return ensure_tiny_reward_model() if name_or_path == TINY_RM_ID else name_or_path
