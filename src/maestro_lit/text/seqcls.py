"""Score (prompt, completion) pairs with an HF sequence-classification reward model.

Used by the reward-model reward component and by the reward-model benchmark judge, so both
read a reward model the same way: render the pair with the model tokenizer's chat template
(reward models such as Skywork-Reward are trained on chat-formatted pairs), run batched,
and take ``logits[:, 0]`` as the score. bf16 on CUDA under ``torch_dtype="auto"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class SequenceClassifierScorer:
    """Lazy, batched reward-model scorer; a plain object so it never joins a state_dict."""

    def __init__(
        self,
        name_or_path: str,
        batch_size: int = 8,
        max_length: int = 1024,
        torch_dtype: str = "auto",
        trust_remote_code: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"SequenceClassifierScorer.batch_size must be >= 1, got {batch_size}")
        self.name_or_path, self.batch_size, self.max_length = name_or_path, batch_size, max_length
        self.torch_dtype, self.trust_remote_code = torch_dtype, trust_remote_code
        self.device = torch.device("cpu")
        self._model = None
        self._tokenizer = None

    def _dtype(self) -> torch.dtype:
        if self.torch_dtype == "auto":
            return torch.bfloat16 if self.device.type == "cuda" else torch.float32
        return getattr(torch, self.torch_dtype)

    def to(self, device: str | torch.device) -> SequenceClassifierScorer:
        self.device = torch.device(device)
        if self._model is not None:
            self._model.to(device=self.device, dtype=self._dtype())
        return self

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.name_or_path, trust_remote_code=self.trust_remote_code)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForSequenceClassification.from_pretrained(
            self.name_or_path, dtype=self._dtype(), trust_remote_code=self.trust_remote_code
        )
        if model.config.pad_token_id is None:
            # Without it the model cannot find each row's last real token in a padded batch.
            model.config.pad_token_id = tok.pad_token_id
        # The explicit cast also covers transformers versions that ignore the ``dtype`` kwarg.
        self._tokenizer, self._model = tok, model.to(device=self.device, dtype=self._dtype()).eval()

    def render(self, prompt: str, completion: str) -> str:
        """The text the reward model reads: its chat template when it has one, else a plain join."""
        if getattr(self._tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
            return self._tokenizer.apply_chat_template(messages, tokenize=False)
        return f"{prompt}\n\n{completion}"

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """One float32 CPU score per pair, in input order."""
        if len(prompts) != len(completions):
            raise ValueError(
                f"score needs equal-length lists, got {len(prompts)} prompts and {len(completions)} completions"
            )
        if self._model is None:
            self._load()
        templated = bool(getattr(self._tokenizer, "chat_template", None))
        texts = [self.render(p, c) for p, c in zip(prompts, completions)]
        # Length-sorted batches waste less compute on padding; results are put back in order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        scores = torch.empty(len(texts), dtype=torch.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=not templated,
                    return_tensors="pt",
                ).to(self.device)
                out = self._model(**batch)
                # ArmoRM-style remote-code models expose a scalar ``score``; standard heads expose logits.
                values = out.score if getattr(out, "score", None) is not None else out.logits[:, 0]
                scores[idx] = values.reshape(len(idx), -1)[:, 0].float().cpu()
        return scores
