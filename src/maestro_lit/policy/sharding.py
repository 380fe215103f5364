"""What FSDP2 shards: every decoder layer, then the causal LM as the root (docs/scaling.md).

One FSDP unit per decoder layer is what makes memory drop: a layer's full weights exist only while it runs. The
root is the transformers ``*ForCausalLM``, not peft's wrapper, so every way the project calls the model goes
through a unit's hooks: the scoring pass (the causal LM's forward), HF ``generate`` (peft calls the causal LM's),
and the pieces that call the backbone and the LM head directly (``ppl``'s ``ReferenceNLL``) inside
``gathered_root``. Frozen base weights and trainable LoRA tensors share a unit (FSDP2 shards each parameter
on its own). Full fine-tuning's frozen reference copy is sharded the same way, so it costs 1/world of its size
per rank too.

Every forward of a sharded model is collective: every rank must run as many as the others, in the same order.
``generate`` runs with ``synced_gpus`` (``policy.rollout.generate``): a rank whose rows are done keeps stepping.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from maestro_lit.policy.scoring import decoder_layers


def shard_causal_lm(causal_lm: nn.Module, mesh) -> None:
    """``fully_shard`` each decoder layer, then the causal LM (embeddings, final norm, LM head: the root's)."""
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(causal_lm):
        fully_shard(layer, mesh=mesh)
    fully_shard(causal_lm, mesh=mesh)


def shard_policy(policy, mesh) -> None:
    """Shard the policy's causal LM and, in full fine-tuning, its frozen reference copy; idempotent."""
    if is_sharded(policy.causal_lm):
        return
    for causal_lm in (policy.causal_lm, policy.reference_model):
        if causal_lm is not None:
            shard_causal_lm(causal_lm, mesh)


def is_sharded(module: nn.Module | None) -> bool:
    """Whether ``module`` is an FSDP2 unit (``fully_shard`` applied to it)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch built without distributed
        return False
    return isinstance(module, FSDPModule)


@contextmanager
def gathered_root(causal_lm: nn.Module) -> Iterator[None]:
    """The root unit's own parameters (embeddings, final norm, LM head) gathered while the body runs, for callers
    that run the backbone and the LM head one by one rather than the causal LM's forward; the decoder layers
    gather themselves when called. Collective; a no-op on an unsharded model."""
    if not is_sharded(causal_lm):
        yield
        return
    causal_lm.unshard()
    try:
        yield
    finally:
        causal_lm.reshard()


def full_tensors(named: dict[str, torch.Tensor], keep: bool) -> dict[str, torch.Tensor]:
    """``named``'s tensors whole on the CPU, each sharded one gathered in turn (collective: every rank calls this
    with the same names); ``keep=False`` returns nothing (the gathered copy is dropped at once)."""
    from torch.distributed.tensor import DTensor

    out = {}
    for name in sorted(named):
        tensor = named[name].detach()
        if isinstance(tensor, DTensor):
            tensor = tensor.full_tensor()
        if keep:
            out[name] = tensor.cpu().clone()
    return out
