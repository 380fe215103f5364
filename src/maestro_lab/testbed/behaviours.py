"""Testbed v3's warm-up corpus: every prompt answered in each of three styles, equally often.

Why: in v1 and v2 the tiny policy almost never wrote the answers some categories needed, so no
weighting could make them win inside a group and no method separated from static weights. v3's
policy is warmed up to *have* every behaviour (short, long, formatted) for *every* prompt, with
the same frequency whatever the category: it can explore each trade-off, and nothing in the
warm-up says which category wants which. Each style starts with its own opener, so the choice
is made in the first tokens and GRPO can shift it per prompt.

- ``short``: ``Briefly:`` + 3-4 words of the reference (4-5 words in all);
- ``long``: ``In detail:`` + the reference, continued with neutral clauses to 16-19 words;
- ``formatted``: ``<think> … </think> <answer> … </answer>`` with a 3-word thought and a
  3-4-word answer (10-11 words with the tags).

The word counts sit in disjoint bands of the v3 components (``true_weights.json``), so each
style scores on one component only.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

STYLES = ("short", "long", "formatted")

_FILLER = (
    "and that is the heart of it",
    "which anyone can notice with care",
    "so the picture becomes clear",
    "while small details add colour",
    "because every part plays its role",
    "as people have long observed",
    "with more to say on closer look",
    "though the simple view holds too",
    "until the whole idea fits together",
    "so it stays easy to remember",
    "where each step follows the last",
    "and the rest follows from there",
)
_THOUGHTS = (
    "I recall this.",
    "Let me think.",
    "Check the point.",
    "The main idea.",
    "I weigh it.",
    "This is simple.",
)


def _words(text: str) -> list[str]:
    return [w for w in re.sub(r"[^\w\s'-]", " ", text).split() if w]


def short_answer(reference: str, rng: random.Random) -> str:
    words = _words(reference)[: rng.randint(3, 4)]
    return "Briefly: " + " ".join(words) + "."


def long_answer(reference: str, rng: random.Random) -> str:
    target = rng.randint(16, 19)
    words = ["In", "detail:"] + _words(reference)
    clauses = list(_FILLER)
    rng.shuffle(clauses)
    for clause in clauses:
        if len(words) >= target:
            break
        words += clause.split()
    return " ".join(words[:target]) + "."


def formatted_answer(reference: str, rng: random.Random) -> str:
    answer = " ".join(_words(reference)[: rng.randint(3, 4)])
    return f"<think> {rng.choice(_THOUGHTS)} </think> <answer> {answer} </answer>"


WRITERS = {"short": short_answer, "long": long_answer, "formatted": formatted_answer}


def warmup_pairs(rows: Sequence[dict], copies: int = 2, seed: int = 0) -> list[tuple[str, str]]:
    """(prompt, response) pairs: each row answered ``copies`` times in every style, category ignored."""
    rng = random.Random(seed)
    return [
        (row["prompt"], WRITERS[style](row["reference"], rng))
        for row in rows
        for style in STYLES
        for _ in range(copies)
    ]


def style_of(completion: str) -> str:
    """Which style a completion took, by its opener (``other`` if none): for the report's action tables."""
    text = completion.strip()
    if text.startswith("<think>"):
        return "formatted"
    if text.startswith("Briefly"):
        return "short"
    if text.startswith("In detail"):
        return "long"
    return "other"
