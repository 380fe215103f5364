"""The opt-in fast rollout must produce the same tokens as ``rollout.generate`` where it is deterministic."""

import pytest
import torch

from maestro_lit.policy.fast_rollout import cache_argument_name, fast_generate, filter_logits, sample_tokens
from maestro_lit.policy.model import Policy
from maestro_lit.policy.rollout import generate, tokenize_prompts
from maestro_lit.settings import FastRolloutSettings, ModelSettings, SamplingSettings

PROMPTS = ["Write a short poem about the sea at night.", "What is the capital of France?", "Name three colours.", "Hi"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def policy(tiny_model_path):
    torch.manual_seed(0)
    policy = Policy(ModelSettings(name_or_path=tiny_model_path))
    with torch.no_grad():  # non-zero LoRA B so the adapters actually change the logits
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return policy


def _prompts(policy):
    ids, mask, _ = tokenize_prompts(policy.tokenizer, [[{"role": "user", "content": p}] for p in PROMPTS], 64)
    return ids, mask


@pytest.mark.parametrize("static_cache, merged", [(False, False), (True, True)])
def test_greedy_matches_generate(policy, static_cache, merged):
    ids, mask = _prompts(policy)
    sampling = SamplingSettings(max_new_tokens=16)
    with policy.merged_adapters(merged):
        plain = generate(policy, ids, mask, 1, sampling, greedy=True)
        fast = fast_generate(
            policy, ids, mask, 1, sampling, greedy=True, settings=FastRolloutSettings(static_cache=static_cache)
        )
    width = plain.completion_ids.shape[1]
    assert fast.completion_ids.shape[1] == width  # both stop when every row has ended
    assert torch.equal(fast.completion_ids, plain.completion_ids)
    assert torch.equal(fast.completion_mask, plain.completion_mask)
    assert fast.completions == plain.completions
    assert policy.model.training  # mode restored


def test_top_k_one_sampling_is_greedy(policy):
    ids, mask = _prompts(policy)
    greedy = fast_generate(policy, ids, mask, 1, SamplingSettings(max_new_tokens=8), greedy=True)
    sampled = fast_generate(
        policy, ids, mask, 1, SamplingSettings(max_new_tokens=8, top_k=1, temperature=0.7), greedy=False
    )
    assert torch.equal(sampled.completion_ids, greedy.completion_ids)


def test_filter_logits_matches_hf_processors():
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(5, 50, generator=torch.Generator().manual_seed(1))
    ours = filter_logits(logits, 0.8, 10, 0.9)
    hf = logits.clone()
    for warper in (TemperatureLogitsWarper(0.8), TopKLogitsWarper(10), TopPLogitsWarper(0.9)):
        hf = warper(None, hf)
    assert torch.equal(torch.isinf(ours), torch.isinf(hf))
    torch.testing.assert_close(ours[~torch.isinf(ours)], hf[~torch.isinf(hf)])


def test_exponential_race_samples_the_softmax():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]]).expand(20000, -1)
    draws = sample_tokens(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    torch.testing.assert_close(freq, logits[0].softmax(-1), atol=0.015, rtol=0)


def test_cache_argument_follows_the_installed_transformers_signature():
    class Recent(torch.nn.Module):
        def forward(self, input_ids=None, cache=None, **kwargs): ...

    class Older(torch.nn.Module):  # e.g. transformers 5.17, the GPU image's version
        def forward(self, input_ids=None, past_key_values=None, **kwargs): ...

    class NoCache(torch.nn.Module):
        def forward(self, input_ids=None, **kwargs): ...

    assert cache_argument_name(Recent()) == "cache"
    assert cache_argument_name(Older()) == "past_key_values"
    with pytest.raises(TypeError, match="NoCache.forward takes neither"):
        cache_argument_name(NoCache())


def test_static_decoder_is_reused_across_prompt_lengths_in_one_bucket(policy):
    """Training rollouts vary in prompt length; one bucket must mean one cache (and one compiled graph)."""
    from maestro_lit.policy.fast_rollout import _STATIC_DECODERS

    settings = FastRolloutSettings(static_cache=True, length_bucket=64)
    sampling = SamplingSettings(max_new_tokens=12)
    model = policy.model.get_base_model()
    ids, mask = _prompts(policy)
    short_ids, short_mask, _ = tokenize_prompts(policy.tokenizer, [[{"role": "user", "content": "Hi"}]] * 4, 64)
    assert short_ids.shape[1] < ids.shape[1] <= 64  # different lengths, same bucket
    decoders = []
    for prompt_ids, prompt_mask in ((ids, mask), (short_ids, short_mask), (ids, mask)):
        fast = fast_generate(policy, prompt_ids, prompt_mask, 1, sampling, greedy=True, settings=settings)
        plain = generate(policy, prompt_ids, prompt_mask, 1, sampling, greedy=True)
        assert torch.equal(fast.completion_ids, plain.completion_ids)  # a reused cache leaks nothing from the last call
        decoders.append(_STATIC_DECODERS[model])
    assert decoders[0] is decoders[1] is decoders[2]
    fast_generate(policy, ids[:2], mask[:2], 1, sampling, greedy=True, settings=settings)  # other batch size
    assert _STATIC_DECODERS[model] is not decoders[0]


@pytest.mark.parametrize(
    "sampling",
    [SamplingSettings(max_new_tokens=16), SamplingSettings(max_new_tokens=16, temperature=0.8, top_k=20, top_p=0.9)],
)
def test_sampling_draws_the_same_tokens_as_generate_from_the_same_seed(policy, sampling):
    """torch.multinomial draws one sample by the same exponential race, so equal seeds give equal samples."""
    ids, mask = _prompts(policy)
    torch.manual_seed(123)
    plain = generate(policy, ids, mask, 3, sampling, greedy=False)
    torch.manual_seed(123)
    fast = fast_generate(policy, ids, mask, 3, sampling, greedy=False)
    assert torch.equal(fast.completion_ids, plain.completion_ids)
    assert len(set(plain.completions)) > 1  # really sampled, not one repeated answer
