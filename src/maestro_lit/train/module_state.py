"""What a ``MaestroModule`` checkpoint holds (docs/design.md §5), written and checked in one place.

Trainable tensors only (LoRA, the scalariser, a synced reference adapter): the frozen base
weights are reloaded from the model id. Beside them, under ``"maestro"``: the step counters,
the RNG states, the state of reward components that have one (a sampled judge's draws), the Conductor's
buffer and update count, its optimiser's state (the module owns that optimiser:
``train.conductor_optimizer``), the model id, the scalariser's class and the reward component names. Every
value is a tensor or a plain container, so the file loads with ``weights_only=True``.

Resuming checks that the checkpoint and the config describe the same run: the same scalariser
class, the same reward components and exactly the same trainable tensors. A mismatch is a
``CheckpointError`` naming both sides, before anything is loaded, unless a partial resume was asked
for (``checkpoint.partial_resume``, see ``callbacks.checkpointing.AdapterCheckpoint``): then the
scalariser and the components may differ, the scalariser's tensors, buffer and optimiser state are
dropped or start fresh, and a warning says so. The policy's tensors must match either way.
"""

from __future__ import annotations

import warnings
from typing import Any

from maestro_lit.train.rng import restore_rng_states, rng_states

PARTIAL_RESUME_ATTR = "_partial_resume_allowed"
SCALARIZER_PREFIX = "scalarizer."


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, not a checkpoint or from another run setup; never skipped silently."""


def allow_partial_resume(module, allowed: bool = True) -> None:
    """Let the next ``load_module_state`` load a checkpoint whose scalariser differs from the config's."""
    setattr(module, PARTIAL_RESUME_ATTR, bool(allowed))


def trainable_state_keys(module) -> set[str]:
    keys = {f"policy.{name}" for name, p in module.policy.named_parameters() if p.requires_grad}
    keys |= {f"{SCALARIZER_PREFIX}{name}" for name in module.scalarizer.state_dict()}
    return keys | module.reference.state_keys()


def save_module_state(module, checkpoint: dict[str, Any]) -> None:
    """Drop the frozen tensors from Lightning's checkpoint and add the module's own state."""
    keep = trainable_state_keys(module)
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
    checkpoint["maestro"] = {
        "skipped_updates": module.updater.skipped_updates,
        "rollouts_done": module.rollouts_done,
        "model": module.model_settings.name_or_path,
        "scalarizer": type(module.scalarizer).__name__,
        "components": list(module.component_names),
        "rng": rng_states(),
        "outer_loop": module.outer.state_dict(),
    }
    rewards = module.reward_set.state_dict()
    if rewards:
        checkpoint["maestro"]["rewards"] = rewards
    conductor_optimizer = module.conductor_optim.state_dict()
    if conductor_optimizer is not None:
        checkpoint["maestro"]["conductor_optimizer"] = conductor_optimizer


def _checkpoint_name(module) -> str:
    trainer = getattr(module, "_trainer", None)
    path = getattr(trainer, "ckpt_path", None) if trainer is not None else None
    return f"checkpoint {path}" if path else "the checkpoint"


def _examples(keys: set[str]) -> str:
    return f"{len(keys)} trainable tensors " + "{}, e.g. " + ", ".join(sorted(keys)[:3])


def resume_mismatches(module, checkpoint: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What differs between the checkpoint and this module: (differences a partial resume may drop: the
    scalariser's class, tensors and the components it weighs; others: the policy's tensors)."""
    name, state = _checkpoint_name(module), checkpoint.get("maestro", {})
    scalarizer, other = [], []
    saved, given = state.get("scalarizer"), type(module.scalarizer).__name__
    if saved is not None and saved != given:
        scalarizer.append(f"{name} was trained with scalarizer {saved}; the config gives {given}")
    saved_names = state.get("components")
    if saved_names is not None and list(saved_names) != list(module.component_names):
        given_names = list(module.component_names)
        scalarizer.append(
            f"{name} was trained with reward components {list(saved_names)}; the config gives {given_names}"
        )
    expected, present = trainable_state_keys(module), set(checkpoint.get("state_dict", {}))
    for keys, what in ((expected - present, "are missing"), (present - expected, "are not in this config")):
        on_scalarizer = {k for k in keys if k.startswith(SCALARIZER_PREFIX)}
        if on_scalarizer:
            scalarizer.append(f"{name} does not match this config: " + _examples(on_scalarizer).format(what))
        if keys - on_scalarizer:
            examples = _examples(keys - on_scalarizer).format(what)
            other.append(f"{name} does not match this config (another model or LoRA setting?): {examples}")
    return scalarizer, other


def load_module_state(module, checkpoint: dict[str, Any]) -> None:
    """Check the checkpoint matches this config (module docstring); restore counters, RNG and the Conductor's buffer."""
    scalarizer, other = resume_mismatches(module, checkpoint)
    partial = getattr(module, PARTIAL_RESUME_ATTR, False)
    if other or (scalarizer and not partial):
        hint = "; to keep the policy and start the scalariser fresh, set checkpoint.partial_resume: true"
        hint = "" if other else hint
        raise CheckpointError("; ".join(other + scalarizer) + hint)
    if scalarizer:
        warnings.warn(
            "partial resume: " + "; ".join(scalarizer) + ". The policy, counters and data position are resumed; "
            "the scalariser's tensors, buffer and optimiser state start fresh.",
            stacklevel=2,
        )
        kept = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith(SCALARIZER_PREFIX)}
        checkpoint["state_dict"] = kept
        checkpoint["optimizer_states"] = checkpoint.get("optimizer_states", [])[:1]  # the policy optimiser's, first
        checkpoint.get("maestro", {}).pop("conductor_optimizer", None)
    state = checkpoint.get("maestro", {})
    module.updater.skipped_updates = int(state.get("skipped_updates", 0))
    module._rollouts_done = int(state.get("rollouts_done", 0))
    if "rng" in state:
        restore_rng_states(state["rng"])
    module.reward_set.load_state_dict(state.get("rewards", {}))
    if "outer_loop" in state and not scalarizer:  # absent in checkpoints from before the buffered Conductor
        module.outer.load_state_dict(state["outer_loop"])
    conductor_optimizer = state.get("conductor_optimizer")
    optimizer_states = checkpoint.get("optimizer_states", [])
    if conductor_optimizer is None and len(optimizer_states) == 2 and not scalarizer:
        conductor_optimizer = optimizer_states[1]  # written when Lightning held both optimisers
        checkpoint["optimizer_states"] = optimizer_states[:1]
    if conductor_optimizer is not None and module.scalarizer.learnable:
        module.conductor_optim.load_state_dict(conductor_optimizer)
