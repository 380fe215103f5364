"""Deterministic metrics that need no judge: answer extraction, option letters, ROUGE-L, chrF, BLEU.

Pure functions on strings, so they are unit-tested on hand-made answers.

- The answer is the text of the last ``<answer>…</answer>`` block; a completion without one is
  scored on its text after any ``<think>`` block (and counted in ``format_rate``).
- Option letters: a reference names its options as ``C. text``, ``(D) text``, ``B: text``, a bare
  ``a``, or EmoBench's ``Emotion: A: …, Cause: C: …`` (both letters must match). An item counts
  as multiple choice only when its prompt lists that letter as an option line, so free-form
  WebInstruct answers that start with "A " are not mistaken for options.
- chrF and BLEU (sacreBLEU's ``13a`` tokenisation) are corpus-level, from torchmetrics, ×100.
- Completion length is in whitespace words of the whole completion (Table 2's "mean completion
  length"; words, not tokens, so methods with different tokenizers compare).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional

_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_LABELLED = re.compile(r"\b(Emotion|Cause)\s*:\s*\(?([A-J])\b")
_LEAD = re.compile(
    r"^\s*(?:the\s+(?:correct\s+)?answer\s+is\s*:?\s*)?(?:option\s+)?\(?([A-Ja-j])\s*(?:[\).:]|$|\s)", re.IGNORECASE
)


def extract_answer(completion: str) -> Optional[str]:
    """Text of the last ``<answer>`` block (an unclosed one runs to the end), or ``None``."""
    found = _ANSWER.findall(completion)
    return found[-1].strip() if found else None


def answer_text(completion: str) -> str:
    """What the metrics score: the extracted answer, else the completion without its reasoning."""
    answer = extract_answer(completion)
    return answer if answer is not None else _THINK.sub("", completion).strip()


def _labelled(text: str) -> tuple[str, ...]:
    found = dict((label.lower(), letter) for label, letter in _LABELLED.findall(text))
    return tuple(found[k] for k in ("emotion", "cause") if k in found)


def _lead_letter(text: str) -> Optional[str]:
    match = _LEAD.match(text)
    return match.group(1).upper() if match else None


def _offers(prompt: str, letter: str) -> bool:
    """True when ``prompt`` has an option line for ``letter`` (``A: x``, ``a) x``, ``(A) x``, ``A. x``)."""
    pattern = rf"^\s*\(?[{letter.upper()}{letter.lower()}][\).:]\s*\S"
    return re.search(pattern, prompt, re.MULTILINE) is not None


def reference_letters(reference: str, prompt: str) -> Optional[tuple[str, ...]]:
    """The option letter(s) a reference names, or ``None`` when the item is not multiple choice."""
    labelled = _labelled(reference)
    if labelled:
        return labelled
    letter = _lead_letter(reference)
    if (
        letter
        and _offers(prompt, letter)
        and (len(reference.strip()) == 1 or re.match(r"^\s*\(?[A-Ja-j][\).:]", reference))
    ):
        return (letter,)
    return None


def answer_letters(answer: str, expected: Sequence[str]) -> Optional[tuple[str, ...]]:
    """The letter(s) an answer picks, in the shape of ``expected`` (labelled pair or one letter)."""
    if len(expected) == 2:
        found = _labelled(answer)
        return found if len(found) == 2 else None
    letter = _lead_letter(answer)
    if letter is None:
        found = re.findall(r"\b(?:answer|option)\s*(?:is|:)?\s*\(?([A-J])\b", answer, re.IGNORECASE)
        letter = found[-1].upper() if found else None
    return (letter,) if letter else None


def rouge_l(prediction: str, reference: str) -> float:
    from torchmetrics.functional.text.rouge import rouge_score

    return float(rouge_score(prediction, reference, rouge_keys="rougeL")["rougeL_fmeasure"])


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    from torchmetrics.functional.text import chrf_score

    return 100.0 * float(chrf_score(list(predictions), [[r] for r in references])) if predictions else float("nan")


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    from torchmetrics.functional.text import sacre_bleu_score

    if not predictions:
        return float("nan")
    return 100.0 * float(sacre_bleu_score(list(predictions), [[r] for r in references], tokenize="13a"))


def word_count(text: str) -> int:
    return len(text.split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style bag-of-words F1 on lower-cased whitespace tokens."""
    pred, ref = prediction.lower().split(), reference.lower().split()
    if not pred or not ref:
        return float(pred == ref)
    common: dict[str, int] = {}
    for token in pred:
        common[token] = common.get(token, 0) + 1
    overlap = 0
    for token in ref:
        if common.get(token, 0) > 0:
            common[token] -= 1
            overlap += 1
    if not overlap:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)
