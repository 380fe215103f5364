"""Merging LoRA for the rollout is a speed trick only: same logits, and training still moves only the adapters."""

import lightning as L
import pytest
import torch

from maestro_lit.data.prompts import PromptDataModule
from maestro_lit.settings import SamplingSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise_lora_b(module, std=0.05):
    """LoRA B starts at zero, which would make merging trivially exact; give it a real delta."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in module.policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, std)


def _batch(module):
    ids = module.policy.tokenizer(
        ["<|user|>Name a colour.<|end|><|assistant|>Blue is a calm colour"], return_tensors="pt"
    )
    return ids["input_ids"], ids["attention_mask"]


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("bfloat16", 0.15)])  # bf16: ~2 ulp at |logit| ~14
def test_merged_logits_match_unmerged_and_the_base_comes_back_bit_for_bit(make_module, tiny_model_path, dtype, tol):
    from maestro_lit.settings import ModelSettings

    module = make_module(policy=ModelSettings(name_or_path=tiny_model_path, dtype=dtype))
    _randomise_lora_b(module)
    model = module.policy.model.eval()
    ids, mask = _batch(module)
    base_weights = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    with torch.no_grad():
        unmerged = model(input_ids=ids, attention_mask=mask).logits.float()
        for _ in range(3):  # repeated merges reuse their buffers and never touch the originals
            with module.policy.merged_adapters(True):
                merged = model(input_ids=ids, attention_mask=mask).logits.float()
        with module.policy.reference():
            base = model(input_ids=ids, attention_mask=mask).logits.float()
    assert (unmerged - base).abs().max() > 10 * tol  # the adapters do change the logits
    torch.testing.assert_close(merged, unmerged, rtol=tol, atol=tol)
    for name, p in model.named_parameters():
        if name in base_weights:
            assert torch.equal(p, base_weights[name]), name  # exact, even in bf16 (peft's merge/unmerge would drift)
    after = model(input_ids=ids, attention_mask=mask).logits.float()
    assert torch.equal(after, unmerged)  # adapters active again, same logits as before merging


def test_merge_buffers_keep_their_addresses_between_rollouts(make_module):
    """A CUDA-graph decode step records weight addresses; a new buffer each rollout would force a re-record."""
    module = make_module()
    layer = module.policy._lora_layers()[0]
    addresses = []
    for _ in range(2):
        with module.policy.merged_adapters(True):
            addresses.append(layer.get_base_layer().weight.data_ptr())
    assert addresses[0] == addresses[1] != layer.get_base_layer().weight.data_ptr()


def test_training_with_merge_moves_only_adapters(make_module):
    module = make_module(sampling=SamplingSettings(max_new_tokens=8, merge_adapters_for_rollout=True))
    _randomise_lora_b(module)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=PromptDataModule(batch_size=2))
    after = dict(module.named_parameters())
    adapters = {n for n in before if "lora_" in n or n.startswith("scalarizer.")}
    assert any(not torch.equal(before[n], after[n]) for n in adapters if "lora_" in n), "LoRA weights did not move"
    assert all(torch.equal(after[n], before[n]) for n in before if n not in adapters), "base weights changed"
