"""The judge prompts for the seven tasks: three variants per judging kind, one vote each.

The paper's judge prompt is not published (docs/paper.md#evaluation), so these are ours. Why three prompt
*variants* rather than three samples of one prompt: at temperature 0 a local or hosted judge is
reproducible, and varying the presentation (order of reference and answer, a criteria-first
wording) spreads a judge's wording sensitivity over the votes. (``vote_mode="samples"`` on the
judges gives the other reading: variant 1 three times at temperature > 0.)

What "preference" means:

- ``reference`` judging (NR, GT, WI, EmoBench, ToMBench): a vote is favourable when the judge
  finds the model's final answer consistent with the reference answer (same option / same
  result / same conclusion). Reply format: ``[[YES]]`` or ``[[NO]]``.
- ``pairwise`` judging (SS-GEN, OPUS-Books): the judge compares the model's story/translation
  with the reference one and picks the better. Position-balanced, as MT-Bench and Arena-Hard
  judge pairs: every vote asks its variant **in both orders** (the model in slot A, then in slot
  B), so a pairwise item costs 6 requests (3 votes × 2 orders) where a reference item costs 3.
  A vote is favourable (1) when both orders pick the model, unfavourable (0) when both pick the
  reference, a tie (0.5) when the orders disagree (the judge followed the slot, not the text), and
  unparsed when either order has no verdict. Reply: ``[[A]]`` or ``[[B]]``. A judge that always
  answers ``[[A]]`` (or always ``[[B]]``) therefore ties every vote: preference 50, never 100 or 0.

The last ``[[…]]`` tag in a reply counts (judges that restate the format before deciding are
read correctly); a reply without one is an unparsed vote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

SYSTEM = "You are an impartial, careful evaluator. Follow the output format exactly."

_CONSISTENT = (
    "Decide whether the candidate's final answer is consistent with the reference answer: the same choice, "
    "the same result or the same conclusion, even if worded differently. Ignore the quality of the reasoning."
)
_YES_NO = "Give a one-sentence justification, then end with exactly [[YES]] if consistent or [[NO]] if not."

REFERENCE_VARIANTS = (
    _CONSISTENT
    + "\n\n[Question]\n{question}\n\n[Reference answer]\n{reference}\n\n[Candidate answer]\n{answer}\n\n"
    + _YES_NO,
    _CONSISTENT
    + "\n\n[Question]\n{question}\n\n[Candidate answer]\n{answer}\n\n[Reference answer]\n{reference}\n\n"
    + _YES_NO,
    "First state in a few words the final answer the candidate commits to. Then compare it with the reference "
    "answer and decide whether they agree.\n\n[Question]\n{question}\n\n[Reference answer]\n{reference}\n\n"
    "[Candidate answer]\n{answer}\n\nEnd with exactly [[YES]] if they agree or [[NO]] if they do not.",
)

CRITERIA = {
    "creative": (
        "a social story for a child with autism: accurate and reassuring, simple concrete sentences, describes the "
        "situation, others' perspectives and helpful actions, on the requested topic"
    ),
    "multilingual": (
        "a translation: faithful to the source meaning, complete, fluent and natural in the target language"
    ),
}
_PICK = (
    "Give a short justification, then end with exactly [[A]] if Response A is better or [[B]] if Response B is better."
)
_PAIR = "[Task]\n{question}\n\n[Response A]\n{first}\n\n[Response B]\n{second}\n\n"

PAIRWISE_VARIANTS = (
    "Compare two responses to the same task, judged as {criteria}.\n\n" + _PAIR + _PICK,
    "Two responses to the same task follow, to be judged as {criteria}. Name the main weakness of each, then "
    "decide which one is better.\n\n" + _PAIR + _PICK,
    "Criteria: {criteria}. Check each response against every criterion, then decide which one is better overall.\n\n"
    + _PAIR
    + _PICK,
)
ORDERS = (True, False)  # a pairwise vote asks: the model in slot A, then the model in slot B

_TAG = re.compile(r"\[\[\s*(YES|NO|A|B)\s*\]\]", re.IGNORECASE)


@dataclass(frozen=True)
class JudgeItem:
    """One answer to judge: ``judging`` is ``reference`` or ``pairwise``; ``category`` picks the criteria."""

    question: str
    reference: str
    answer: str
    judging: str = "reference"
    category: str = "reasoning"


def vote_messages(
    item: JudgeItem, variant: int, model_first: bool = True, max_chars: int = 6000
) -> list[dict[str, str]]:
    """Chat messages for vote ``variant`` (0-2) on ``item``; long texts are cut to ``max_chars``.

    ``model_first`` (pairwise items only) puts the model's response in slot A, else in slot B.
    """
    question, reference, answer = (text[:max_chars] for text in (item.question, item.reference, item.answer))
    if item.judging == "pairwise":
        first, second = (answer, reference) if model_first else (reference, answer)
        criteria = CRITERIA.get(item.category, "a response to the task: correct, complete, clear and well written")
        user = PAIRWISE_VARIANTS[variant].format(question=question, first=first, second=second, criteria=criteria)
    else:
        user = REFERENCE_VARIANTS[variant].format(question=question, reference=reference, answer=answer)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_vote(reply: Optional[str], item: JudgeItem, model_first: bool = True) -> Optional[bool]:
    """True = favourable to the model, False = not, None = no verdict tag in the reply.

    ``model_first``: on a pairwise item, whether the request put the model in slot A.
    """
    if not reply:
        return None
    found = _TAG.findall(reply)
    if not found:
        return None
    tag = found[-1].upper()
    if item.judging == "pairwise":
        if tag not in ("A", "B"):
            return None
        return (tag == "A") == model_first
    return {"YES": True, "NO": False}.get(tag)
