"""What a ``MaestroModule`` checkpoint holds (docs/design.md §5), written and checked in one place.

Trainable tensors only (LoRA, the scalariser, a synced reference adapter): the frozen base
weights are reloaded from the model id. Beside them, under ``"maestro"``: the step counters,
the RNG states, the Conductor's buffer and update count, and the model id. Every value is a
tensor or a plain container, so the file loads with ``weights_only=True``.
"""

from __future__ import annotations

from typing import Any

from maestro_lit.train.rng import restore_rng_states, rng_states


def trainable_state_keys(module) -> set[str]:
    keys = {f"policy.{name}" for name, p in module.policy.named_parameters() if p.requires_grad}
    return keys | {f"scalarizer.{name}" for name in module.scalarizer.state_dict()} | module.reference.state_keys()


def save_module_state(module, checkpoint: dict[str, Any]) -> None:
    """Drop the frozen tensors from Lightning's checkpoint and add the module's own state."""
    keep = trainable_state_keys(module)
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
    checkpoint["maestro"] = {
        "skipped_updates": module.updater.skipped_updates,
        "rollouts_done": module.rollouts_done,
        "model": module.model_settings.name_or_path,
        "rng": rng_states(),
        "outer_loop": module.outer.state_dict(),
    }


def load_module_state(module, checkpoint: dict[str, Any]) -> None:
    """Check the checkpoint has every trainable tensor of this config, then restore counters, RNG and the
    Conductor's buffer."""
    missing = sorted(trainable_state_keys(module) - set(checkpoint.get("state_dict", {})))
    if missing:
        raise KeyError(
            "checkpoint does not match this model/config: "
            f"{len(missing)} trainable tensors are missing, e.g. {missing[:3]}"
        )
    state = checkpoint.get("maestro", {})
    module.updater.skipped_updates = int(state.get("skipped_updates", 0))
    module._rollouts_done = int(state.get("rollouts_done", 0))
    if "rng" in state:
        restore_rng_states(state["rng"])
    if "outer_loop" in state:  # absent in checkpoints from before the buffered Conductor
        module.outer.load_state_dict(state["outer_loop"])
