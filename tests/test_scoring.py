"""The scoring pass equals the model's own forward on many architectures, from one forward."""

import pytest
import torch

from maestro_lit.policy.model import Policy
from maestro_lit.policy.scoring import position_ids_from_mask, scoring_pass, terminal_hidden_state
from maestro_lit.settings import ModelSettings

SMALL = dict(
    vocab_size=96,
    hidden_size=32,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
)


def _configs():
    from transformers import (
        Gemma2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
        OPTConfig,
        Phi3Config,
        Qwen2Config,
        Qwen3Config,
    )

    kv = dict(num_key_value_heads=2)
    return {
        "llama": LlamaConfig(**SMALL, **kv),
        "qwen2": Qwen2Config(**SMALL, **kv),
        "qwen3": Qwen3Config(**SMALL, **kv, head_dim=8),
        # a small cap so that skipping it changes the log-probs a lot (real Gemma-2: 30)
        "gemma2": Gemma2Config(**SMALL, **kv, head_dim=8, final_logit_softcapping=2.0, attn_logit_softcapping=50.0),
        "mistral": MistralConfig(**SMALL, **kv),
        "phi3": Phi3Config(**SMALL, pad_token_id=0),
        "gpt_neox": GPTNeoXConfig(**SMALL),
        "opt": OPTConfig(
            vocab_size=96,
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            ffn_dim=64,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
        ),
    }


FAMILIES = list(_configs())


def _tiny(family: str):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = _configs()[family]
    # Gemma-2's attention softcapping needs eager; the same for all keeps it simple
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # random init gives near-uniform logits; sharpen them so differences show
        model.get_output_embeddings().weight.mul_(20.0)
    return model


def _batch():
    torch.manual_seed(1)
    ids = torch.randint(3, 96, (3, 14))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left-padded prompt
    mask[1, -3:] = 0  # right-padded completion
    return ids, mask


def _reference_logprobs(model, ids, mask, start, temperature):
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask), output_hidden_states=True
    )
    logits = out.logits[:, start - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, ids[:, start:, None]).squeeze(-1), logits, out.hidden_states


@pytest.mark.parametrize("family", FAMILIES)
def test_scoring_pass_matches_the_models_own_forward(family, one_thread):
    model = _tiny(family)
    ids, mask = _batch()
    start, temperature = 6, 0.7
    with torch.no_grad():
        result = scoring_pass(model, ids, mask, start, temperature, hidden_layer="last", with_entropy=True)
        expected, logits, hidden_states = _reference_logprobs(model, ids, mask, start, temperature)
    torch.testing.assert_close(result.logprobs, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(result.hidden, terminal_hidden_state(hidden_states[-1], mask), atol=1e-5, rtol=1e-5)
    logp = torch.log_softmax(logits, -1)
    torch.testing.assert_close(result.token_entropy, -(logp.exp() * logp).sum(-1), atol=1e-4, rtol=0)


def test_gemma2_softcapping_is_applied():
    """Guards the test above: the bare head (what scoring used to do) is far from Gemma-2's own forward."""
    model = _tiny("gemma2")
    ids, mask = _batch()
    with torch.no_grad():
        hidden = model.model(
            input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)
        ).last_hidden_state
        bare = torch.log_softmax(model.lm_head(hidden[:, 5:-1]), -1).gather(-1, ids[:, 6:, None]).squeeze(-1)
        result = scoring_pass(model, ids, mask, 6)
    assert (bare - result.logprobs).abs().max() > 0.5


@pytest.mark.parametrize("layer, index", [("first", 1), ("middle", 2), ("last", -1)])
def test_hidden_layer_picks_hidden_states_of_the_same_forward(layer, index):
    model = _tiny("qwen3")
    ids, mask = _batch()
    calls = []
    model.register_forward_hook(lambda *_: calls.append("model"))
    model.model.register_forward_hook(lambda *_: calls.append("backbone"))
    with torch.no_grad():
        result = scoring_pass(model, ids, mask, 6, hidden_layer=layer, with_entropy=True)
        assert calls == ["backbone", "model"]  # one forward gives log-probs, the chosen hidden state and the entropy
        _, _, hidden_states = _reference_logprobs(model, ids, mask, 6, 1.0)
    torch.testing.assert_close(result.hidden, terminal_hidden_state(hidden_states[index], mask), atol=1e-5, rtol=1e-5)
    others = [i for i in (1, 2, -1) if i != index]
    assert all(
        not torch.allclose(result.hidden, terminal_hidden_state(hidden_states[i], mask), atol=1e-3) for i in others
    )


def test_logits_only_at_completion_positions():
    """The head sees T + 1 positions, not the whole sequence: the prompt costs no LM-head work."""
    model = _tiny("llama")
    ids, mask = _batch()
    seen = []
    model.lm_head.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].shape[1]))
    with torch.no_grad():
        scoring_pass(model, ids, mask, 10)
    assert seen == [ids.shape[1] - 10 + 1]


def test_scoring_pass_extras_leave_logprobs_and_hidden_unchanged(tiny_model_path):
    torch.manual_seed(0)
    policy = Policy(ModelSettings(name_or_path=tiny_model_path))
    ids, mask = _batch()
    plain = policy.scoring_pass(ids, mask, 6, 0.9)
    logprobs, hidden = plain.logprobs, plain.hidden
    result = policy.scoring_pass(ids, mask, 6, 0.9, hidden_layer="last", with_entropy=True)
    torch.testing.assert_close(result.logprobs, logprobs)
    torch.testing.assert_close(result.hidden, hidden)
    assert logprobs.requires_grad and not hidden.requires_grad and not result.token_entropy.requires_grad


def test_prompt_end_hidden_state_is_the_last_prompt_tokens_and_ignores_the_completion(one_thread):
    model = _tiny("llama")
    ids, mask = _batch()
    start = 6
    with torch.no_grad():
        result = scoring_pass(model, ids, mask, start, hidden_layer="last", hidden_position="prompt_end")
        _, _, hidden_states = _reference_logprobs(model, ids, mask, start, 1.0)
        other = ids.clone()
        other[:, start:] = torch.randint(3, 96, other[:, start:].shape)  # different completions, same prompts
        again = scoring_pass(model, other, mask, start, hidden_position="prompt_end")
    torch.testing.assert_close(result.hidden, hidden_states[-1][:, start - 1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again.hidden, result.hidden, atol=1e-5, rtol=1e-5)
    end = scoring_pass(model, other, mask, start).hidden
    assert not torch.allclose(end, result.hidden, atol=1e-3)  # the default reads the completion's end
