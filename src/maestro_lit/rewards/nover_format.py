"""NOVER's response format, ``<think>…</think><answer>…</answer>``, parsed once for ``fmt``, ``ppl`` and ``len``.

Strict reading of NOVER's check: after stripping outer whitespace the response is exactly a
reasoning block followed by an answer block, whitespace allowed between them, nothing else
outside or between, each tag exactly once. Where NOVER is silent we also require both blocks
to hold some non-whitespace text (``allow_empty=True`` drops that), so an empty template does
not earn the format reward. Tag names are options: Qwen3 users swap ``think`` for ``reasoning``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ThinkAnswer:
    """A response that passed the format check: the reasoning block (tags included) and the answer text."""

    think_block: str
    reasoning: str
    answer: str


@dataclass(frozen=True)
class ResponseFormat:
    """The two tag names and whether empty blocks count as valid."""

    think_tag: str = "think"
    answer_tag: str = "answer"
    allow_empty: bool = False

    def __post_init__(self) -> None:
        for tag in (self.think_tag, self.answer_tag):
            if not re.fullmatch(r"[A-Za-z_][\w\-]*", tag):
                raise ValueError(f"format tag {tag!r} must be a plain tag name such as 'think' (no angle brackets)")
        if self.think_tag == self.answer_tag:
            raise ValueError(f"think_tag and answer_tag must differ, both are {self.think_tag!r}")

    def tags(self) -> tuple[str, str, str, str]:
        t, a = self.think_tag, self.answer_tag
        return f"<{t}>", f"</{t}>", f"<{a}>", f"</{a}>"

    def parse(self, response: str) -> ThinkAnswer | None:
        """The two blocks, or None when the response is not exactly in the format."""
        think_open, think_close, answer_open, answer_close = self.tags()
        text = response.strip()
        if any(text.count(tag) != 1 for tag in self.tags()):
            return None
        if not (text.startswith(think_open) and text.endswith(answer_close)):
            return None
        think_end = text.index(think_close) + len(think_close)
        answer_start = text.index(answer_open)
        if answer_start < think_end or text[think_end:answer_start].strip():
            return None
        reasoning = text[len(think_open) : think_end - len(think_close)]
        answer = text[answer_start + len(answer_open) : -len(answer_close)]
        if not self.allow_empty and not (reasoning.strip() and answer.strip()):
            return None
        return ThinkAnswer(think_block=text[:think_end], reasoning=reasoning, answer=answer)
