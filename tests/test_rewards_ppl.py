"""NOVER's reasoning-perplexity reward on the tiny model, against a manual computation."""

import math
from contextlib import contextmanager

import pytest
import torch

from maestro_lit import grpo
from maestro_lit.policy.rollout import tokenize_prompts
from maestro_lit.rewards.base import RewardError, RewardInputs, call_component
from maestro_lit.rewards.perplexity import ReasoningPerplexity, ReferenceNLL, length_factor

QUESTIONS = ["What is the capital of France?", "Name a colour of the sky."]
REFERENCES = ["Paris", "blue"]
COMPLETIONS = [
    "<think>France is a country in Europe and its capital city is Paris.</think>\n<answer>Paris</answer>",
    "<think>hmm</think><answer>London</answer>",
    "no format at all",
    "<think>\nThe sky looks blue on a clear day because of scattering.\n</think>\n\n<answer>\nblue\n</answer>",
    "<think>it is red</think> extra <answer>red</answer>",  # text between blocks: invalid
    "<think>The sky is blue.</think><answer>blue</answer>",
]
G = 3


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32).eval()
    return model, tokenizer


def rollout_inputs(tokenizer, reference_nll, references=REFERENCES):
    prompt_ids, prompt_mask, _ = tokenize_prompts(tokenizer, [[{"role": "user", "content": q}] for q in QUESTIONS], 256)
    prompt_ids, prompt_mask = prompt_ids.repeat_interleave(G, 0), prompt_mask.repeat_interleave(G, 0)
    return RewardInputs(
        prompts=[q for q in QUESTIONS for _ in range(G)],
        completions=COMPLETIONS,
        completion_ids=[[1]] * len(COMPLETIONS),
        columns={"reference": [r for r in references for _ in range(G)]},
        group_size=G,
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        tokenizer=tokenizer,
        reference_nll=reference_nll,
    )


def manual_score(model, tokenizer, question, think_block, reference):
    """One unbatched forward per completion, full logits: the textbook computation."""
    prompt_text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    reasoning = tokenizer(think_block, add_special_tokens=False)["input_ids"]
    answer = tokenizer(f"\n<answer>\n{reference}\n</answer>", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + reasoning + answer])
    with torch.no_grad():
        logp = model(ids).logits.log_softmax(-1)[0]
    start = len(prompt) + len(reasoning)
    nll = [-logp[t - 1, ids[0, t]].item() for t in range(start, ids.shape[1])]
    return -(sum(nll) / len(nll)) / max(1.0, 1.0 + math.log10(len(reasoning)))


def test_ppl_matches_manual_computation_in_one_batched_forward(tiny):
    model, tokenizer = tiny
    forwards, contexts = [], []
    hook = model.model.register_forward_hook(lambda module, args, output: forwards.append(1))

    @contextmanager
    def reference():
        contexts.append(1)
        yield

    try:
        nll = ReferenceNLL(model.model, model.lm_head, context=reference, chunk_rows=3)  # several LM-head chunks
        scores = call_component(ReasoningPerplexity(), rollout_inputs(tokenizer, nll))
    finally:
        hook.remove()
    assert len(forwards) == 1 and nll.calls == 1 and len(contexts) == 1
    blocks = {
        0: "<think>France is a country in Europe and its capital city is Paris.</think>",
        1: "<think>hmm</think>",
        3: "<think>\nThe sky looks blue on a clear day because of scattering.\n</think>",
        5: "<think>The sky is blue.</think>",
    }
    for i, block in blocks.items():
        expected = manual_score(model, tokenizer, QUESTIONS[i // G], block, REFERENCES[i // G])
        assert scores[i].item() == pytest.approx(expected, abs=1e-4), i
    assert math.isnan(scores[2]) and math.isnan(scores[4])
    assert scores[0] != scores[1]  # the reasoning changes the answer's perplexity
    # NOVER's reward is the within-group rank: invalid rows 0, the best valid row 1.
    reward = grpo.rank_within_groups(scores.unsqueeze(-1), G).flatten()
    assert reward[2] == 0.0 and reward[4] == 0.0
    for better, worse in ((0, 1) if scores[0] > scores[1] else (1, 0), (3, 5) if scores[3] > scores[5] else (5, 3)):
        assert reward[better] == 1.0 and reward[worse] == 0.5  # which one wins depends on the model's weights


def test_ppl_without_scorable_rows_runs_no_forward(tiny):
    model, tokenizer = tiny
    nll = ReferenceNLL(model.model, model.lm_head)
    scores = call_component(ReasoningPerplexity(), rollout_inputs(tokenizer, nll, references=[None, ""]))
    assert torch.isnan(scores).all() and nll.calls == 0


def test_ppl_needs_the_policy_extras_and_the_reference_column(tiny):
    model, tokenizer = tiny
    with pytest.raises(RewardError, match="'ppl' needs 'tokenizer'"):
        call_component(ReasoningPerplexity(), RewardInputs(prompts=["p"], completions=["c"], completion_ids=[[1]]))
    inputs = rollout_inputs(tokenizer, ReferenceNLL(model.model, model.lm_head))
    with pytest.raises(ValueError, match="dataset column 'answer_text'"):
        call_component(ReasoningPerplexity(reference_column="answer_text"), inputs)


def test_length_factor_is_novers():
    assert length_factor(0) == 1.0 and length_factor(1) == 1.0 and length_factor(100) == pytest.approx(3.0)
