"""TRL 1.16's own GRPO loss code, called on tensors the test supplies.

``GRPOTrainer._compute_loss`` and ``GRPOTrainer.get_high_entropy_mask`` are methods of a trainer that needs a
model, datasets and an accelerator to construct. Their arithmetic reads only a few attributes, so they are
called here as plain functions on a stand-in ``self`` that holds those attributes: one process (the
accelerator's collectives are identities), training mode, no vLLM, no entropy bonus, no auxiliary loss, and a
"forward" that returns the log-probs and entropies the test computed. Everything else (the clipped surrogate,
importance-sampling levels, the k3 KL, the entropy mask, the four reductions and their accumulation scaling) is
TRL's code as installed (``trl==1.16.0``).
"""

from __future__ import annotations

from collections import defaultdict
from types import MethodType, SimpleNamespace

import torch
from trl.trainer.grpo_trainer import GRPOTrainer

TRL_VERSION = "1.16.0"


class OneProcess:
    """The accelerator calls ``_compute_loss`` and ``get_high_entropy_mask`` make, for a single process."""

    num_processes = 1
    sync_gradients = True

    @staticmethod
    def gather(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    gather_for_metrics = gather

    @staticmethod
    def reduce(tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return tensor

    @staticmethod
    def pad_across_processes(tensor: torch.Tensor, dim: int = 0, pad_index: float = 0) -> torch.Tensor:
        return tensor


def _trainer(**settings) -> SimpleNamespace:
    trainer = SimpleNamespace(
        accelerator=OneProcess(),
        model=SimpleNamespace(training=True),
        aux_loss_enabled=False,
        off_policy_mask_threshold=None,
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        _entropy_bonus_enabled=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
        **settings,
    )
    trainer.get_high_entropy_mask = MethodType(GRPOTrainer.get_high_entropy_mask, trainer)
    return trainer


def high_entropy_mask(entropies: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """TRL's ``get_high_entropy_mask`` (``threshold`` = 1 − ``top_entropy_quantile``)."""
    return GRPOTrainer.get_high_entropy_mask(_trainer(), entropies, mask, threshold)


def compute_loss(
    per_token_logps: torch.Tensor,
    entropies: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    ref_per_token_logps: torch.Tensor,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    num_items_in_batch: torch.Tensor,
    *,
    beta: float,
    epsilon_low: float,
    epsilon_high: float,
    loss_type: str,
    importance_sampling_level: str,
    top_entropy_quantile: float,
    max_completion_length: int,
    gradient_accumulation_steps: int,
    steps_per_generation: int,
    importance_sampling_ratio: torch.Tensor | None = None,
) -> torch.Tensor:
    """TRL's ``_compute_loss`` for one chunk whose forward gave ``per_token_logps`` (with grad) and ``entropies``;
    ``importance_sampling_ratio``: the vLLM correction's weights, applied as with ``use_vllm`` and
    ``vllm_importance_sampling_correction`` on."""
    rows, width = per_token_logps.shape
    trainer = _trainer(
        beta=beta,
        epsilon_low=epsilon_low,
        epsilon_high=epsilon_high,
        loss_type=loss_type,
        importance_sampling_level=importance_sampling_level,
        top_entropy_quantile=top_entropy_quantile,
        max_completion_length=max_completion_length,
        current_gradient_accumulation_steps=gradient_accumulation_steps,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=steps_per_generation),
    )
    trainer._get_per_token_logps_and_entropies = lambda *args, **kwargs: (per_token_logps, entropies, None)
    if importance_sampling_ratio is not None:
        trainer.use_vllm = trainer.vllm_importance_sampling_correction = True
    inputs = {
        "prompt_ids": torch.zeros(rows, 0, dtype=torch.long),
        "prompt_mask": torch.zeros(rows, 0, dtype=torch.long),
        "completion_ids": torch.zeros(rows, width, dtype=torch.long),
        "completion_mask": completion_mask,
        "advantages": advantages,
        "old_per_token_logps": old_per_token_logps,
        "ref_per_token_logps": ref_per_token_logps,
        "num_items_in_batch": num_items_in_batch,
    }
    if importance_sampling_ratio is not None:
        inputs["importance_sampling_ratio"] = importance_sampling_ratio
    return GRPOTrainer._compute_loss(trainer, None, inputs)
