"""Reference-, constraint-, log-prob- and function-driven components."""

import math
import textwrap

import pytest
import torch
from torchmetrics.functional.text.rouge import rouge_score
from torchmetrics.text.rouge import ROUGEScore

from maestro_lit.rewards.base import RewardError
from maestro_lit.rewards.callable import CallableReward
from maestro_lit.rewards.constraints import VerifiableConstraints
from maestro_lit.rewards.fluency import Fluency
from maestro_lit.rewards.rouge import RougeL

NAN = float("nan")


def test_rouge_l_matches_torchmetrics_per_item():
    preds = ["the cat sat on the mat", "a quick brown fox", "nothing in common here"]
    refs = ["the cat was on the mat", "the quick brown fox jumps", "zebra"]
    scores = RougeL()(["p"] * 3, preds, reference=refs)
    metric = ROUGEScore(rouge_keys="rougeL")
    for i, (p, r) in enumerate(zip(preds, refs)):
        assert scores[i] == pytest.approx(float(metric(p, r)["rougeL_fmeasure"]), abs=1e-6)
    assert scores[0] == pytest.approx(5 / 6)  # LCS 5 of 6 tokens each side
    assert scores[2] == 0.0


def test_rouge_l_nan_without_reference():
    scores = RougeL()(["p"] * 3, ["a b", "a b", "a b"], reference=["a b", None, "  "])
    assert scores[0] == pytest.approx(float(rouge_score("a b", "a b", rouge_keys="rougeL")["rougeL_fmeasure"]))
    assert math.isnan(scores[1]) and math.isnan(scores[2])
    assert torch.isnan(RougeL()(["p"], ["a"])).all()


def test_fluency_masked_mean_and_empty_is_nan():
    logp = torch.tensor([[-1.0, -3.0, -100.0], [-0.5, float("-inf"), float("nan")], [-2.0, -2.0, -2.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    scores = Fluency()(["p"] * 3, ["a b", "c", ""], ref_logprobs=logp, completion_mask=mask, reference=[None] * 3)
    assert scores[0] == pytest.approx(-2.0) and scores[1] == pytest.approx(-0.5) and math.isnan(scores[2])
    assert Fluency.needs_reference_logprobs is True and Fluency().needs_reference_logprobs is True


def test_fluency_without_logprobs_names_itself():
    with pytest.raises(ValueError, match="fluency"):
        Fluency()(["p"], ["a"])


def test_constraints_fraction_satisfied():
    reward = VerifiableConstraints()
    completions = [
        "Paris is the capital of France. It has the Louvre.",
        "London is big.",
        '{"answer": 42}',
        "anything goes",
        "Use C++ here.",
    ]
    scores = reward(
        ["p"] * 5,
        completions,
        required_keywords=[["Paris", "louvre"], ["Paris"], None, None, ["C++"]],
        forbidden_words=[["London"], ["London"], None, [], None],
        max_words=[10, 10, None, None, None],
        min_words=[None, 5, None, None, None],
        max_sentences=[2, None, None, None, None],
        json_format=[False, None, True, None, None],
    )
    assert scores[0] == pytest.approx(1.0)  # keywords, no London, 10 words <= 10, 2 sentences
    assert scores[1] == pytest.approx(1 / 4)  # only max_words passes
    assert scores[2] == pytest.approx(1.0)
    assert math.isnan(scores[3])
    assert scores[4] == pytest.approx(1.0)  # keywords are literal, not regexes


def test_constraints_word_bounds_are_inclusive_and_raw_ifeval_rows_work():
    reward = VerifiableConstraints()
    five = "one two three four five"
    assert reward(["p"] * 2, [five, five + " six"], max_words=[5, 5]).tolist() == [1.0, 0.0]
    scores = reward(
        ["p"],
        ["hello, world"],
        instruction_id_list=[["punctuation:no_comma", "change_case:english_lowercase"]],
        kwargs=[[{}, {"relation": None}]],
    )
    assert scores[0] == pytest.approx(0.5)


def test_constraints_loose_forgives_a_preamble():
    item = {"json_format": [True]}
    text = ['Sure:\n{"a": 1}']
    assert VerifiableConstraints()(["p"], text, **item)[0] == 0.0
    assert VerifiableConstraints(loose=True)(["p"], text, **item)[0] == 1.0


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        textwrap.dedent(
            """
        def maybe(prompts, completions, **kwargs):
            return [None if c == "skip" else float(len(c)) + kwargs["bonus"][i] for i, c in enumerate(completions)]

        def too_short(prompts, completions, **kwargs):
            return [1.0]
        """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_rewards"


@pytest.mark.parametrize("sep", [":", "."])
def test_callable_maps_none_to_nan_and_passes_columns(user_module, sep):
    reward = CallableReward(f"{user_module}{sep}maybe")
    assert reward.name == "maybe"
    scores = reward(["p", "p", "p"], ["ab", "skip", "abcd"], bonus=[10, 0, 0])
    assert scores.dtype == torch.float32
    assert scores[0] == 12.0 and math.isnan(scores[1]) and scores[2] == 4.0


def test_callable_wrong_length_raises_named_error(user_module):
    with pytest.raises(RewardError, match="'short'.*1 scores for 2"):
        CallableReward(f"{user_module}:too_short", name="short")(["p", "p"], ["a", "b"])


def test_callable_import_error_names_the_path():
    with pytest.raises(ImportError, match="no_such_pkg.mod:f"):
        CallableReward("no_such_pkg.mod:f")
    with pytest.raises(ImportError, match="math:no_such_function"):
        CallableReward("math:no_such_function")
