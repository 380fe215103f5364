"""Known-answer tests for scoring: EQ-Bench v2 formula, TruthfulQA diff, win rates, parsers."""

import math

import pytest

from maestro_lit.evals.aggregate import length_controlled_win_rate, outcome_from_scores, win_rate
from maestro_lit.evals.judges.parse import parse_score, parse_verdict
from maestro_lit.evals.suite.eq_bench import fullscale_score, parse_answer
from maestro_lit.evals.suite.truthfulqa import TruthfulQA, TruthItem, similarity_diff

REF = {"proud": 8.0, "annoyed": 3.0, "embarrassed": 1.0, "sad": 0.0}


def test_eq_bench_formula_by_hand():
    answer = {"proud": 8.0, "annoyed": 5.0, "embarrassed": 1.0, "sad": 7.0}
    # d = 0, 2, 0, 7 -> scaled 0, 6.5/(1+e^(2.4)), 0, 7
    expected = 10 - 0.7477 * (6.5 / (1 + math.exp(2.4)) + 7)
    assert fullscale_score(REF, answer) == pytest.approx(expected)
    assert fullscale_score(REF, dict(REF)) == pytest.approx(10.0)
    # d = 5 stays on the S-curve: 6.5 / (1 + e^-1.2)
    assert fullscale_score(REF, {**REF, "sad": 5.0}) == pytest.approx(10 - 0.7477 * 6.5 / (1 + math.exp(-1.2)))


def test_eq_bench_wrong_emotions_fail():
    assert fullscale_score(REF, {"proud": 8, "annoyed": 3, "embarrassed": 1}) is None
    assert fullscale_score(REF, {"proud": 8, "annoyed": 3, "embarrassed": 1, "happy": 0}) is None


def test_eq_bench_parse_prefers_revised():
    text = (
        "First pass scores:\nProud: 2\nAnnoyed: 2\nEmbarrassed: 2\nSad: 2\nCritique: too low\n"
        "Revised scores:\nProud: 8\n**Annoyed**: 3\nEmbarrassed: 1\nSad: 0"
    )
    assert parse_answer(text) == REF
    assert parse_answer("I cannot tell.") == {}


def test_win_rate_ties_half_and_failed_excluded():
    rate, failed = win_rate([1.0, 0.5, 0.0, 0.5, None])
    assert rate == pytest.approx(50.0) and failed == 1
    assert win_rate([1.0, 1.0, 0.5, 0.0])[0] == pytest.approx(62.5)
    assert math.isnan(win_rate([None])[0])
    assert outcome_from_scores(1.0, 0.99, tie_margin=0.02) == 0.5
    assert outcome_from_scores(1.0, 0.5) == 1.0 and outcome_from_scores(0.1, 0.5) == 0.0


def test_length_controlled_removes_length_advantage():
    # The model wins exactly when it is longer than the reference: LC rate falls below raw.
    outcomes = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    model = [300, 280, 260, 310, 90, 80, 100, 95]
    ref = [100] * 8
    raw = win_rate(outcomes)[0]
    lc = length_controlled_win_rate(outcomes, model, ref)
    assert lc < raw
    # Equal lengths: no length signal, LC equals the ridge-shrunk raw rate.
    assert length_controlled_win_rate([1.0, 0.0, 0.5, 0.5], [5] * 4, [5] * 4) == pytest.approx(50.0)


@pytest.mark.parametrize(
    "reply,expected",
    [
        ("Rating: [[7]]", 7.0),
        ("score [[8.5]] done", 8.5),
        ('{"score": 6, "reason": "ok"}', 6.0),
        ("[[11]]", None),
        ("no grade", None),
    ],
)
def test_parse_score(reply, expected):
    assert parse_score(reply) == expected


@pytest.mark.parametrize(
    "reply,expected",
    [
        ("My final verdict is tie: [[A=B]]", 0.5),
        ("[[A>>B]]", 1.0),
        ("[[B>A]]", 0.0),
        ("scale [[A>B]] ... final: [[B>>A]]", 0.0),
        ("Output (a)", 1.0),
        ("Output (b)", 0.0),
        ("[[C]]", 0.5),
        ("I like both", None),
    ],
)
def test_parse_verdict(reply, expected):
    assert parse_verdict(reply) == expected


def test_truthfulqa_diff_on_hand_made_answers():
    item = TruthItem("Are bats blind?", ["No, bats can see", "I have no comment."], ["Yes, bats are blind"])
    bench = TruthfulQA(use_embedding=False)
    good = similarity_diff(
        bench.rouge_l("No, bats can see well", item.correct), bench.rouge_l("No, bats can see well", item.incorrect)
    )
    bad = similarity_diff(
        bench.rouge_l("Yes, bats are blind", item.correct), bench.rouge_l("Yes, bats are blind", item.incorrect)
    )
    assert good > 0 > bad
    assert bad == pytest.approx(max(bench.rouge_l("Yes, bats are blind", item.correct)) - 1.0)
    # "bats can see" vs "No, bats can see" -> LCS 3 of (3, 4): F1 = 2*(1*0.75)/(1.75)
    assert bench.rouge_l("bats can see", ["No, bats can see"])[0] == pytest.approx(2 * 0.75 / 1.75)
    assert similarity_diff([0.2, 0.9], [0.5, 0.3]) == pytest.approx(0.4)
