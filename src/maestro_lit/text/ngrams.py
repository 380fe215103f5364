"""Word n-gram statistics (pure Python) behind the diversity, novelty and redundancy rewards.

Words are lower-cased whitespace tokens with surrounding punctuation stripped, so "Yes," and
"yes" count as the same word: a loop that only changes punctuation still reads as a loop.
"""

from __future__ import annotations

from collections import Counter

_PUNCT = "\"'`.,;:!?()[]{}<>*_~-–—…"


def words(text: str) -> list[str]:
    """Lower-cased word tokens with edge punctuation removed (pure-punctuation tokens dropped)."""
    out = (w.strip(_PUNCT) for w in text.lower().split())
    return [w for w in out if w]


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """All contiguous n-grams of ``tokens`` (empty when there are fewer than n tokens)."""
    if n < 1:
        raise ValueError(f"n-gram order must be >= 1, got {n}")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(text: str, n: int) -> float:
    """Unique n-grams / total n-grams; 0 for text shorter than n words."""
    grams = ngrams(words(text), n)
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_ngram_rate(text: str, n: int) -> float:
    """Share of n-gram occurrences that repeat an n-gram seen earlier in the same text.

    0 for text with no repeated n-gram (or shorter than n words), approaching 1 for a loop.
    """
    grams = ngrams(words(text), n)
    if not grams:
        return 0.0
    return sum(c - 1 for c in Counter(grams).values()) / len(grams)


def novelty(text: str, reference: str, n: int) -> float:
    """Share of ``text``'s distinct n-grams that do not occur in ``reference`` (e.g. the prompt).

    Measures how much a completion adds beyond parroting the prompt; NaN when ``text`` has
    fewer than n words, since an empty answer is neither novel nor derivative.
    """
    grams = set(ngrams(words(text), n))
    if not grams:
        return float("nan")
    seen = set(ngrams(words(reference), n))
    return len(grams - seen) / len(grams)
