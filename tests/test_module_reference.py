"""The reference-sync option: a second LoRA adapter as the reference, mixed every N steps."""

import lightning as L
import pytest
import torch
from test_module import _ForwardCounter

from maestro_lit.data.prompts import PromptDataModule
from maestro_lit.settings import ReferenceSettings
from maestro_lit.train.module_state import trainable_state_keys


def _fit(module, steps):
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=PromptDataModule(batch_size=2))


def _reference_logprobs(module, ids, mask):
    with torch.no_grad(), module.reference.context():
        return module.policy.scoring_pass(ids, mask, 4).logprobs


def _adapters(module, name):
    return {
        k.replace(f".{name}.", "."): p.detach().clone()
        for k, p in module.policy.model.named_parameters()
        if f".{name}." in k
    }


def test_default_reference_is_the_policy_with_adapters_off(make_module):
    module = make_module()
    assert not module.reference.synced and module.reference.state_keys() == set()
    assert not any(".reference." in name for name, _ in module.policy.named_parameters())


def test_synced_adapter_is_frozen_starts_at_the_base_and_mixes_every_n_steps(make_module, monkeypatch):
    torch.manual_seed(0)
    module = make_module(
        reference=ReferenceSettings(sync_every=2, mix_alpha=0.25),
        grpo={"beta": 0.1},
        policy_optimizer=lambda p: torch.optim.SGD(p, lr=0.5),
    )
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    mask = torch.ones_like(ids)
    with torch.no_grad(), module.policy.reference():
        base = module.policy.scoring_pass(ids, mask, 4).logprobs
    torch.testing.assert_close(_reference_logprobs(module, ids, mask), base)  # LoRA B = 0: starts as the base model
    reference_params = [p for n, p in module.policy.named_parameters() if ".reference." in n]
    assert reference_params and not any(p.requires_grad for p in reference_params)
    assert all(".reference." not in n for n, p in module.policy.named_parameters() if p.requires_grad)
    assert module.reference.state_keys() <= trainable_state_keys(module)  # checkpointed

    initial = _adapters(module, "reference")
    counter = _ForwardCounter(module, monkeypatch)
    _fit(module, 1)
    assert counter.forwards == 2  # scoring + one reference forward (KL): the synced adapter costs no extra forward
    after_one = _adapters(module, "reference")
    assert all(torch.equal(after_one[k], initial[k]) for k in initial)  # step 1: no sync yet
    _fit(module, 1)  # the same module, one more step: rollouts_done 2 → sync after its update
    policy = _adapters(module, "default")
    mixed = _adapters(module, "reference")
    assert module.reference.syncs == 1
    for key in initial:
        torch.testing.assert_close(mixed[key], 0.25 * initial[key] + 0.75 * policy[key])
    moved = _reference_logprobs(module, ids, mask)
    assert not torch.allclose(moved, base)  # the KL / ppl reference is now the mixed adapter, not the base
    with torch.no_grad():
        assert not torch.allclose(moved, module.policy.scoring_pass(ids, mask, 4).logprobs)


def test_ppl_scores_with_the_synced_reference(make_module):
    from maestro_lit.rewards.length import LengthBand
    from maestro_lit.rewards.perplexity import ReasoningPerplexity

    module = make_module(rewards=[ReasoningPerplexity(), LengthBand()], reference=ReferenceSettings(sync_every=1))
    assert module.reward_set.reference_nll.context == module.reference.context
    default = make_module(rewards=[ReasoningPerplexity(), LengthBand()])
    assert default.reward_set.reference_nll.context == default.reference.context and not default.reference.synced


def test_synced_reference_needs_lora(make_module, tiny_model_path):
    from maestro_lit.settings import ModelSettings

    with pytest.raises(ValueError, match="model.reference.sync_every > 0 needs LoRA"):
        make_module(
            policy=ModelSettings(name_or_path=tiny_model_path, lora=None), reference=ReferenceSettings(sync_every=3)
        )
    with pytest.raises(ValueError, match="model.reference.mix_alpha must be in"):
        ReferenceSettings(sync_every=1, mix_alpha=1.5)
