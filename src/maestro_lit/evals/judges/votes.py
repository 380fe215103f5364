"""The 3-vote judge protocol and its judges: OpenAI-compatible HTTP, local HF causal LM, offline proxy.

Protocol: each item gets ``VOTES`` = 3 votes (``judge_prompts``: three prompt variants, or one
prompt sampled three times with ``vote_mode="samples"``). A reference (YES/NO) vote is one request;
a pairwise vote is two, the model's response in slot A and then in slot B (``vote_prompts``): it
is favourable when both orders pick the model, unfavourable when both pick the reference, a tie
(0.5) when they disagree, unparsed when either order has no verdict. So a reference item costs 3
requests and a pairwise item 6.

An item is favourable (1) when its favourable votes outnumber its unfavourable ones among the
parsed votes (a tie vote counts for neither), unfavourable (0) when they are outnumbered, and on
an even balance a tie (0.5) on a pairwise item but unfavourable on a reference item (a 1–1 split,
one vote unparsed, has not shown the answer consistent). An item with no parsed vote is
*undecided* and left out of the preference, which is ``100 × sum(item outcomes) / decided``: a
pairwise tie counts half a win, as in MT-Bench's and Arena-Hard's win rates, so a judge that
always picks one slot scores 50. Unparsed replies are counted, never raised.

The prompted judges add only the protocol to parts the project has once: the HTTP judge sends
through ``HttpJudge.replies`` (its retries, timeouts, overall deadline and thread pool), and the
local judge loads its tokenizer and renders chats as the policy does (``policy.model.load_tokenizer``,
``policy.rollout.render_prompt``), so every model in a run sees prompts in one format.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from maestro_lit.evals.judges.base import PROXY, Messages, Tagged
from maestro_lit.evals.judges.http import HttpJudge
from maestro_lit.evals.judges.vote_prompts import ORDERS, JudgeItem, parse_vote, vote_messages

log = logging.getLogger(__name__)
VOTES = 3
FALSE_ACCEPT_WARN = 0.2  # a judge accepting more of the negative controls than this is not trusted (PaperTask)


Vote = Optional[float]  # True/1 favourable, False/0 unfavourable, 0.5 a pairwise tie, None no verdict


@dataclass(frozen=True)
class Verdict:
    """One item's votes; ``pairwise`` items may tie (see the module docstring)."""

    votes: tuple[Vote, ...]
    pairwise: bool = False

    @property
    def outcome(self) -> Optional[float]:
        """1 favourable, 0 unfavourable, 0.5 a pairwise tie; ``None`` when no vote parsed (undecided)."""
        parsed = [float(v) for v in self.votes if v is not None]
        if not parsed:
            return None
        mean = sum(parsed) / len(parsed)  # > 0.5 exactly when favourable votes outnumber unfavourable ones
        if mean > 0.5:
            return 1.0
        return 0.5 if mean == 0.5 and self.pairwise else 0.0

    @property
    def favourable(self) -> Optional[bool]:
        """Whether the item is a win for the model; ``None`` when undecided (a tie is not a win)."""
        outcome = self.outcome
        return None if outcome is None else outcome == 1.0


def pair_vote(orders: Sequence[Optional[bool]]) -> Vote:
    """One vote from its requests: a reference vote's single verdict, or a pairwise vote's two orders."""
    if len(orders) == 1:
        return orders[0]
    if any(o is None for o in orders):
        return None
    if all(orders):
        return True
    return 0.5 if any(orders) else False


@dataclass(frozen=True)
class JudgeSummary:
    preference: float  # 100 × mean outcome of the decided items, a pairwise tie = 0.5 (NaN when none decided)
    unparsed_share: float  # fraction of votes without a verdict
    undecided: int  # items with no parsed vote


def summarise(verdicts: Sequence[Verdict]) -> JudgeSummary:
    decided = [v.outcome for v in verdicts if v.outcome is not None]
    votes = [vote for v in verdicts for vote in v.votes]
    preference = 100.0 * sum(decided) / len(decided) if decided else float("nan")
    unparsed = sum(vote is None for vote in votes) / len(votes) if votes else float("nan")
    return JudgeSummary(preference, unparsed, len(verdicts) - len(decided))


class VoteJudge(Tagged, ABC):
    """Judges items by ``VOTES`` votes each; ``tag`` as for every judge (``base.Tagged``)."""

    @abstractmethod
    def verdicts(self, items: Sequence[JudgeItem]) -> list[Verdict]: ...


class PromptedJudge(VoteJudge):
    """An LLM judge: sends the vote prompts, parses the replies; subclasses only produce replies."""

    def __init__(self, vote_mode: str = "variants", temperature: float = 0.0) -> None:
        if vote_mode not in ("variants", "samples"):
            raise ValueError(f"vote_mode must be 'variants' or 'samples', got {vote_mode!r}")
        if vote_mode == "samples" and temperature <= 0:
            raise ValueError("vote_mode='samples' needs temperature > 0 (three identical greedy replies are one vote)")
        self.vote_mode, self.temperature = vote_mode, temperature

    @abstractmethod
    def replies(self, conversations: Sequence[Messages]) -> list[Optional[str]]:
        """One reply text per conversation, ``None`` where the judge failed."""

    def verdicts(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        plan = []  # (item, vote, variant, model_first): one request each
        for i, item in enumerate(items):
            orders = ORDERS if item.judging == "pairwise" else (True,)
            for vote in range(VOTES):
                variant = vote if self.vote_mode == "variants" else 0
                plan.extend((i, vote, variant, first) for first in orders)
        replies = self.replies([vote_messages(items[i], variant, first) for i, _, variant, first in plan])
        asked: dict[tuple[int, int], list[Optional[bool]]] = {}
        for (i, vote, _, first), reply in zip(plan, replies):
            asked.setdefault((i, vote), []).append(parse_vote(reply, items[i], first))
        return [
            Verdict(tuple(pair_vote(asked[i, vote]) for vote in range(VOTES)), item.judging == "pairwise")
            for i, item in enumerate(items)
        ]


class HttpVoteJudge(PromptedJudge):
    """The votes from an OpenAI-compatible server (vLLM, SGLang, hosted APIs) through ``HttpJudge``.

    ``client`` takes any other ``HttpJudge`` argument by name (``api_key_env``, ``timeout_s``,
    ``max_retries``, ``backoff_s``, ``deadline_s``: the overall limit for one task's evaluation,
    after which the items still waiting are undecided); the defaults here differ from
    ``HttpJudge``'s because a vote reply is short and a task sends 3 (reference) or 6 (pairwise)
    requests per item.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        max_tokens: int = 512,
        max_workers: int = 16,
        vote_mode: str = "variants",
        temperature: float = 0.0,
        **client: Any,
    ) -> None:
        super().__init__(vote_mode, temperature)
        self.client = HttpJudge(
            base_url, model, max_tokens=max_tokens, max_workers=max_workers, temperature=temperature, **client
        )

    def replies(self, conversations: Sequence[Messages]) -> list[Optional[str]]:
        return self.client.replies(conversations)

    def check(self) -> None:
        self.client.check()


_LOCAL: dict[tuple[str, str], tuple[Any, Any]] = {}


class LocalVoteJudge(PromptedJudge):
    """A Hugging Face causal LM as judge, loaded once per (path, dtype) and shared by all tasks."""

    def __init__(
        self,
        name_or_path: str,
        dtype: str = "auto",
        max_new_tokens: int = 256,
        batch_size: int = 8,
        vote_mode: str = "variants",
        temperature: float = 0.0,
    ) -> None:
        super().__init__(vote_mode, temperature)
        self.name_or_path, self.dtype = name_or_path, dtype
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self._device: Any = None

    def to(self, device: Any) -> LocalVoteJudge:
        self._device = device
        return self

    def check(self) -> None:
        """The model must be the embedded one, a local folder, or a hub id (in the cache when offline)."""
        from maestro_lit.tiny import TINY_MODEL_ID

        name = self.name_or_path
        if name == TINY_MODEL_ID or Path(name).expanduser().exists():
            return
        looks_local = name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name
        if looks_local:
            raise ValueError(f"judge name_or_path: the local judge model {name!r} does not exist")
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(name, "config.json"), str):
                raise ValueError(
                    f"judge name_or_path: {name!r} is neither a local folder nor in the Hugging Face cache "
                    "(HF_HUB_OFFLINE is set)"
                )

    def load(self) -> tuple[Any, Any]:
        key = (self.name_or_path, self.dtype)
        if key not in _LOCAL:
            import torch
            from transformers import AutoModelForCausalLM

            from maestro_lit.policy.model import load_tokenizer
            from maestro_lit.tiny import resolve_model_path

            path = resolve_model_path(self.name_or_path)
            tokenizer = load_tokenizer(path)
            dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
            _LOCAL[key] = (model, tokenizer)
        model, tokenizer = _LOCAL[key]
        if self._device is not None:
            model.to(self._device)
        return model, tokenizer

    def replies(self, conversations: Sequence[Messages]) -> list[Optional[str]]:
        import torch

        from maestro_lit.policy.rollout import render_prompt

        model, tokenizer = self.load()
        out: list[Optional[str]] = []
        sample = self.temperature > 0
        for start in range(0, len(conversations), self.batch_size):
            texts = [render_prompt(tokenizer, m) for m in conversations[start : start + self.batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            try:
                with torch.no_grad():
                    generated = model.generate(
                        **batch,
                        max_new_tokens=self.max_new_tokens,
                        do_sample=sample,
                        temperature=self.temperature if sample else None,
                        top_p=None,
                        top_k=None,
                        pad_token_id=tokenizer.pad_token_id,
                    )
                new = generated[:, batch["input_ids"].shape[1] :]
                out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
            except Exception as err:  # noqa: BLE001 - e.g. out of memory on one batch: unparsed votes
                log.warning("local judge failed on a batch of %d: %s", len(texts), err)
                out.extend([None] * len(texts))
        return out


class ProxyVoteJudge(VoteJudge):
    """Offline stand-in, metrics named ``*_proxy``: three lexical agreements with the reference vote.

    Votes: ROUGE-L F ≥ ``threshold``, token F1 ≥ ``threshold``, chrF/100 ≥ ``threshold``; on
    multiple-choice items all three are "same option letter(s) as the reference". It measures
    agreement with the reference, not quality, and a pairwise task's "preference" becomes
    "close to the reference story/translation": a smoke signal, not the paper's number. It shares
    the ``PROXY`` tag with the suite's embedding ``proxy.ProxyJudge`` because the tag marks any
    offline number; the two never score the same metric.
    """

    tag = PROXY

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"ProxyVoteJudge.threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold

    def verdicts(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        from maestro_lit.evals.paper.metrics import answer_letters, chrf, reference_letters, rouge_l, token_f1

        out = []
        for item in items:
            expected = reference_letters(item.reference, item.question)
            if expected:
                same = answer_letters(item.answer, expected) == expected
                out.append(Verdict((same,) * VOTES, item.judging == "pairwise"))
                continue
            scores = (
                rouge_l(item.answer, item.reference),
                token_f1(item.answer, item.reference),
                chrf([item.answer], [item.reference]) / 100,
            )
            out.append(Verdict(tuple(s >= self.threshold for s in scores), item.judging == "pairwise"))
        return out
