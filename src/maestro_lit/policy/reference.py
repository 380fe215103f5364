"""The reference model of the KL term and of ``ppl`` (docs/design.md §1 step 2).

Default (``sync_every: 0``): ``Policy.reference()``, the policy's own weights with the LoRA
adapters off (full fine-tuning: its frozen initial copy). Option (``sync_every: N``): a second
LoRA adapter named ``reference`` on the same base weights, initialised as a copy of the policy's
adapter (so it starts equal to the base model, LoRA's B being 0) and, every N training steps,
mixed towards the policy: ref ← α·policy + (1−α)·ref, TRL's ``sync_ref_model`` (TR-DPO's soft
update), which NOVER configures. ``model.reference.mix_alpha`` is TRL's ``ref_model_mixup_alpha``
(same convention: the policy's share; TRL's default and NOVER's is 0.6) and ``sync_every`` is TRL's
``ref_model_sync_steps`` (NOVER: 100; the paper syncs every 6 steps, 12 on SS-GEN). There is never a
second copy of the base weights: the reference costs one more adapter (r·(d_in + d_out) per adapted linear).

Choices where the paper is silent:
- the mix is taken on the adapter's parameters (A and B separately), as TRL's ``sync_ref_model``
  and NOVER mix parameters; B·A of the mix is not the mix of the B·A products;
- the mix runs after the step's updates, when ``rollouts_done`` is a multiple of N (TRL counts
  optimiser steps: the same with μ = 1 and one minibatch);
- the reference adapter is frozen (never in an optimiser) and saved in checkpoints.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any

import torch

from maestro_lit.policy.scoring import backbone_of
from maestro_lit.policy.sharding import gathered_root
from maestro_lit.rewards.perplexity import ReferenceNLL
from maestro_lit.settings import ReferenceSettings

ADAPTER = "reference"


def reference_nll_for(policy, context: Callable[[], AbstractContextManager[Any]] | None = None) -> ReferenceNLL:
    """``ppl``'s reference forward over the policy's reference weights: full fine-tuning's frozen
    initial copy, or the policy's own modules inside ``context`` (default ``Policy.reference()``:
    the LoRA adapters off; ``ReferenceWeights.context``: the synced adapter)."""
    if policy.reference_model is not None:
        reference = policy.reference_model
        head = reference.get_output_embeddings()
        return ReferenceNLL(backbone_of(reference), head, partial(gathered_root, reference))
    switch = context or policy.reference

    @contextmanager
    def reference_weights():  # under FSDP2 the root's own weights (embeddings, LM head) gathered too
        with switch(), gathered_root(policy.causal_lm):
            yield

    return ReferenceNLL(policy.backbone, policy.lm_head, context=reference_weights)


class ReferenceWeights:
    """Which weights score as the reference; ``context()`` switches them on for a no-grad forward."""

    def __init__(self, policy, settings: ReferenceSettings) -> None:
        self.policy, self.settings = policy, settings
        self.syncs = 0
        self.pairs: list[tuple[str, torch.nn.Parameter, torch.nn.Parameter]] = []  # (name, reference, policy)
        if settings.sync_every == 0:
            return
        if policy.full_finetuning:
            raise ValueError(
                "model.reference.sync_every > 0 needs LoRA (a second adapter); with model.policy.lora=null set it to 0"
            )
        from peft.tuners.lora import LoraLayer

        model = policy.model
        config = copy.deepcopy(model.peft_config[model.active_adapter])
        config.inference_mode = True  # peft freezes it
        model.add_adapter(ADAPTER, config)
        self.rebind()
        with torch.no_grad():
            for _, reference, weights in self.pairs:
                reference.copy_(weights)
        self.layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
        if not self.pairs or any(not p.requires_grad for _, _, p in self.pairs):
            raise RuntimeError("adding the reference adapter changed which LoRA weights train; please report this")

    def rebind(self) -> None:
        """Pair each reference-adapter parameter with the policy's, looked up by name: again after FSDP2 replaces
        the parameters with sharded ones (the pairs then mix shard by shard)."""
        if not self.synced:
            return
        model = self.policy.model
        own = model.active_adapter
        named = dict(model.named_parameters())
        self.pairs = []
        for name, param in named.items():
            if f".{ADAPTER}." in name:
                param.requires_grad_(False)
                self.pairs.append((name, param, named[name.replace(f".{ADAPTER}.", f".{own}.")]))

    @property
    def synced(self) -> bool:
        return self.settings.sync_every > 0

    def state_keys(self) -> set[str]:
        """The reference adapter's keys in the module's state_dict (checkpointed with the trainable ones)."""
        return {f"policy.model.{name}" for name, _, _ in self.pairs}

    @contextmanager
    def context(self):
        """Score as the reference: the synced adapter when there is one, else ``Policy.reference()``."""
        if not self.synced:
            with self.policy.reference():
                yield
            return
        previous = [layer._active_adapter for layer in self.layers]
        for layer in self.layers:  # per layer, not peft's set_adapter: that would flip requires_grad
            layer._active_adapter = [ADAPTER]
        try:
            yield
        finally:
            for layer, active in zip(self.layers, previous):
                layer._active_adapter = active

    @torch.no_grad()
    def after_step(self, rollouts_done: int) -> bool:
        """Mix ref ← α·policy + (1−α)·ref (TRL's ``sync_ref_model``) when ``rollouts_done`` is a multiple of N;
        True when it did."""
        if not self.synced or rollouts_done % self.settings.sync_every:
            return False
        alpha = self.settings.mix_alpha
        for _, reference, weights in self.pairs:
            reference.mul_(1.0 - alpha).add_(weights.detach(), alpha=alpha)
        self.syncs += 1
        return True
