"""configs/rewards/paper.yaml: the five components, their normalisations, and one scoring pass through all of them."""

import importlib
from pathlib import Path

import pytest
import torch
import yaml

from maestro_lit import grpo
from maestro_lit.policy.rollout import tokenize_prompts
from maestro_lit.rewards.base import RewardInputs, check_component_order, id_lists, normalizations, score_components
from maestro_lit.rewards.perplexity import ReferenceNLL

PAPER = Path(__file__).resolve().parents[1] / "configs" / "rewards" / "paper.yaml"


def instantiate(entry):
    module, _, name = entry["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**entry.get("init_args", {}))


@pytest.fixture(scope="module")
def paper_components(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAESTRO_LIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        return [instantiate(entry) for entry in yaml.safe_load(PAPER.read_text())["model"]["rewards"]]


def test_paper_preset_names_and_normalisations(paper_components):
    check_component_order(paper_components)
    assert [c.name for c in paper_components] == ["ppl", "fmt", "ent", "len", "pref"]
    assert normalizations(paper_components) == ["rank", "zscore", "rank", "zscore", "zscore"]
    ppl, fmt, ent, length, pref = paper_components
    assert ppl.needs_policy and ent.needs_logprobs and length.needs_scores_of == ("ppl",)
    assert not any(c.needs_reference_logprobs for c in paper_components)


def test_one_scoring_pass_over_the_five(paper_components, tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32).eval()
    G = 2
    completions = [
        "<think>Paris is the capital.</think><answer>Paris</answer>",
        "Paris",
        "<think>blue sky</think><answer>blue</answer>",
        "<think>x</think><answer>red</answer>",
    ]
    encoded = tokenizer(completions, add_special_tokens=False, padding=True, return_tensors="pt")
    prompt_ids, prompt_mask, _ = tokenize_prompts(
        tokenizer, [[{"role": "user", "content": q}] for q in ["Capital of France?", "Sky colour?"]], 64
    )
    nll = ReferenceNLL(model.model, model.lm_head)
    inputs = RewardInputs(
        prompts=["Capital of France?"] * G + ["Sky colour?"] * G,
        completions=completions,
        completion_ids=id_lists(encoded["input_ids"], encoded["attention_mask"]),
        columns={"reference": ["Paris", "Paris", "blue", "blue"], "category": ["general"] * 4},
        group_size=G,
        completion_mask=encoded["attention_mask"],
        logprobs=-torch.rand(encoded["input_ids"].shape),
        prompt_ids=prompt_ids.repeat_interleave(G, 0),
        prompt_mask=prompt_mask.repeat_interleave(G, 0),
        tokenizer=tokenizer,
        reference_nll=nll,
    )
    raw = score_components(paper_components, inputs)
    assert raw.shape == (4, 5) and nll.calls == 1
    assert raw[:, 1].tolist() == [1.0, 0.0, 1.0, 1.0]  # fmt
    assert torch.isnan(raw[1, 0]) and torch.isfinite(raw[[0, 2, 3], 0]).all()  # ppl: invalid format → missing
    assert raw[1, 3] == 0.0 and torch.isfinite(raw[:, 4]).all()  # len: invalid → 0; pref scored
    scalar = grpo.scalarize(raw, torch.full((4, 5), 0.2), G, normalizations=normalizations(paper_components))
    assert torch.isfinite(scalar).all()
