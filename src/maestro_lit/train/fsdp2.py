"""FSDP2 through Lightning's ``ModelParallelStrategy``, data parallel only, with the project's checkpoint format.

``FSDP2Strategy`` (``configs/overlays/fsdp.yaml``, docs/scaling.md) differs from its parent in three ways:
- every process is one data-parallel replica (the parent's ``auto`` puts all of a node's GPUs in one
  tensor-parallel group, which would feed every rank the same prompts);
- a checkpoint is one file, as under DDP, holding only the trainable tensors (``train.module_state``), gathered
  tensor by tensor: the frozen base is never assembled, and ``on_load_checkpoint`` sees the file's
  ``state_dict`` to check it against the config before anything is loaded;
- the optimiser's state is saved whole and keyed by position, as ``Optimizer.state_dict()`` keys it (the layout
  DDP writes: a run can switch between DDP and FSDP2 on resume), and sharded again on load.
The sharding itself is the module's ``configure_model`` (``policy.sharding``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from lightning.pytorch.strategies.strategy import Strategy
from torch.distributed.constants import default_pg_timeout

from maestro_lit.policy.sharding import full_tensors


@torch.no_grad()
def load_full_tensors(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy whole tensors into ``module``'s parameters and buffers of those names, sharded ones keeping only this
    rank's shard (no communication: every rank holds ``state``)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    targets = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    for name, value in state.items():
        target = targets.get(name)
        if target is None:
            continue  # on_load_checkpoint has checked which names must match
        if isinstance(target, DTensor):
            shard = distribute_tensor(value.to(target.dtype), target.device_mesh, target.placements, src_data_rank=None)
            target.to_local().copy_(shard.to_local())
        else:
            target.copy_(value)


def by_position(state: dict[str, Any]) -> dict[str, Any]:
    """A name-keyed optimiser state (``get_optimizer_state_dict``) keyed as ``Optimizer.state_dict()`` keys it:
    by position in the param groups. The checkpoint then has the layout DDP and one device write, so a run can
    resume under another strategy."""
    if not state:
        return state  # ranks other than 0 get nothing
    position: dict[str, int] = {}
    groups = []
    for group in state["param_groups"]:
        ids = [position.setdefault(name, len(position)) for name in group["params"]]
        groups.append({**group, "params": ids})
    return {"state": {position[name]: value for name, value in state["state"].items()}, "param_groups": groups}


def by_name(state: dict[str, Any], ordered_names: list[str]) -> dict[str, Any]:
    """``by_position`` undone: ``ordered_names`` are the optimiser's parameters' names in param-group order."""
    groups = []
    for group in state["param_groups"]:
        groups.append({**group, "params": [ordered_names[i] for i in group["params"]]})
    return {"state": {ordered_names[i]: value for i, value in state["state"].items()}, "param_groups": groups}


class FSDP2Strategy(ModelParallelStrategy):
    """FSDP2 over every process (module docstring)."""

    def __init__(
        self, process_group_backend: str | None = None, timeout: timedelta | None = default_pg_timeout
    ) -> None:
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=False,
            process_group_backend=process_group_backend,
            timeout=timeout,
        )

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    @property
    def lightning_restore_optimizer(self) -> bool:
        return True  # load_optimizer_state_dict below, after on_load_checkpoint has checked the file

    def lightning_module_state_dict(self) -> dict[str, Any]:
        from maestro_lit.train.module_state import trainable_state_keys

        module = self.lightning_module
        keys = trainable_state_keys(module) if hasattr(module, "policy") else None
        state = module.state_dict()
        named = {k: v for k, v in state.items() if keys is None or k in keys}
        return full_tensors(named, keep=self.is_global_zero)

    def optimizer_state(self, optimizer) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        optimizer = getattr(optimizer, "_optimizer", optimizer)  # a LightningOptimizer's
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return by_position(get_optimizer_state_dict(self.model, optimizer, options=options))

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict[str, Any]:
        path = Path(self.broadcast(checkpoint_path))
        if path.is_dir():
            raise ValueError(
                f"ckpt_path {path} is a folder (a sharded checkpoint); FSDP2Strategy reads the one-file checkpoints "
                "it writes"
            )
        return Strategy.load_checkpoint(self, path, weights_only=weights_only)

    def load_model_state_dict(self, checkpoint: dict[str, Any], strict: bool = True) -> None:
        load_full_tensors(self.lightning_module, checkpoint["state_dict"])

    def load_optimizer_state_dict(self, checkpoint: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True)
        names = {id(param): name for name, param in self.model.named_parameters()}
        for optimizer, state in zip(self.optimizers, checkpoint.get("optimizer_states", [])):
            optimizer = getattr(optimizer, "_optimizer", optimizer)
            ordered = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
            named = by_name(state, ordered)
            set_optimizer_state_dict(self.model, optimizer, optim_state_dict=named, options=options)
