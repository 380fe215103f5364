"""Every rollout engine samples what ``rollout.generate`` samples: group layout, LoRA, greedy tokens, distributions.

The local engines run on the tiny model in fp32 (the vllm_server client has its own file, against a fake server).
Run them with transformers 5.17 too: ``PYTHONPATH=<5.17 target dir>:src pytest tests/test_rollout_engines.py``.
"""

import pytest
import torch

from maestro_lit.policy.continuous_batching import ContinuousBatchingEngine
from maestro_lit.policy.engines import ENGINES, build_engine
from maestro_lit.policy.model import Policy
from maestro_lit.policy.rollout import RolloutEngineError, generate, tokenize_prompts
from maestro_lit.settings import ContinuousBatchingSettings, ModelSettings, RolloutSettings, SamplingSettings

PROMPTS = ["Write a short poem about the sea at night.", "What is the capital of France?", "Hi"]
LOCAL = ["generate", "fast", "continuous_batching"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def policy(tiny_model_path):
    torch.manual_seed(0)
    policy = Policy(ModelSettings(name_or_path=tiny_model_path))
    with torch.no_grad():  # non-zero LoRA B so the adapters change the logits
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return policy


def _prompts(policy, prompts=PROMPTS):
    ids, mask, _ = tokenize_prompts(policy.tokenizer, [[{"role": "user", "content": p}] for p in prompts], 64)
    return ids, mask


def test_every_engine_name_builds_its_class():
    for name, cls in ENGINES.items():
        assert type(build_engine(RolloutSettings(engine=name))) is cls
    with pytest.raises(ValueError, match="model.rollout.engine"):
        RolloutSettings(engine="vllm")


@pytest.mark.parametrize("engine", LOCAL)
def test_greedy_tokens_equal_generate_and_carry_the_lora(policy, engine):
    ids, mask = _prompts(policy)
    sampling = SamplingSettings(max_new_tokens=12)
    reference = generate(policy, ids, mask, 1, sampling, greedy=True)
    rollout = build_engine(RolloutSettings(engine=engine)).generate(policy, ids, mask, 1, sampling, greedy=True)
    assert torch.equal(rollout.completion_ids, reference.completion_ids)
    assert torch.equal(rollout.completion_mask, reference.completion_mask)
    assert rollout.completions == reference.completions
    with policy.reference():  # adapters off: the base model answers differently, so the engine used the LoRA
        base = build_engine(RolloutSettings(engine=engine)).generate(policy, ids, mask, 1, sampling, greedy=True)
    assert base.completions != rollout.completions


@pytest.mark.parametrize("engine", LOCAL)
def test_sampled_rows_come_in_groups_of_g_per_prompt(policy, engine):
    """top_k=1 sampling is greedy: each prompt's G rows equal its greedy answer, so rows b·G..b·G+G−1 are prompt b's."""
    ids, mask = _prompts(policy)
    group = 3
    sampling = SamplingSettings(max_new_tokens=10, top_k=1)
    greedy = generate(policy, ids, mask, 1, SamplingSettings(max_new_tokens=10), greedy=True).completions
    rollout = build_engine(RolloutSettings(engine=engine)).generate(policy, ids, mask, group, sampling, greedy=False)
    assert len(set(greedy)) == len(PROMPTS)  # the prompts' answers differ, so a misplaced row would show
    assert rollout.completions == [answer for answer in greedy for _ in range(group)]
    assert torch.equal(rollout.prompt_ids, ids.repeat_interleave(group, dim=0))
    assert rollout.completion_ids.shape[0] == rollout.completion_mask.shape[0] == len(PROMPTS) * group


def _first_token_distribution(policy, ids, mask, sampling) -> torch.Tensor:
    """The exact next-token distribution after the prompt: logits / T, then top-k (as generate's processors)."""
    with torch.no_grad():
        logits = policy.causal_lm(input_ids=ids, attention_mask=mask).logits[0, -1].float() / sampling.temperature
    kth = logits.topk(sampling.top_k).values[-1]
    return logits.masked_fill(logits < kth, float("-inf")).softmax(-1)


@pytest.mark.parametrize("engine", LOCAL)
def test_first_token_frequencies_follow_the_tempered_top_k_distribution(policy, engine):
    ids, mask = _prompts(policy, ["Hi"])
    sampling = SamplingSettings(max_new_tokens=1, temperature=0.5, top_k=5)
    exact = _first_token_distribution(policy, ids, mask, sampling)
    untempered = _first_token_distribution(policy, ids, mask, SamplingSettings(temperature=1.0, top_k=5))
    tolerance = 0.08
    assert 0.5 * (exact - untempered).abs().sum() > 2 * tolerance  # the check can tell a wrong temperature apart
    torch.manual_seed(7)
    draws = 300
    rollout = build_engine(RolloutSettings(engine=engine)).generate(policy, ids, mask, draws, sampling)
    counts = torch.bincount(rollout.completion_ids[:, 0], minlength=exact.numel()).float()
    assert counts[exact == 0].sum() == 0  # nothing outside the top-k
    total_variation = 0.5 * (counts / draws - exact).abs().sum()
    assert total_variation < tolerance, total_variation


def test_continuous_batching_logprobs_equal_the_scoring_forward_at_every_position(policy):
    """The engine's log-probs of its sampled tokens are the training forward's, at the sampling temperature."""
    ids, mask = _prompts(policy)
    sampling = SamplingSettings(max_new_tokens=12, temperature=0.8)
    torch.manual_seed(3)
    rollout = ContinuousBatchingEngine().generate(policy, ids, mask, 2, sampling)
    scored = policy.scoring_pass(
        rollout.input_ids, rollout.attention_mask, rollout.completion_start, temperature=sampling.temperature
    )
    on = rollout.completion_mask.bool()
    assert rollout.sampler_logprobs is not None and on.sum() > len(PROMPTS) * 2
    torch.testing.assert_close(rollout.sampler_logprobs[on], scored.logprobs[on], atol=1e-4, rtol=1e-4)
    assert (rollout.sampler_logprobs[~on] == 0).all()


def test_continuous_batching_names_its_memory_share_when_the_cache_does_not_fit(policy):
    ids, mask = _prompts(policy)
    engine = ContinuousBatchingEngine(ContinuousBatchingSettings(max_memory_percent=1e-12))
    with pytest.raises(RolloutEngineError, match="model.rollout.continuous_batching.max_memory_percent"):
        engine.generate(policy, ids, mask, 2, SamplingSettings(max_new_tokens=4))
