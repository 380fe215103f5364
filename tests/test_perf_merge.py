"""Merging LoRA for the rollout is a speed trick only: same logits, and training still moves only the adapters."""

import lightning as L
import pytest
import torch

from maestro_lit.data import PromptDataModule

DRIFT_TOL = 1e-6  # merge adds and unmerge subtracts B·A·scale in fp32, so a few ulps may remain

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise_lora_b(module, std=0.05):
    """LoRA B starts at zero, which would make merging trivially exact; give it a real delta."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in module.policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, std)


def _batch(module):
    ids = module.policy.tokenizer(["<|user|>Name a colour.<|end|><|assistant|>Blue is a calm colour"], return_tensors="pt")
    return ids["input_ids"], ids["attention_mask"]


def test_merged_logits_match_unmerged(make_module):
    module = make_module()
    _randomise_lora_b(module)
    model = module.policy.model.eval()
    ids, mask = _batch(module)
    with torch.no_grad():
        unmerged = model(input_ids=ids, attention_mask=mask).logits
        with module.policy.merged_adapters(True):
            merged = model(input_ids=ids, attention_mask=mask).logits
        with module.policy.adapters_disabled():
            base = model(input_ids=ids, attention_mask=mask).logits
    assert (unmerged - base).abs().max() > 1e-3  # the adapters do change the logits
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)


def test_training_with_merge_moves_only_adapters(make_module):
    module = make_module(grpo={"merge_adapters_for_rollout": True})
    _randomise_lora_b(module)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer = L.Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=PromptDataModule(batch_size=2))
    after = dict(module.named_parameters())
    adapters = {n for n in before if "lora_" in n or n.startswith("scalarizer.")}
    assert any(not torch.equal(before[n], after[n]) for n in adapters if "lora_" in n), "LoRA weights did not move"
    drift = max((after[n].detach() - before[n]).abs().max().item() for n in before if n not in adapters)
    print(f"max |base weight drift| after 1 merged-rollout step: {drift:.3e}")
    assert drift <= DRIFT_TOL, f"base weights drifted by {drift:.3e}"
