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
  the Conductor reads the policy's terminal hidden state, which only the merged model gives;
- ``<out>/README.md`` : the model card (``model_card``): base model, method, rewards, steps, export
  date and the run's config.

``--push-to-hub REPO`` then uploads the folder with ``huggingface_hub`` (create the repo if absent,
one commit). The export is complete before the upload starts, so a hub that cannot be reached (an
offline machine, no token, a repo of someone else) costs nothing but the upload: one ``error:`` line
names the repo and the reason, and says how to push the folder later.

``--out`` must be new or empty (``--overwrite`` replaces it as a whole) and never holds the checkpoint
or config; the folder appears only once complete (written under a temporary name, then renamed).

A QLoRA (4-bit) run is merged into the base loaded unquantised in ``--dtype`` (default: the
run's compute dtype): merging into 4-bit weights would round the adapter away.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

from maestro_lit import atomic_io
from maestro_lit.model_card import ModelCard, RewardLine, is_hub_id, render
from maestro_lit.tiny import resolve_model_path

CONDUCTOR_DIR = "conductor"
CARD_FILE = "README.md"


class HubError(ValueError):
    """The upload to the Hugging Face Hub failed; the exported folder is complete and untouched."""


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


def model_card(module, checkpoint: dict[str, Any], config: str | Path, date: str | None = None) -> ModelCard:
    """The card's facts: from the module (base, scalariser, rewards), the checkpoint (steps) and the config file."""
    rewards = [
        RewardLine(c.name, f"{type(c).__module__}.{type(c).__qualname__}", c.normalization)
        for c in module.reward_set.components
    ]
    base = module.model_settings.name_or_path
    return ModelCard(
        base_model=base,
        method=type(module.scalarizer).__name__,
        rewards=rewards,
        rollouts_done=(checkpoint.get("maestro") or {}).get("rollouts_done"),
        global_step=checkpoint.get("global_step"),
        date=date or datetime.now(timezone.utc).date().isoformat(),
        config_text=Path(config).read_text(encoding="utf-8"),
        action_names=list(module.scalarizer.action_names),
        lora_merged=not module.policy.full_finetuning,
        base_on_hub=is_hub_id(base) and resolve_model_path(base) == base,  # not the embedded tiny model
    )


def push_to_hub(folder: str | Path, repo_id: str, api: Any = None) -> str:
    """Upload ``folder`` to the model repo ``repo_id`` (created if absent); returns the commit's URL.

    ``api``: an ``huggingface_hub.HfApi`` (the default) or a stand-in with ``create_repo`` and
    ``upload_folder``. Any failure of the hub calls (no network, offline mode, no token, no rights)
    becomes one ``HubError`` that names the repo, the reason and the folder to push later.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="maestro_lit export"
        )
    except Exception as err:  # the hub's errors span requests/httpx/huggingface_hub classes; none is ours
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise HubError(
            f"--push-to-hub {repo_id}: cannot upload to the Hugging Face Hub ({type(err).__name__}: {reason}); "
            f"the export is complete in {folder}: push it later with `hf upload {repo_id} {folder}`"
        ) from err
    return str(getattr(commit, "commit_url", commit))


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
        (tmp / CARD_FILE).write_text(render(model_card(module, checkpoint, config)), encoding="utf-8")
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
    parser.add_argument(
        "--push-to-hub",
        metavar="REPO",
        default=None,
        help="then upload the folder to this Hugging Face model repo (org/name; created if absent; needs a token)",
    )
    args = parser.parse_args(argv)
    path = export(args.ckpt, args.config, args.out, args.dtype, overwrite=args.overwrite)
    print(f"exported merged model to {path}, the Conductor to {path / CONDUCTOR_DIR}, the card to {path / CARD_FILE}")
    if args.push_to_hub:
        print(f"pushed to {push_to_hub(path, args.push_to_hub)}")
