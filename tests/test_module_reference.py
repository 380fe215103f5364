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
        torch.testing.assert_close(mixed[key], 0.75 * initial[key] + 0.25 * policy[key])  # α: the policy's share
    moved = _reference_logprobs(module, ids, mask)
    assert not torch.allclose(moved, base)  # the KL / ppl reference is now the mixed adapter, not the base
    with torch.no_grad():
        assert not torch.allclose(moved, module.policy.scoring_pass(ids, mask, 4).logprobs)


def trl_sync_target_model(policy_params, reference_params, alpha):
    """TRL's ``SyncRefModelCallback._sync_target_model`` (trl/trainer/callbacks.py), which NOVER's
    ``sync_ref_model`` / ``ref_model_mixup_alpha`` configure: π_ref ← α·π_θ + (1 − α)·π_ref."""
    for reference, policy in zip(reference_params, policy_params):
        reference.mul_(1.0 - alpha).add_(policy, alpha=alpha)


@pytest.mark.parametrize("alpha", [0.6, 0.25])
def test_the_mix_is_trls_sync_ref_model(make_module, alpha):
    module = make_module(reference=ReferenceSettings(sync_every=3, mix_alpha=alpha))
    torch.manual_seed(1)
    with torch.no_grad():
        for _, reference, policy in module.reference.pairs:  # a reference and a policy that differ
            reference.normal_()
            policy.normal_()
    expected = [reference.detach().clone() for _, reference, _ in module.reference.pairs]
    trl_sync_target_model([policy.detach() for _, _, policy in module.reference.pairs], expected, alpha)
    assert not module.reference.after_step(2)  # not a multiple of sync_every
    assert module.reference.after_step(3)
    for (_, reference, _), trl in zip(module.reference.pairs, expected):
        torch.testing.assert_close(reference, trl, atol=1e-6, rtol=0)


def test_ppl_scores_with_the_synced_reference(make_module):
    from maestro_lit.rewards.length import LengthBand
    from maestro_lit.rewards.perplexity import ReasoningPerplexity

    module = make_module(rewards=[ReasoningPerplexity(), LengthBand()], reference=ReferenceSettings(sync_every=1))
    default = make_module(rewards=[ReasoningPerplexity(), LengthBand()])
    assert module.reference.synced and not default.reference.synced
    from peft.tuners.lora import LoraLayer

    from maestro_lit.policy.reference import ADAPTER

    def lora_state(built):  # (active adapters, adapters disabled) of the first LoRA layer
        layer = next(m for m in built.policy.model.modules() if isinstance(m, LoraLayer))
        return list(layer.active_adapters), layer.disable_adapters

    # ppl's reference forward switches on the weights the module's reference scores with, and back after
    with module.reward_set.reference_nll.context():
        assert lora_state(module) == ([ADAPTER], False)  # the synced adapter
    with default.reward_set.reference_nll.context():
        assert lora_state(default)[1]  # adapters off
    assert lora_state(module) == (["default"], False) and lora_state(default) == (["default"], False)


def test_synced_reference_needs_lora(make_module, tiny_model_path):
    from maestro_lit.settings import ModelSettings

    with pytest.raises(ValueError, match="model.reference.sync_every > 0 needs LoRA"):
        make_module(
            policy=ModelSettings(name_or_path=tiny_model_path, lora=None), reference=ReferenceSettings(sync_every=3)
        )
    with pytest.raises(ValueError, match="model.reference.mix_alpha must be in"):
        ReferenceSettings(sync_every=1, mix_alpha=1.5)
