"""Gradient checkpointing changes memory, not gradients: LoRA, full fine-tuning and 4-bit, through the scoring pass."""

import pytest
import torch
from tiny64 import save_tiny64

from maestro_lit.policy.model import Policy
from maestro_lit.policy.scoring import decoder_layers
from maestro_lit.settings import LoraSettings, ModelSettings


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, tiny_model_path):
    return save_tiny64(tmp_path_factory.mktemp("tiny64"), tiny_model_path)


def _gradients(settings: ModelSettings, ids, mask) -> tuple[dict[str, torch.Tensor], int, torch.Tensor]:
    torch.manual_seed(0)
    policy = Policy(settings)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # non-zero B so that gradients reach lora_A too
    first_layer_calls = []
    # a pre-hook inside the checkpointed forward: recomputation may stop early, before a module returns
    decoder_layers(policy.causal_lm)[0].mlp.register_forward_pre_hook(lambda *_: first_layer_calls.append(1))
    result = policy.scoring_pass(ids, mask, 5, temperature=0.8, hidden_layer="middle")
    (result.logprobs.sum() + 0.0).backward()
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}
    return grads, len(first_layer_calls), result.hidden


@pytest.mark.parametrize(
    "mode, extra",
    [
        ("lora", {}),
        ("full", {"lora": None}),
        ("4bit", {"load_in_4bit": True}),
    ],
)
def test_gradients_agree_with_and_without_checkpointing(mode, extra, model_path):
    if mode == "4bit":
        pytest.importorskip("bitsandbytes", minversion="0.49")
    settings = {"name_or_path": str(model_path), "lora": LoraSettings(r=4, alpha=8), **extra}
    torch.manual_seed(1)
    ids = torch.randint(3, 200, (2, 10))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    plain, plain_calls, plain_hidden = _gradients(ModelSettings(**settings), ids, mask)
    checkpointed, ckpt_calls, ckpt_hidden = _gradients(
        ModelSettings(**settings, gradient_checkpointing=True), ids, mask
    )
    assert (plain_calls, ckpt_calls) == (1, 2)  # checkpointing really recomputes the block in the backward
    torch.testing.assert_close(ckpt_hidden, plain_hidden)  # the hook captured the forward's state, once
    assert plain.keys() == checkpointed.keys() and len(plain) > 0
    if mode == "full":
        assert any("embed_tokens" in n for n in plain)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    assert all(g.abs().sum() > 0 for n, g in plain.items() if "lora_A" in n or "q_proj" in n)
