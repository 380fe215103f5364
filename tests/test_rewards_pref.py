"""``pref`` follows Skywork-Reward-V2's conventions on a tiny sequence classifier."""

import pytest
import torch

from maestro_lit.rewards.base import RewardInputs, call_component
from maestro_lit.rewards.reward_model import RewardModel
from maestro_lit.rewards.tiny_rm import TINY_RM_ID, build_tiny_reward_model

PROMPTS = ["what is a cat", "why is the dog good", "explain this"]
COMPLETIONS = ["the cat sat on the mat", "it is a good dog", "i not answer this question"]


@pytest.fixture(scope="module")
def two_label_rm(tmp_path_factory):
    # Two logits per pair, so taking the wrong index would be visible.
    return build_tiny_reward_model(tmp_path_factory.mktemp("rm2"), seed=3, num_labels=2)


def test_pref_is_logit_zero_of_the_chat_templated_user_assistant_pair(two_label_rm):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    component = RewardModel(two_label_rm, batch_size=2, name="pref")
    inputs = RewardInputs(
        prompts=PROMPTS, completions=COMPLETIONS, completion_ids=[[1]] * 3, columns={"reference": [None] * 3}
    )
    scores = call_component(component, inputs)

    tokenizer = AutoTokenizer.from_pretrained(two_label_rm)
    model = AutoModelForSequenceClassification.from_pretrained(two_label_rm, dtype=torch.float32).eval()
    logits = []
    for prompt, completion in zip(PROMPTS, COMPLETIONS):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}], tokenize=False
        )
        assert text == f"<s>user: {prompt}</s><s>assistant: {completion}</s>"  # two turns, no system turn
        assert component.scorer.render(prompt, completion) == text
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")  # no second BOS on top of the template's
        with torch.no_grad():
            logits.append(model(**ids).logits[0])
    logits = torch.stack(logits)
    torch.testing.assert_close(scores, logits[:, 0], atol=1e-5, rtol=0)
    assert not torch.allclose(scores, logits[:, 1], atol=1e-3)


def test_pref_stand_in_id_builds_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("MAESTRO_LIT_CACHE", str(tmp_path))
    component = RewardModel(TINY_RM_ID, name="pref")
    assert component.scorer.name_or_path == str(tmp_path / "tiny-rm-v1")
    scores = component(prompts=PROMPTS, completions=COMPLETIONS)
    assert scores.shape == (3,) and torch.isfinite(scores).all()
    assert RewardModel(TINY_RM_ID).scorer.name_or_path == str(tmp_path / "tiny-rm-v1")  # cached, not rebuilt
