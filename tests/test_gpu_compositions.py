"""Every GPU composition runs one training step on CPU: each model file × each overlay.

The composition is the GPU recipe: ``base/gpu.yaml`` + ``models/<m>.yaml`` + a paper task
(``tasks/webinstruct.yaml``) (+ ``overlays/<o>.yaml``), no methods/ or rewards/ file: the paper's method is
base/gpu.yaml's default. Kept as composed: the policy's dtype (bf16; fp32 + bf16-mixed for full
fine-tuning), 4-bit NF4, LoRA r/alpha/targets, gradient checkpointing, group size, prompts per rollout,
minibatches, merging, optimisers, the paper's Conductor, the paper's five reward components (``ppl``'s
reference forward included), the reference adapter synced every 6 steps (none with full fine-tuning), the
task's evaluation callback and the DDP strategy. Substituted, so that a step runs offline in seconds:

- the weights: a stand-in of the same architecture family built from the real config class
  (Qwen2Config / Qwen3Config / LlamaConfig, with the real model's tied-embedding and RoPE-scaling
  settings), shrunk to hidden 128, MLP 256, 2 layers, head_dim 64 (every linear a multiple of 64,
  so bitsandbytes' NF4 runs on CPU), with the project-trained tokenizer of the embedded tiny model;
- the reward-model and judge ids: a tiny reward model (as tests/test_configs.py does);
- data: the task's shipped sample; completions: 8 new tokens; 1 step, no validation, and the
  task evaluation at the end of the fit answers 1 item in at most 8 tokens (left out of the DDP run);
- the trainer: CPU, one process (DDP: two gloo processes); FSDP: Lightning refuses a CPU
  accelerator for FSDPStrategy, so its test builds the strategy with the overlay's settings and
  checks that refusal (README, Multi-GPU).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "perf"))
from fit_configs import class_path_nodes, use_tiny_reward_models  # noqa: E402
from memory_estimate import MODELS, ModelShape, hf_config  # noqa: E402

from maestro_lit.cli import cli_main, compose  # noqa: E402
from maestro_lit.conductor.base import Conductor  # noqa: E402
from maestro_lit.rewards.tiny_rm import build_tiny_reward_model  # noqa: E402

pytest.importorskip("bitsandbytes", minversion="0.49", reason="bitsandbytes>=0.49 is in the dev extra")

SINGLE_PROCESS_OVERLAYS = ("", "qlora", "full_ft")
ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "llama": "LlamaForCausalLM"}


def save_stand_in(shape: ModelShape, directory: Path, tokenizer_path: str) -> str:
    """Random weights of ``shape``'s family, small enough for a CPU step; save_pretrained + the tiny tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    config = hf_config(
        shape,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        vocab_size=len(tokenizer),
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def composition(model: str, overlay: str, stand_in: str, tiny_rm: str, run_dir: Path, devices: int = 1) -> dict:
    """The GPU recipe for (model, overlay), composed, with only the substitutions of the module docstring."""
    parts = ["base/gpu", f"models/{model}", "tasks/webinstruct"] + ([f"overlays/{overlay}"] if overlay else [])
    config = compose([arg for part in parts for arg in ("--config", str(ROOT / "configs" / f"{part}.yaml"))])
    config["model"]["policy"]["name_or_path"] = stand_in
    use_tiny_reward_models(config, tiny_rm)
    config["model"]["sampling"]["max_new_tokens"] = 8
    for node in class_path_nodes(config, ".PaperTaskEvaluation"):
        node["init_args"].update(limit=1, max_new_tokens=8)  # built and run at fit end, on one item
    if devices > 1:  # the training step across ranks; the task evaluation at fit end does not finish under DDP yet
        callbacks = config["trainer"]["callbacks"]
        config["trainer"]["callbacks"] = [c for c in callbacks if "PaperTaskEvaluation" not in c["class_path"]]
    config["torch_threads"] = 1
    trainer = config["trainer"]
    trainer.update(
        accelerator="cpu", devices=devices, num_nodes=1, max_steps=1, limit_val_batches=0, num_sanity_val_steps=0
    )
    trainer.update(default_root_dir=str(run_dir), enable_model_summary=False)
    trainer["logger"]["init_args"]["save_dir"] = str(run_dir)
    config["checkpoint"] = {**config.get("checkpoint", {}), "dirpath": str(run_dir / "ckpt")}
    if devices == 1:
        trainer["strategy"] = "auto"
    return config


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    return build_tiny_reward_model(tmp_path_factory.mktemp("tiny_rm"))


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory, tiny_model_path):
    """One stand-in per model file (same family and embedding tying as the real model), shared by its overlays."""
    root = tmp_path_factory.mktemp("stand_ins")
    return {name: save_stand_in(shape, root / name, tiny_model_path) for name, shape in MODELS.items()}


def test_model_files_and_shapes_agree():
    """Every GPU model file has a shape in perf/memory_estimate.py, and the shapes give the published sizes."""
    files = {p.stem for p in (ROOT / "configs" / "models").glob("*.yaml")} - {"tiny"}
    assert files == set(MODELS)
    published = {
        "qwen2.5-0.5b-instruct": 0.49,
        "qwen2.5-1.5b-instruct": 1.54,
        "qwen2.5-7b-instruct": 7.62,
        "qwen3-8b": 8.19,
    }
    published["llama-3.1-8b-instruct"] = 8.03
    for name, billions in published.items():
        assert round(MODELS[name].params / 1e9, 2) == billions, name


@pytest.mark.parametrize("overlay", SINGLE_PROCESS_OVERLAYS, ids=lambda o: o or "plain")
@pytest.mark.parametrize("model", list(MODELS))
def test_composition_trains_one_step_on_cpu(model, overlay, stand_ins, tiny_rm, tmp_path):
    import bitsandbytes as bnb

    config = composition(model, overlay, stand_ins[model], tiny_rm, tmp_path)
    policy_settings = config["model"]["policy"]
    cli = cli_main({"fit": config})
    module, trainer = cli.model, cli.trainer
    assert trainer.global_step == 1
    policy = module.policy
    causal_lm = policy.causal_lm
    assert type(causal_lm).__name__ == ARCHITECTURES[MODELS[model].family]
    assert causal_lm.config.tie_word_embeddings == MODELS[model].tie_embeddings
    assert policy_settings["gradient_checkpointing"] and causal_lm.is_gradient_checkpointing
    assert module.component_names == ["ppl", "fmt", "ent", "len", "pref"]
    assert type(module.scalarizer) is Conductor and module.scalarizer.table_kind == "one_hot"
    assert module.outer.update_every == 3
    assert type(module.conductor_optimizer(module.scalarizer.parameters())) is torch.optim.AdamW
    assert any(type(c).__name__ == "RunInfo" for c in trainer.callbacks)
    assert (tmp_path / "run_info.json").exists() or list(tmp_path.rglob("run_info.json"))
    layers = causal_lm.config.num_hidden_layers
    if overlay == "full_ft":
        assert policy.full_finetuning and policy.reference_model is not None and not module.reference.synced
        assert trainer.precision == "bf16-mixed" and causal_lm.model.embed_tokens.weight.dtype == torch.float32
        reference = dict(policy.reference_model.named_parameters())
        moved = [n for n, p in causal_lm.named_parameters() if not torch.equal(p.detach(), reference[n].detach())]
        assert moved, "no weight moved"
    else:
        assert module.reference.settings.sync_every == 6 and module.reference.state_keys()  # the synced reference
        lora = [m for m in policy.modules() if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {})]
        assert len(lora) == 7 * layers, "all-linear: q, k, v, o, gate, up, down in every layer"
        assert all(m.lora_A["default"].weight.shape[0] == policy_settings["lora"]["r"] for m in lora)
        assert any(m.lora_B["default"].weight.abs().sum() > 0 for m in lora), "LoRA B starts at zero: a step moves it"
        quantized = [m for m in policy.modules() if isinstance(m, bnb.nn.Linear4bit)]
        assert len(quantized) == (7 * layers if overlay == "qlora" else 0)
        # peft's prepare_model_for_kbit_training upcasts what stays unquantised (embeddings, norms) to fp32
        assert causal_lm.model.embed_tokens.weight.dtype == (torch.float32 if overlay == "qlora" else torch.bfloat16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_compositions_over_two_gloo_processes(stand_ins, tiny_rm, tmp_path):
    """Each model file + overlays/ddp.yaml, one step in the same two CPU processes (gloo): ranks agree on every
    weight."""
    paths = []
    for model in MODELS:
        run_dir = tmp_path / model
        run_dir.mkdir()
        config = composition(model, "ddp", stand_ins[model], tiny_rm, run_dir, devices=2)
        assert config["trainer"]["strategy"] == "ddp_find_unused_parameters_true"
        config["trainer"]["callbacks"].append(
            {"class_path": "probes.record.RecordSteps", "init_args": {"out": str(run_dir)}}
        )
        (run_dir / "config.yaml").write_text(json.dumps(config))  # JSON is YAML; compose may return int subclasses
        paths.append(str(run_dir / "config.yaml"))
    port = str(_free_port())
    python_path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    ranks = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "PYTHONPATH": python_path,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "WORLD_SIZE": "2",
        }
        env.update(NODE_RANK="0", LOCAL_RANK=str(rank), RANK=str(rank), OMP_NUM_THREADS="1")
        command = [sys.executable, str(Path(__file__)), *paths]
        ranks.append(
            subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outputs = [p.communicate(timeout=600)[0] for p in ranks]
    assert [p.returncode for p in ranks] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    for model in MODELS:
        records = [json.loads((tmp_path / model / f"rank{r}.jsonl").read_text()) for r in (0, 1)]
        assert records[0]["step"] == records[1]["step"] == 1, model
        assert not set(records[0]["prompts"]) & set(records[1]["prompts"]), f"{model}: ranks trained on the same prompt"
        assert records[0]["digest"].keys() == records[1]["digest"].keys() and records[0]["digest"], model
        for name, (s0, q0) in records[0]["digest"].items():
            s1, q1 = records[1]["digest"][name]
            assert abs(s0 - s1) <= 1e-6 * (1 + abs(s0)) and abs(q0 - q1) <= 1e-6 * (1 + abs(q0)), (
                f"{model}: {name} differs across ranks"
            )
        assert any("lora_B" in name and s != 0 for name, (s, _) in records[0]["digest"].items()), model
        assert len(list((tmp_path / model).rglob("run_info.json"))) == 1, model  # rank 0 writes it; no rank hangs


if __name__ == "__main__":  # one rank of test_ddp_compositions_over_two_gloo_processes: fit each config in turn
    for path in sys.argv[1:]:
        cli_main({"fit": yaml.safe_load(Path(path).read_text())})
