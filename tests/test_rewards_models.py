"""Model-backed components: MiniLM sentence similarity and a tiny local reward model."""

import math

import pytest
import torch

from maestro_lit.rewards.reward_model import RewardModel
from maestro_lit.rewards.similarity import SemanticSimilarity
from maestro_lit.rewards.tiny_rm import build_tiny_reward_model
from maestro_lit.text.encoder import SentenceEncoder
from maestro_lit.text.seqcls import SequenceClassifierScorer

CAT = "The cat sat quietly on the warm mat by the fire."


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder(batch_size=4)


def test_encoder_unit_norm_and_batch_invariant(encoder):
    texts = ["alpha", "a longer sentence about trains and stations", CAT, "", "zebra"]
    emb = encoder.encode(texts)
    assert emb.shape == (5, 384)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(5), atol=1e-5)
    single = torch.cat([encoder.encode([t]) for t in texts])
    assert torch.allclose(emb, single, atol=1e-5)


def test_cosine_identical_beats_paraphrase_beats_unrelated(encoder):
    sims = encoder.cosine(
        [CAT, CAT, CAT],
        [
            CAT,
            "A cat was sitting on a mat near the fireplace.",
            "Stock markets fell sharply after the interest rate decision.",
        ],
    )
    assert sims[0] == pytest.approx(1.0, abs=1e-4)
    assert sims[0] > sims[1] > sims[2]
    assert sims[1] > 0.6 and sims[2] < 0.2


def test_semantic_similarity_component(encoder):
    reward = SemanticSimilarity(fallback_to_prompt=True)
    reward.encoder = encoder  # share the module's loaded encoder
    prompts = ["Where is the cat?", "Where is the cat?", "Describe a cat by a fire."]
    completions = [CAT, "Quarterly revenue grew by four percent.", CAT]
    scores = reward(prompts, completions, reference=[CAT, CAT, None], category=["a", "b", "c"])
    assert scores[0] == pytest.approx(1.0, abs=1e-4) and scores[0] > scores[1]
    assert scores[2] == pytest.approx(float(encoder.cosine([CAT], [prompts[2]])[0]), abs=1e-5)
    reward.fallback_to_prompt = False
    assert math.isnan(reward(prompts, completions, reference=[CAT, CAT, ""])[2])
    assert math.isnan(reward(prompts[:1], completions[:1])[0])  # no reference column at all


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    return build_tiny_reward_model(tmp_path_factory.mktemp("tiny_rm"))


PROMPTS = ["what is a cat", "why", "how is the dog", "explain this", "write a question", "what"]
COMPLETIONS = [
    "the cat sat on the mat",
    "bad",
    "a good dog is a good dog and it sat",
    "it is not good",
    "what is the answer to this question",
    "",
]


def test_reward_model_one_score_per_completion_in_order(tiny_rm):
    scorer = SequenceClassifierScorer(tiny_rm, batch_size=4)
    scores = scorer.score(PROMPTS, COMPLETIONS)
    assert scores.dtype == torch.float32 and scores.shape == (len(PROMPTS),) and scores.device.type == "cpu"
    alone = torch.cat([scorer.score([p], [c]) for p, c in zip(PROMPTS, COMPLETIONS)])
    assert torch.allclose(scores, alone, atol=1e-5)
    assert scores.unique().numel() == len(PROMPTS)  # distinct inputs really give distinct scores
    assert "<s>user: what is a cat</s><s>assistant: the cat sat on the mat</s>" == scorer.render(
        PROMPTS[0], COMPLETIONS[0]
    )


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_reward_model_batch_size_invariant(tiny_rm, batch_size):
    reference = RewardModel(tiny_rm, batch_size=len(PROMPTS))(PROMPTS, COMPLETIONS)
    scores = RewardModel(tiny_rm, batch_size=batch_size).to("cpu")(
        PROMPTS, COMPLETIONS, reference=[None] * len(PROMPTS)
    )
    assert torch.allclose(scores, reference, atol=1e-5)


def test_reward_model_without_chat_template_joins_text(tmp_path):
    scorer = SequenceClassifierScorer(build_tiny_reward_model(tmp_path, chat_template=False))
    scores = scorer.score(PROMPTS[:2], COMPLETIONS[:2])
    assert scorer.render("q", "a") == "q\n\na" and torch.isfinite(scores).all()
