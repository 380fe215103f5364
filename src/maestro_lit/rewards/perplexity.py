"""``ppl``: NOVER's reasoning-perplexity reward (docs/paper.md#rewards) and the one reference forward it needs.

For each completion in the format, the reference model (adapters off, or a synced reference
adapter) reads ``prompt + <think>…</think> + "\\n<answer>\\n{reference}\\n</answer>"``; the score
is built from the NLL of the answer tokens only:

    log ppl = mean_answer_tokens(NLL) / max(1, 1 + log10(reasoning tokens))

The component returns ``−log ppl`` (higher = better, finite, so it logs and averages well);
an invalid format or a missing reference is NaN. NOVER's reward is the within-group rank of
ppl (best → 1, i-th → (n_valid − rank)/n_valid, invalid → 0), which is exactly
``normalization="rank"`` in ``grpo.normalize_components``: the rank is taken there, once, so
this component stays a plain per-completion score. ``exp`` and ``−`` are monotone, so the
rank equals the rank of ppl itself.

Choices where NOVER's text is silent: the prompt is the chat-templated prompt the policy saw
(``prompt_ids``); the reasoning block (tags included) and the answer are tokenised as text,
separately, without special tokens, so "reasoning tokens" counts the whole ``<think>`` block;
no truncation (long sequences cost memory, never silently change the score).

All valid completions of the rollout go through **one** batched no-grad forward, run by the
``reference_nll`` callable the trainer passes (``ReferenceNLL`` below).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from maestro_lit.rewards.base import Normalization, RewardComponent
from maestro_lit.rewards.columns import column, is_missing
from maestro_lit.rewards.nover_format import ResponseFormat

ANSWER_TEMPLATE = "\n<{tag}>\n{reference}\n</{tag}>"


class ReferenceNLL:
    """Per-token NLL under the reference model, one no-grad forward for the whole batch.

    ``__call__(input_ids [N, L], attention_mask [N, L], target_mask [N, L]) -> NLL [N, L]``:
    entry (i, t) is −log p(input_ids[i, t] | input_ids[i, :t]) where ``target_mask`` is true
    and 0 elsewhere. The LM head runs only on the positions that predict a target token (in
    chunks of ``chunk_rows``), so a 150k vocabulary costs answer-length rows, not sequence-length.
    ``context`` switches the reference on (e.g. ``Policy.reference``). ``calls`` counts forwards.
    """

    def __init__(
        self,
        backbone: nn.Module,
        lm_head: nn.Module,
        context: Callable[[], AbstractContextManager[Any]] | None = None,
        chunk_rows: int = 1024,
    ) -> None:
        self.backbone, self.lm_head, self.chunk_rows = backbone, lm_head, chunk_rows
        self.context = context or nullcontext
        self.calls = 0

    @property
    def collective(self) -> bool:
        """Whether the forward is collective (FSDP2-sharded layers): then every rank must call it, rows or not."""
        try:
            from torch.distributed.fsdp import FSDPModule
        except ImportError:  # a torch built without distributed
            return False
        return any(isinstance(module, FSDPModule) for module in self.backbone.modules())

    @torch.no_grad()
    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, target_mask: torch.Tensor
    ) -> torch.Tensor:
        device = next(self.lm_head.parameters()).device
        input_ids, attention_mask, target_mask = (
            input_ids.to(device),
            attention_mask.to(device),
            target_mask.to(device).bool(),
        )
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        self.calls += 1
        with self.context():
            hidden = self.backbone(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
            ).last_hidden_state
            predicts = target_mask[:, 1:]  # position t-1 predicts token t
            states, targets = hidden[:, :-1][predicts], input_ids[:, 1:][predicts]
            nll = torch.cat(
                [
                    F.cross_entropy(
                        self.lm_head(states[s : s + self.chunk_rows]).float(),
                        targets[s : s + self.chunk_rows],
                        reduction="none",
                    )
                    for s in range(0, states.shape[0], self.chunk_rows)
                ]
                or [hidden.new_zeros(0, dtype=torch.float32)]
            )
        out = torch.zeros(input_ids.shape, dtype=torch.float32, device=device)
        out[:, 1:][predicts] = nll
        return out


def length_factor(reasoning_tokens: int) -> float:
    """NOVER's reasoning-length normaliser max(1, 1 + log10(n)); 1 for an empty block."""
    return max(1.0, 1.0 + math.log10(reasoning_tokens)) if reasoning_tokens > 0 else 1.0


class ReasoningPerplexity(RewardComponent):
    """NOVER's r_ppl as ``−log ppl`` per completion (rank it with ``normalization="rank"``, the default)."""

    needs_policy = True

    def __init__(
        self,
        reference_column: str = "reference",
        think_tag: str = "think",
        answer_tag: str = "answer",
        allow_empty: bool = False,
        normalization: Normalization = "rank",
        name: str = "ppl",
    ) -> None:
        self.format = ResponseFormat(think_tag, answer_tag, allow_empty)
        self.reference_column, self.normalization, self.name = reference_column, normalization, name

    def _encode(self, tokenizer: Any, text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def build_batch(
        self,
        completions: Sequence[str],
        references: Sequence[Any],
        tokenizer: Any,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
    ) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """Right-padded (prompt, reasoning, answer) ids of the scorable rows.

        Returns (row indices, input_ids, attention_mask, target_mask, reasoning token counts).
        """
        rows, sequences, answer_lengths, reasoning_counts = [], [], [], []
        answer_cache: dict[str, list[int]] = {}  # G completions share one reference
        for i, (completion, reference) in enumerate(zip(completions, references)):
            parsed = self.format.parse(completion)
            if parsed is None or is_missing(reference):
                continue
            prompt = prompt_ids[i][prompt_mask[i].bool()].tolist()
            reasoning = self._encode(tokenizer, parsed.think_block)
            key = str(reference)
            if key not in answer_cache:
                answer_cache[key] = self._encode(
                    tokenizer, ANSWER_TEMPLATE.format(tag=self.format.answer_tag, reference=key)
                )
            answer = answer_cache[key]
            rows.append(i)
            sequences.append(prompt + reasoning + answer)
            answer_lengths.append(len(answer))
            reasoning_counts.append(len(reasoning))
        width = max((len(s) for s in sequences), default=0)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        target_mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, (sequence, n_answer) in enumerate(zip(sequences, answer_lengths)):
            input_ids[r, : len(sequence)] = torch.tensor(sequence)
            attention_mask[r, : len(sequence)] = 1
            target_mask[r, len(sequence) - n_answer : len(sequence)] = True
        return rows, input_ids, attention_mask, target_mask, reasoning_counts

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        tokenizer: Any,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        reference_nll: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        **kwargs: Any,
    ) -> torch.Tensor:
        n = len(completions)
        if prompt_ids.shape[0] != n or prompt_mask.shape != prompt_ids.shape:
            raise ValueError(
                f"reward component '{self.name}': prompt_ids {tuple(prompt_ids.shape)} / prompt_mask must be [{n}, P]"
            )
        if self.reference_column not in kwargs:
            raise ValueError(
                f"reward component '{self.name}' needs the dataset column '{self.reference_column}' (reference_column)"
            )
        references = column(kwargs, self.reference_column, n)
        rows, input_ids, attention_mask, target_mask, reasoning_counts = self.build_batch(
            completions, references, tokenizer, prompt_ids.cpu(), prompt_mask.cpu()
        )
        scores = torch.full((n,), float("nan"), dtype=torch.float32)
        if not rows:
            if getattr(reference_nll, "collective", False):  # FSDP2: every rank runs the forward, scorable or not
                pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
                one = torch.full((1, 1), pad, dtype=torch.long)
                reference_nll(one, torch.ones_like(one), torch.zeros_like(one, dtype=torch.bool))
            return scores  # nothing scorable: no forward (unless collective)
        nll = reference_nll(input_ids, attention_mask, target_mask).float().cpu()
        mean_nll = (nll * target_mask).sum(-1) / target_mask.sum(-1).clamp(min=1)
        factors = torch.tensor([length_factor(c) for c in reasoning_counts], dtype=torch.float32)
        scores[torch.tensor(rows)] = -(mean_nll / factors)
        return scores
