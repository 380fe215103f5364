"""IFEval instruction checkers (Zhou et al. 2023), re-implemented from the published rules.

Why here and not inside the benchmark: the VerifiableConstraints reward and the IFEval
benchmark must agree on what "followed the instruction" means, so both call
:func:`check_instruction`. Kwargs use IFEval's names (``num_words`` + ``relation`` ...);
``None`` values (the HF copy of IFEval stores every key for every row) are ignored.

Departures from the reference implementation, chosen to avoid nltk/langdetect:
sentences are split with a regex (``.``/``!``/``?`` followed by space or end), words are
``\\w+`` runs, and the change_case checks do not run a language detector.
``language:response_language`` is therefore not supported and fails clearly.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

Checker = Callable[..., bool]
_CHECKERS: dict[str, Checker] = {}


class UnsupportedInstructionError(ValueError):
    """Raised for instruction ids this module has no checker for (lists all of them)."""


def _register(instruction_id: str) -> Callable[[Checker], Checker]:
    def wrap(fn: Checker) -> Checker:
        _CHECKERS[instruction_id] = fn
        return fn

    return wrap


def _compare(count: int, relation: str, target: int) -> bool:
    if relation == "less than":
        return count < int(target)
    if relation == "at least":
        return count >= int(target)
    raise ValueError(f"relation must be 'less than' or 'at least', got {relation!r}")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p for p in parts if re.search(r"\w", p)]


# --- keywords ---------------------------------------------------------------------------
@_register("keywords:existence")
def _existence(response: str, keywords: list[str]) -> bool:
    return all(re.search(k, response, flags=re.IGNORECASE) for k in keywords)


@_register("keywords:forbidden_words")
def _forbidden(response: str, forbidden_words: list[str]) -> bool:
    return not any(re.search(r"\b" + w + r"\b", response, flags=re.IGNORECASE) for w in forbidden_words)


@_register("keywords:frequency")
def _frequency(response: str, keyword: str, frequency: int, relation: str) -> bool:
    return _compare(len(re.findall(keyword, response, flags=re.IGNORECASE)), relation, frequency)


@_register("keywords:letter_frequency")
def _letter_frequency(response: str, letter: str, let_frequency: int, let_relation: str) -> bool:
    return _compare(Counter(response.lower())[letter.lower()], let_relation, let_frequency)


# --- length ---------------------------------------------------------------------------
@_register("length_constraints:number_words")
def _number_words(response: str, num_words: int, relation: str) -> bool:
    return _compare(len(_words(response)), relation, num_words)


@_register("length_constraints:number_sentences")
def _number_sentences(response: str, num_sentences: int, relation: str) -> bool:
    return _compare(len(_sentences(response)), relation, num_sentences)


@_register("length_constraints:number_paragraphs")
def _number_paragraphs(response: str, num_paragraphs: int) -> bool:
    """Paragraphs are separated by the markdown divider ``***``; empty inner ones fail."""
    parts = re.split(r"\s?\*\*\*\s?", response)
    count = len(parts)
    for i, part in enumerate(parts):
        if not part.strip():
            if i in (0, len(parts) - 1):
                count -= 1
            else:
                return False
    return count == int(num_paragraphs)


@_register("length_constraints:nth_paragraph_first_word")
def _nth_paragraph_first_word(response: str, num_paragraphs: int, nth_paragraph: int, first_word: str) -> bool:
    parts = re.split(r"\n\n", response)
    count = sum(1 for p in parts if p.strip())
    if int(nth_paragraph) > count:
        return False
    paragraph = parts[int(nth_paragraph) - 1].strip()
    if not paragraph:
        return False
    word = re.split(r"[.,?!'\"]", paragraph.split()[0].lstrip("'\""))[0].lower()
    return count == int(num_paragraphs) and word == first_word.lower()


# --- detectable content / format --------------------------------------------------------
@_register("detectable_content:number_placeholders")
def _placeholders(response: str, num_placeholders: int) -> bool:
    return len(re.findall(r"\[.*?\]", response)) >= int(num_placeholders)


@_register("detectable_content:postscript")
def _postscript(response: str, postscript_marker: str) -> bool:
    marker = postscript_marker.strip().lower()
    if marker == "p.p.s":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "p.s.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker) + r".*$"
    return bool(re.findall(pattern, response.lower(), flags=re.MULTILINE))


@_register("detectable_format:number_bullet_lists")
def _bullets(response: str, num_bullets: int) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", response, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
    return len(stars) + len(dashes) == int(num_bullets)


@_register("detectable_format:constrained_response")
def _constrained(response: str) -> bool:
    options = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
    return any(o in response.strip() for o in options)


@_register("detectable_format:number_highlighted_sections")
def _highlights(response: str, num_highlights: int) -> bool:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", response) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", response) if h[2:-2].strip()]
    return len(single) + len(double) >= int(num_highlights)


@_register("detectable_format:multiple_sections")
def _sections(response: str, section_spliter: str, num_sections: int) -> bool:
    parts = re.split(r"\s?" + re.escape(section_spliter) + r"\s?\d+\s?", response)
    return len(parts) - 1 >= int(num_sections)


@_register("detectable_format:json_format")
def _json_format(response: str) -> bool:
    text = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        if text.startswith(fence):
            text = text[len(fence) :]
            break
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@_register("detectable_format:title")
def _title(response: str) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", response))


# --- combination ----------------------------------------------------------------------
@_register("combination:two_responses")
def _two_responses(response: str) -> bool:
    parts = response.split("******")
    kept = []
    for i, part in enumerate(parts):
        if not part.strip():
            if i not in (0, len(parts) - 1):
                return False
        else:
            kept.append(part)
    return len(kept) == 2 and kept[0].strip() != kept[1].strip()


@_register("combination:repeat_prompt")
def _repeat_prompt(response: str, prompt_to_repeat: str) -> bool:
    return response.strip().lower().startswith(prompt_to_repeat.strip().lower())


# --- start/end, case, punctuation -----------------------------------------------------
@_register("startend:end_checker")
def _end_checker(response: str, end_phrase: str) -> bool:
    return response.strip().strip('"').lower().endswith(end_phrase.strip().lower())


@_register("startend:quotation")
def _quotation(response: str) -> bool:
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


@_register("change_case:english_lowercase")
def _lowercase(response: str) -> bool:
    return response.islower()


@_register("change_case:english_capital")
def _capital(response: str) -> bool:
    return response.isupper()


@_register("change_case:capital_word_frequency")
def _capital_words(response: str, capital_frequency: int, capital_relation: str) -> bool:
    return _compare(sum(1 for w in _words(response) if w.isupper()), capital_relation, capital_frequency)


@_register("punctuation:no_comma")
def _no_comma(response: str) -> bool:
    return "," not in response


SUPPORTED_INSTRUCTIONS: frozenset[str] = frozenset(_CHECKERS)


def unsupported(instruction_ids: Iterable[str]) -> list[str]:
    """The ids among ``instruction_ids`` with no checker, sorted and de-duplicated."""
    return sorted({i for i in instruction_ids if i not in _CHECKERS})


def require_supported(instruction_ids: Iterable[str]) -> None:
    missing = unsupported(instruction_ids)
    if missing:
        raise UnsupportedInstructionError(
            f"unsupported IFEval instruction id(s): {', '.join(missing)}; supported: {', '.join(sorted(_CHECKERS))}"
        )


def check_instruction(instruction_id: str, response: str, kwargs: dict[str, Any] | None = None) -> bool:
    """Strict IFEval check: an empty response never follows an instruction."""
    require_supported([instruction_id])
    args = {k: v for k, v in (kwargs or {}).items() if v is not None}
    if not response.strip():
        return False
    try:
        return bool(_CHECKERS[instruction_id](response, **args))
    except TypeError as err:
        raise ValueError(f"bad kwargs for IFEval instruction {instruction_id!r}: {sorted(args)} ({err})") from err


def loose_variants(response: str) -> list[str]:
    """IFEval's loose protocol: drop the first/last/both lines and/or strip asterisks."""
    lines = response.split("\n")
    first = "\n".join(lines[1:]).strip()
    last = "\n".join(lines[:-1]).strip()
    both = "\n".join(lines[1:-1]).strip()
    base = [response, first, last, both]
    return base + [v.replace("*", "") for v in base]


def check_instruction_loose(instruction_id: str, response: str, kwargs: dict[str, Any] | None = None) -> bool:
    """Loose IFEval check: followed if any response variant passes the strict check."""
    return any(check_instruction(instruction_id, v, kwargs) for v in loose_variants(response))
