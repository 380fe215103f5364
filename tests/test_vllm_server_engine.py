"""The vllm_server engine against a fake OpenAI-compatible server: adapter pushes, group layout, named errors."""

import json
import time

import pytest
import torch
from fake_openai import FakeOpenAIServer

from maestro_lit.policy.model import Policy
from maestro_lit.policy.rollout import tokenize_prompts
from maestro_lit.policy.sampler import Sampler
from maestro_lit.policy.vllm_server import VllmServerEngine, VllmServerError
from maestro_lit.settings import ModelSettings, SamplingSettings, VllmServerSettings

PROMPTS = ["What is rain?", "Name a colour.", "Hi"]
EOS = 1


@pytest.fixture(scope="module")
def policy(tiny_model_path):
    return Policy(ModelSettings(name_or_path=tiny_model_path))


def _completions(body: dict, eos_after: int = 3) -> bytes:
    """Completion g of prompt b: its last token id, then 10·b + g, then EOS; log-probs −(b + g/10); shuffled."""
    choices = []
    for b, prompt in enumerate(body["prompt"]):
        for g in range(body["n"]):
            ids = [prompt[-1], 10 * b + g + 2, EOS][:eos_after]
            values = [-(b + g / 10)] * len(ids)
            tokens = [f"token_id:{i}" for i in ids]
            choices.append(
                {"index": b * body["n"] + g, "text": "", "logprobs": {"tokens": tokens, "token_logprobs": values}}
            )
    return json.dumps({"object": "text_completion", "choices": choices[::-1]}).encode()


def _reply(path, headers, body):
    if path.endswith("/load_lora_adapter"):
        return 200, b"Success: LoRA adapter loaded"
    return 200, _completions(body)


@pytest.fixture
def server():
    fake = FakeOpenAIServer(_reply)
    yield fake
    fake.close()


def _engine(server, tmp_path, **settings):
    base = server.url.removesuffix("/v1")
    return VllmServerEngine(VllmServerSettings(base_url=base, adapter_dir=str(tmp_path), **settings))


def _prompts(policy):
    return tokenize_prompts(policy.tokenizer, [[{"role": "user", "content": p}] for p in PROMPTS], 64)[:2]


def test_one_adapter_load_per_policy_update_and_g_rows_per_prompt(policy, server, tmp_path):
    engine = _engine(server, tmp_path)
    sampler = Sampler(policy, SamplingSettings(max_new_tokens=8, temperature=0.7, top_k=20), engine)
    for _ in range(2):
        rollout, _ = sampler.prompts(PROMPTS, 4, False, torch.device("cpu"))
        sampler.prompts(PROMPTS[:1], 1, True, torch.device("cpu"))  # validation between updates: no new load
        engine.weights_changed()
    paths = [path for path, _, _ in server.requests]
    assert paths == ["/v1/load_lora_adapter", "/v1/completions", "/v1/completions"] * 2
    load = server.bodies[0]
    assert load["load_inplace"] is True and load["lora_name"] == "maestro_policy"
    assert (tmp_path / "maestro_policy" / "adapter_config.json").is_file() and load["lora_path"].endswith(
        "maestro_policy"
    )
    request = server.bodies[1]
    assert request["n"] == 4 and request["model"] == "maestro_policy" and request["temperature"] == 0.7
    assert request["top_k"] == 20 and request["max_tokens"] == 8 and request["logprobs"] is not None
    assert request["prompt"][0] == [t for t, m in zip(*[x[0].tolist() for x in _prompts(policy)]) if m]
    # rows b·G + g hold prompt b's completions in order (the server answered them shuffled)
    middle = rollout.completion_ids[:, 1].tolist()
    assert middle == [10 * b + g + 2 for b in range(len(PROMPTS)) for g in range(4)]
    assert rollout.completion_mask.sum(-1).tolist() == [3] * 12 and not rollout.truncated.any()
    expected = torch.tensor([[-(b + g / 10)] * 3 for b in range(len(PROMPTS)) for g in range(4)])
    torch.testing.assert_close(rollout.sampler_logprobs, expected)


def test_greedy_requests_temperature_zero_and_returns_no_logprobs(policy, server, tmp_path):
    ids, mask = _prompts(policy)
    rollout = _engine(server, tmp_path).generate(policy, ids, mask, 1, SamplingSettings(), greedy=True)
    assert server.bodies[-1]["temperature"] == 0.0 and server.bodies[-1]["top_k"] == -1
    assert rollout.sampler_logprobs is None and rollout.completion_ids.shape[0] == len(PROMPTS)


@pytest.mark.parametrize(
    "reply, message",
    [
        (lambda p, h, b: (500, b'{"error": "CUDA out of memory"}'), 'answered HTTP 500: {"error": "CUDA out of'),
        (lambda p, h, b: (404, b"LoRA adapter not found") if "load" in p else (200, b"{}"), "HTTP 404"),
        (lambda p, h, b: (200, b"Success") if "load" in p else (200, b'{"choices": 3}'), "gave no completions"),
        (
            lambda p, h, b: (200, b"ok") if "load" in p else (200, _completions({**b, "n": b["n"] - 1})),
            "returned 9 of 12 completions",
        ),
    ],
)
def test_server_failures_are_named_errors(policy, tmp_path, reply, message):
    fake = FakeOpenAIServer(reply)
    try:
        ids, mask = _prompts(policy)
        with pytest.raises(VllmServerError, match="vLLM server: POST http://127.0.0.1") as err:
            _engine(fake, tmp_path).generate(policy, ids, mask, 4, SamplingSettings())
        assert message in str(err.value)
    finally:
        fake.close()


def test_a_slow_server_is_a_named_timeout(policy, tmp_path):
    def slow(path, headers, body):
        time.sleep(1.5)
        return 200, b"late"

    fake = FakeOpenAIServer(slow)
    try:
        ids, mask = _prompts(policy)
        with pytest.raises(VllmServerError, match=r"timed out after 0.3 s \(model.rollout.vllm_server.timeout_s\)"):
            _engine(fake, tmp_path, timeout_s=0.3).generate(policy, ids, mask, 2, SamplingSettings())
    finally:
        fake.close()


def test_an_unreachable_server_and_a_bad_url_name_their_setting(policy, tmp_path):
    with pytest.raises(ValueError, match="model.rollout.vllm_server.base_url"):
        VllmServerEngine(VllmServerSettings(base_url="localhost:8000"))
    engine = VllmServerEngine(VllmServerSettings(base_url="http://127.0.0.1:9", adapter_dir=str(tmp_path)))
    ids, mask = _prompts(policy)
    with pytest.raises(VllmServerError, match="is the server running at model.rollout.vllm_server.base_url"):
        engine.generate(policy, ids, mask, 2, SamplingSettings())
