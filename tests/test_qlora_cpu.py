"""QLoRA end to end on CPU: NF4 base (bitsandbytes >= 0.49), fit, checkpoint, exact resume, export."""

import pytest
import torch
from fit_configs import small_fit_config, tensorboard_logger
from tiny64 import save_tiny64

from maestro_lit.cli import cli_main
from maestro_lit.export import export

pytest.importorskip("bitsandbytes", minversion="0.49", reason="bitsandbytes>=0.49 is in the dev extra")


def _config(run_dir, model_path, max_steps, **model):
    checkpoint = {
        "class_path": "maestro_lit.callbacks.checkpointing.AdapterCheckpoint",
        "init_args": {"dirpath": str(run_dir / "ckpt"), "save_last": True},
    }
    config = small_fit_config(
        run_dir, max_steps, [checkpoint], logger=tensorboard_logger(run_dir), enable_model_summary=False
    )
    config["model"]["policy"].update(name_or_path=str(model_path), load_in_4bit=True, **model)
    config["model"]["sampling"]["merge_adapters_for_rollout"] = False  # B·A cannot be added to 4-bit weights
    return config


def _lora_state(module):
    return {n: p.detach().clone() for n, p in module.policy.named_parameters() if p.requires_grad}


def test_qlora_fit_checkpoint_resume_export_on_cpu(tmp_path, tiny_model_path):
    import bitsandbytes as bnb
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model_path = save_tiny64(tmp_path / "tiny64", tiny_model_path)
    straight = cli_main({"fit": _config(tmp_path / "straight", model_path, 3)}).model
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in straight.policy.modules())  # really 4-bit
    before = {n: p for n, p in _lora_state(straight).items()}

    cli_main({"fit": _config(tmp_path / "killed", model_path, 2)})
    last = tmp_path / "killed" / "ckpt" / "last.ckpt"
    resumed = cli_main({"fit": {**_config(tmp_path / "killed", model_path, 3), "ckpt_path": str(last)}})
    assert resumed.trainer.global_step == 3
    after = _lora_state(resumed.model)
    assert before.keys() == after.keys() and any("lora_B" in n for n in after)
    for name in before:  # 2 steps + resume + 1 step == 3 straight steps
        torch.testing.assert_close(after[name], before[name], atol=1e-6, rtol=1e-5, msg=name)

    # Export merges the LoRA into the unquantised base; it equals base + the peft adapter written beside the checkpoint.
    config_yaml = next((tmp_path / "killed").rglob("config.yaml"))
    out = export(tmp_path / "killed" / "ckpt" / "last.ckpt", config_yaml, tmp_path / "export")
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(model_path), tmp_path / "killed" / "ckpt" / "last.adapter"
    ).eval()
    ids = torch.randint(3, 200, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(exported(input_ids=ids).logits, adapted(input_ids=ids).logits, atol=1e-4, rtol=1e-4)
        base = AutoModelForCausalLM.from_pretrained(model_path)(input_ids=ids).logits
    assert (exported(input_ids=ids).logits - base).abs().max() > 1e-4  # the trained adapter is in the export


def test_qlora_lora_gradients_equal_those_of_the_dequantised_model(tmp_path, tiny_model_path):
    """After a generation-style eval forward, the 4-bit layers still pass gradient: LoRA grads match fp32 on
    W = dequant(NF4)."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import dequantize_4bit

    from maestro_lit.policy.model import Policy
    from maestro_lit.settings import LoraSettings, ModelSettings

    model_path = save_tiny64(tmp_path / "tiny64", tiny_model_path)
    lora = LoraSettings(r=4, alpha=8)
    torch.manual_seed(0)
    quantised = Policy(ModelSettings(name_or_path=str(model_path), load_in_4bit=True, lora=lora))
    torch.manual_seed(0)
    plain = Policy(ModelSettings(name_or_path=str(model_path), lora=lora))
    with torch.no_grad():
        for p in (p for n, p in quantised.named_parameters() if "lora_B" in n):
            p.normal_(0, 0.1)
        lora_state = {n: p for n, p in quantised.named_parameters() if "lora_" in n}
        q_modules, p_modules = dict(quantised.model.named_modules()), dict(plain.model.named_modules())
        for name, module in q_modules.items():
            if isinstance(module, bnb.nn.Linear4bit):
                p_modules[name].weight.copy_(dequantize_4bit(module.weight.data, module.weight.quant_state))
        for name, p in plain.named_parameters():
            if name in lora_state:
                p.copy_(lora_state[name])
    ids = torch.randint(3, 200, (2, 10))
    mask = torch.ones_like(ids)
    quantised.model.eval()
    with torch.no_grad():
        quantised.scoring_pass(ids, mask, 5)  # what generation does: no grad, eval mode
    quantised.model.train()

    grads = []
    for policy in (quantised, plain):
        policy.zero_grad()
        policy.scoring_pass(ids, mask, 5).logprobs.sum().backward()
        grads.append({n: p.grad for n, p in policy.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[1].items():
        torch.testing.assert_close(grads[0][name], grad, atol=1e-4, rtol=1e-3, msg=name)
    assert any("layers.0." in n and "lora_A" in n and g.abs().sum() > 0 for n, g in grads[0].items())
