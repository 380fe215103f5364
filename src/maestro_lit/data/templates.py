"""NOVER's prompt templates, as its prepared files show them (docs/paper.md#rewards).

Every training prompt ends with the same format instruction; EmoBench's prepared prompts spell
out the answer line (``Emotion: [option letter]: [option text]``), the others keep ``...``.
"""

from __future__ import annotations

from collections.abc import Sequence

LETTERS = "ABCDEFGHIJ"


def format_instruction(answer_hint: str = "...", think_hint: str = "...") -> str:
    return (
        "\n\nAnswer the question and return in the following format:\n\n"
        f"<think>\n{think_hint}\n</think>\n\n<answer>\n{answer_hint}\n</answer>\n"
    )


def question_prompt(question: str, answer_hint: str = "...", think_hint: str = "...") -> str:
    return f"\nQuestion: {question}" + format_instruction(answer_hint, think_hint)


def translation_prompt(text: str, source: str, target: str) -> str:
    return f"\nTranslate the following text from {source} to {target}:\n\n{text}" + format_instruction()


def lettered(options: Sequence[str], separator: str = ": ") -> list[str]:
    """``["A: first", "B: second", ...]``."""
    if len(options) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} options, got {len(options)}")
    return [f"{LETTERS[i]}{separator}{option}" for i, option in enumerate(options)]
