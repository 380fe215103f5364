import pytest
import torch

from maestro_lit.policy.model import Policy
from maestro_lit.policy.rollout import completion_mask_from_ids, generate, tokenize_prompts
from maestro_lit.policy.scoring import terminal_hidden_state
from maestro_lit.settings import LoraSettings, ModelSettings, SamplingSettings


def test_terminal_hidden_state_left_and_right_padding():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    assert terminal_hidden_state(hidden, left).flatten().tolist() == [3.0, 7.0]
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    assert terminal_hidden_state(hidden, right).flatten().tolist() == [1.0, 6.0]
    both = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1]])  # left-padded prompt + right-padded completion
    assert terminal_hidden_state(hidden, both).flatten().tolist() == [2.0, 7.0]


def test_completion_mask_stops_at_first_eos():
    ids = torch.tensor([[5, 6, 2, 7, 2], [5, 6, 7, 8, 9]])
    mask, truncated = completion_mask_from_ids(ids, [2])
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert truncated.tolist() == [False, True]


@pytest.fixture(scope="module")
def policy(tiny_model_path):
    torch.manual_seed(0)
    return Policy(ModelSettings(name_or_path=tiny_model_path))


def test_saved_model_loads_through_the_hub_path(tmp_path, tiny_model_path):
    """A model saved with save_pretrained loads via the same from_pretrained code a hub id takes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(tiny_model_path).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_model_path).save_pretrained(tmp_path)
    policy = Policy(
        ModelSettings(name_or_path=str(tmp_path), lora=LoraSettings(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    )
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert all("q_proj" in n or "v_proj" in n for n in trainable)


def test_missing_model_path_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="name_or_path"):
        Policy(ModelSettings(name_or_path=str(tmp_path / "nope")))


def test_4bit_without_bitsandbytes_or_with_an_old_one_fails_naming_the_key(monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import raises ImportError
    with pytest.raises(RuntimeError, match=r"model\.policy\.load_in_4bit=true needs bitsandbytes>=0\.49: pip install"):
        Policy(ModelSettings(name_or_path="maestro-lit/tiny", load_in_4bit=True))
    monkeypatch.setitem(sys.modules, "bitsandbytes", types.SimpleNamespace(__version__="0.45.5"))
    with pytest.raises(
        RuntimeError, match=r"model\.policy\.load_in_4bit=true needs bitsandbytes>=0\.49 .*found 0\.45\.5"
    ):
        Policy(ModelSettings(name_or_path="maestro-lit/tiny", load_in_4bit=True))


def test_full_finetuning_refuses_4bit():
    with pytest.raises(ValueError, match=r"model\.policy\.lora=null .*load_in_4bit=false"):
        Policy(ModelSettings(name_or_path="maestro-lit/tiny", lora=None, load_in_4bit=True))


def test_rollout_groups_rows_and_score_matches_full_forward(policy):
    conversations = [
        [{"role": "user", "content": "What is the capital of Spain?"}],
        [{"role": "user", "content": "Write a poem."}],
    ]
    ids, mask, n_truncated = tokenize_prompts(policy.tokenizer, conversations, max_prompt_tokens=64)
    assert n_truncated == 0 and (mask[:, -1] == 1).all()  # left padding
    torch.manual_seed(0)
    rollout = generate(policy, ids, mask, num_generations=3, sampling=SamplingSettings(max_new_tokens=10))
    assert rollout.completion_ids.shape[0] == 6 and len(rollout.completions) == 6
    assert torch.equal(rollout.prompt_ids[0], rollout.prompt_ids[2]) and torch.equal(rollout.prompt_ids[3], ids[1])
    # tokens after the first EOS are padding and masked out
    eos = policy.tokenizer.eos_token_id
    for row, row_mask in zip(rollout.completion_ids, rollout.completion_mask):
        hits = (row == eos).nonzero()
        if len(hits):
            assert row_mask[: hits[0] + 1].all() and not row_mask[hits[0] + 1 :].any()

    with torch.no_grad():
        scored = policy.scoring_pass(
            rollout.input_ids, rollout.attention_mask, rollout.completion_start, temperature=1.0
        )
        logprobs, hidden = scored.logprobs, scored.hidden
        from maestro_lit.policy.scoring import position_ids_from_mask

        full = policy.model(
            input_ids=rollout.input_ids,
            attention_mask=rollout.attention_mask,
            position_ids=position_ids_from_mask(rollout.attention_mask),
            output_hidden_states=True,
        )
    start = rollout.completion_start
    expected = (
        torch.log_softmax(full.logits[:, start - 1 : -1].float(), -1)
        .gather(-1, rollout.completion_ids.unsqueeze(-1))
        .squeeze(-1)
    )
    m = rollout.completion_mask.bool()
    torch.testing.assert_close(logprobs[m], expected[m], atol=1e-5, rtol=1e-5)
    last = terminal_hidden_state(full.hidden_states[-1], rollout.attention_mask)
    torch.testing.assert_close(hidden, last, atol=1e-5, rtol=1e-5)


def test_adapters_disabled_is_the_base_model(policy):
    ids = torch.tensor([[5, 6, 7, 8]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        for p in (p for n, p in policy.named_parameters() if "lora_B" in n):
            p.add_(0.05)
        tuned = policy.scoring_pass(ids, mask, 2).logprobs
        with policy.reference():
            ref = policy.scoring_pass(ids, mask, 2).logprobs
        base = policy.model.get_base_model()
        with policy.model.disable_adapter():
            logits = base(input_ids=ids).logits
        for p in (p for n, p in policy.named_parameters() if "lora_B" in n):
            p.sub_(0.05)
    expected = torch.log_softmax(logits[:, 1:-1], -1).gather(-1, ids[:, 2:].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(ref, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(tuned, ref)


def test_over_long_prompts_keep_their_last_tokens_and_are_counted(policy):
    long_prompt = " ".join(["word"] * 200) + " What is the capital of Spain?"
    conversations = [[{"role": "user", "content": long_prompt}], [{"role": "user", "content": "Hi"}]]
    ids, mask, n_truncated = tokenize_prompts(policy.tokenizer, conversations, max_prompt_tokens=16)
    assert n_truncated == 1 and ids.shape[1] == 16
    tail = policy.tokenizer.decode(ids[0], skip_special_tokens=True)
    assert "Spain" in tail  # truncated from the left: the question survives
