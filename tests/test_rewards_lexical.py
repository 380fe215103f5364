"""Pure-python reward components: n-gram statistics, diversity, novelty, redundancy, length."""

import math

import pytest
import torch

from maestro_lit.rewards.diversity import DistinctN, Novelty
from maestro_lit.rewards.diversity import distinct_n as reexported_distinct_n
from maestro_lit.rewards.length import LengthBand
from maestro_lit.rewards.redundancy import Redundancy
from maestro_lit.text.ngrams import distinct_n, novelty, repeated_ngram_rate, words

VARIED = "Rivers carve canyons slowly while wind shapes dunes and glaciers grind valleys into broad basins."
LOOPING = "I think so. I think so. I think so. I think so. I think so. I think so."


def test_words_strip_edge_punctuation_and_case():
    assert words("Yes, YES! (yes) -- ok.") == ["yes", "yes", "yes", "ok"]


def test_distinct_n_values():
    assert distinct_n("a b a b", 1) == pytest.approx(0.5)
    assert distinct_n("a b a b", 2) == pytest.approx(2 / 3)
    assert distinct_n("one", 2) == 0.0
    assert reexported_distinct_n is distinct_n


def test_distinct_n_component_orders_repeated_below_varied():
    scores = DistinctN(n=2)(["p", "p"], [LOOPING, VARIED])
    assert scores.dtype == torch.float32 and scores.shape == (2,)
    assert scores[0] < 0.3 < 0.95 < scores[1]


def test_repeated_ngram_rate():
    assert repeated_ngram_rate("a b c d e", 2) == 0.0
    # bigrams: ab bc ca ab bc -> 2 of 5 occurrences repeat an earlier one
    assert repeated_ngram_rate("a b c a b c", 2) == pytest.approx(2 / 5)
    assert repeated_ngram_rate("", 3) == 0.0


def test_redundancy_reward_is_lower_for_looping_text():
    scores = Redundancy(n=3)(["p", "p"], [LOOPING, VARIED])
    assert scores[1] == pytest.approx(1.0)
    assert repeated_ngram_rate(LOOPING, 3) > 0.7
    assert scores[0] == pytest.approx(1.0 - repeated_ngram_rate(LOOPING, 3))


def test_novelty_against_prompt():
    prompt = "Explain why the sky is blue."
    assert novelty("The sky is blue.", prompt, 2) == pytest.approx(0.0)
    assert novelty("Sunlight scatters off air molecules.", prompt, 2) == pytest.approx(1.0)
    # distinct bigrams: "why the" (in prompt), "the ocean", "ocean reflects" -> 2/3 novel
    assert novelty("why the ocean reflects", prompt, 2) == pytest.approx(2 / 3)
    scores = Novelty(n=2)(
        [prompt, prompt, prompt],
        ["Explain why the sky is blue.", "Rayleigh scattering favours short wavelengths.", "ok"],
    )
    assert scores[0] == 0.0 and scores[1] == 1.0 and math.isnan(scores[2])


def test_length_band_defaults_still_work():
    scores = LengthBand()(["p"] * 3, ["one two three four five six", "x", " ".join(["w"] * 50)])
    assert scores.tolist() == pytest.approx([1.0, 0.8, 0.0])
