"""Full-parameter fine-tuning (``policy.lora: null``): every weight trains, the reference is a frozen initial copy."""

import pytest
import torch
from fit_configs import small_fit_config, tensorboard_logger

from maestro_lit.cli import cli_main
from maestro_lit.export import export
from maestro_lit.policy.model import Policy
from maestro_lit.settings import ModelSettings


def _config(run_dir, max_steps, beta=0.1):
    checkpoint = {
        "class_path": "maestro_lit.callbacks.checkpointing.AdapterCheckpoint",
        "init_args": {"dirpath": str(run_dir / "ckpt"), "save_last": True},
    }
    config = small_fit_config(
        run_dir, max_steps, [checkpoint], logger=tensorboard_logger(run_dir), enable_model_summary=False
    )
    config["model"]["policy"]["lora"] = None
    config["model"]["grpo_settings"]["beta"] = beta  # the KL term reads the reference every step
    config["model"]["policy_optimizer"]["init_args"]["lr"] = 1e-4
    return config


def _weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full_ft")
    straight = cli_main({"fit": _config(tmp / "straight", 3)}).model
    cli_main({"fit": _config(tmp / "killed", 2)})
    resumed = cli_main({"fit": {**_config(tmp / "killed", 3), "ckpt_path": str(tmp / "killed" / "ckpt" / "last.ckpt")}})
    return tmp, straight, resumed


def test_fit_trains_base_weights_and_keeps_the_reference_initial(runs, tiny_model_path):
    from transformers import AutoModelForCausalLM

    _, straight, _ = runs
    policy = straight.policy
    assert policy.full_finetuning and not policy._lora_layers()
    initial = _weights(AutoModelForCausalLM.from_pretrained(tiny_model_path))
    trained, reference = _weights(policy.model), _weights(policy.reference_model)
    assert trained.keys() == initial.keys() == reference.keys()
    assert all(not torch.equal(trained[n], initial[n]) for n in initial if "layers.0." in n)  # base weights moved
    for name, tensor in initial.items():
        torch.testing.assert_close(reference[name], tensor, atol=0, rtol=0, msg=name)
    assert all(not p.requires_grad for p in policy.reference_model.parameters())

    ids = torch.randint(3, 100, (2, 9))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        tuned = policy.scoring_pass(ids, mask, 4).logprobs
        with policy.reference():
            ref = policy.scoring_pass(ids, mask, 4).logprobs
        fresh = Policy(ModelSettings(name_or_path=tiny_model_path, lora=None)).scoring_pass(ids, mask, 4).logprobs
    torch.testing.assert_close(ref, fresh, atol=1e-6, rtol=1e-6)
    assert (tuned - ref).abs().max() > 1e-4


def test_checkpoint_holds_full_weights_and_resume_is_exact(runs):
    tmp, straight, resumed = runs
    checkpoint = torch.load(tmp / "killed" / "ckpt" / "last.ckpt", weights_only=True)
    names = {f"policy.model.{n}" for n, _ in straight.policy.model.named_parameters()}
    assert names <= set(checkpoint["state_dict"])  # every trained weight, no frozen reference copy
    assert not any("reference" in k for k in checkpoint["state_dict"])
    assert resumed.trainer.global_step == 3
    after, before = _weights(resumed.model.policy.model), _weights(straight.policy.model)
    for name in before:
        torch.testing.assert_close(after[name], before[name], atol=1e-6, rtol=1e-5, msg=name)
    for name, tensor in _weights(straight.policy.reference_model).items():
        torch.testing.assert_close(_weights(resumed.model.policy.reference_model)[name], tensor, atol=0, rtol=0)


def test_export_writes_the_full_weights(runs):
    from transformers import AutoModelForCausalLM

    tmp, _, resumed = runs
    trained = resumed.model.eval()
    config_yaml = next((tmp / "killed").rglob("config.yaml"))
    out = export(tmp / "killed" / "ckpt" / "last.ckpt", config_yaml, tmp / "export")
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.randint(3, 100, (2, 12))
    with torch.no_grad():
        expected = trained.policy.model(input_ids=ids).logits
        torch.testing.assert_close(model(input_ids=ids).logits, expected, atol=1e-4, rtol=1e-4)
        initial = trained.policy.reference_model(input_ids=ids).logits
    assert (expected - initial).abs().max() > 1e-3
