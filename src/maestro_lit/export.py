"""``python -m maestro_lit export``: a run's checkpoint → a plain Hugging Face model + the Conductor.

Why a separate step: checkpoints hold only the trainable tensors (LoRA + scalariser, or
every weight in full fine-tuning) and the base weights come from the model id, so a checkpoint is useless
without this project.
Export rebuilds the module from the run's ``config.yaml`` (the same ``model`` section the
LightningCLI parsed, through Lightning's own argument parser), loads the checkpoint with
``weights_only=True``, merges LoRA into the base weights (``merge_and_unload``; a full
fine-tuning run's checkpoint already holds every weight, written as is) and writes

- ``<out>/`` : ``config.json``, ``model.safetensors``, tokenizer files and
  ``generation_config.json`` — loads with ``AutoModelForCausalLM.from_pretrained(out)``,
  serves with vLLM/TGI, needs neither peft nor maestro_lit;
- ``<out>/conductor/`` : ``conductor.safetensors`` (head + action table) and
  ``conductor.json`` (component names, action names and table, temperature, hidden size):
  the Conductor reads the policy's terminal hidden state, which only the merged model gives.

``--out`` must be new or empty (``--overwrite`` replaces it as a whole) and never holds the checkpoint
or config; the folder appears only once complete (written under a temporary name, then renamed).

A QLoRA (4-bit) run is merged into the base loaded unquantised in ``--dtype`` (default: the
run's compute dtype): merging into 4-bit weights would round the adapter away.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from maestro_lit import atomic_io

CONDUCTOR_DIR = "conductor"


def build_module(config_path: str | Path, dtype: str | None = None):
    """The ``MaestroModule`` of a run, instantiated from the ``model`` section of its config."""
    from lightning.pytorch.cli import LightningArgumentParser

    from maestro_lit.train.module import MaestroModule

    raw = yaml.safe_load(Path(config_path).read_text()) or {}
    if "fit" in raw and "model" not in raw:  # a config written as ``{fit: {...}}``
        raw = raw["fit"]
    model = dict(raw.get("model") or {})
    policy = dict(model.get("policy") or {})
    policy["load_in_4bit"] = False
    if dtype is not None:
        policy["dtype"] = dtype
    model["policy"] = policy
    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_lightning_class_args(MaestroModule, "model")
    config = parser.parse_object({"model": model})
    return parser.instantiate_classes(config).model


def load_trainable_state(module, ckpt_path: str | Path) -> dict[str, Any]:
    """Load LoRA + scalariser tensors; fail on a checkpoint from another model or config."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", {})
    trainable = {f"policy.{n}" for n, p in module.policy.named_parameters() if p.requires_grad}
    trainable |= {f"scalarizer.{n}" for n in module.scalarizer.state_dict()}
    missing = sorted(trainable - set(state))
    if missing:  # base weights are expected to be absent; trainable ones are not
        raise KeyError(
            f"checkpoint does not match this config: {len(missing)} trainable tensors are missing, e.g. {missing[:3]}"
        )
    result = module.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise KeyError(f"checkpoint has tensors this config does not define, e.g. {result.unexpected_keys[:3]}")
    return checkpoint


def conductor_metadata(module) -> dict[str, Any]:
    """What a user needs to run the exported Conductor: inputs, outputs and the action table."""
    scalarizer = module.scalarizer
    table = getattr(scalarizer, "action_table", None)
    if table is None:  # static / single-reward baselines: one fixed weight row
        table = scalarizer.weights.unsqueeze(0)
    return {
        "type": type(scalarizer).__name__,
        "component_names": list(module.component_names),
        "action_names": list(scalarizer.action_names) or ["static"],
        "action_table": table.tolist(),
        "hidden_size": module.policy.hidden_size,
        "temperature": getattr(scalarizer, "temperature", 1.0),
        "normalize_hidden": getattr(scalarizer, "normalize_hidden", False),
        "input": "final-layer hidden state (after the last norm) at the last non-pad token of prompt+completion",
        "policy": module.model_settings.name_or_path,
    }


def save_conductor(module, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    meta = conductor_metadata(module)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.scalarizer.state_dict().items()}
    tensors.setdefault("action_table", torch.tensor(meta["action_table"], dtype=torch.float32))
    save_file(tensors, str(directory / "conductor.safetensors"), metadata={"format": "pt"})
    (directory / "conductor.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_conductor(directory: str | Path):
    """Rebuild an exported learned Conductor (``maestro_lit.conductor.base.Conductor``) for inference."""
    from safetensors.torch import load_file

    from maestro_lit.conductor.base import Conductor

    directory = Path(directory)
    if (directory / CONDUCTOR_DIR).is_dir():
        directory = directory / CONDUCTOR_DIR
    meta = json.loads((directory / "conductor.json").read_text())
    if meta["type"] != "Conductor":
        raise ValueError(
            f"{directory} holds a {meta['type']} (fixed weights {meta['action_table']}), not a learned Conductor"
        )
    tensors = load_file(str(directory / "conductor.safetensors"))
    conductor = Conductor(
        temperature=meta["temperature"],
        actions=meta["action_table"],
        normalize_hidden=meta["normalize_hidden"],
        action_names=meta["action_names"],
        learn_temperature="log_temperature" in tensors,
    )
    conductor.bind(meta["component_names"], meta["hidden_size"])
    conductor.load_state_dict(tensors)
    return conductor.eval()


def export(
    ckpt: str | Path,
    config: str | Path,
    out: str | Path,
    dtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the merged HF model to ``out`` and the Conductor to ``out/conductor``.

    The folder is built under a temporary name beside ``out`` and renamed into place once complete, so a
    failed export leaves nothing (or the previous folder) behind. An existing non-empty ``out`` is refused
    unless ``overwrite`` (then it is replaced as a whole, its old files included); an ``out`` that is or
    holds the checkpoint or the config is always refused.
    """
    out = atomic_io.check_output(out, [ckpt, config], overwrite=overwrite, what="--out")
    module = build_module(config, dtype)
    checkpoint = load_trainable_state(module, ckpt)
    module.eval()
    policy = module.policy
    merged = policy.model if policy.full_finetuning else policy.model.merge_and_unload()
    tokenizer = module.policy.tokenizer
    generation = merged.generation_config
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    provenance = {
        "checkpoint": str(ckpt),
        "config": str(config),
        "global_step": checkpoint.get("global_step"),
        "rollouts_done": (checkpoint.get("maestro") or {}).get("rollouts_done"),
        "base_model": module.model_settings.name_or_path,
    }
    with atomic_io.atomic_path(out) as tmp:
        tmp.mkdir()
        merged.save_pretrained(str(tmp), safe_serialization=True)
        generation.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        save_conductor(module, tmp / CONDUCTOR_DIR)
        (tmp / "maestro_export.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m maestro_lit export", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ckpt", required=True, help="Lightning checkpoint, e.g. checkpoints/maestro/version_0/checkpoints/last.ckpt"
    )
    parser.add_argument(
        "--config", required=True, help="the run's config.yaml (written by LightningCLI next to the event files)"
    )
    parser.add_argument("--out", required=True, help="output folder for the merged Hugging Face model (new or empty)")
    parser.add_argument(
        "--dtype", default=None, help="weights dtype of the export (float32, bfloat16, float16); default: the run's"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder as a whole")
    args = parser.parse_args(argv)
    path = export(args.ckpt, args.config, args.out, args.dtype, overwrite=args.overwrite)
    print(f"exported merged model to {path} and the Conductor to {path / CONDUCTOR_DIR}")
