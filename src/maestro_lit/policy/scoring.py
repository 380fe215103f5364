"""The scoring pass (docs/design.md §1 step 2): one forward of the causal LM → everything the step reads.

Why the model's own forward and not ``lm_head(backbone(x))``: many architectures post-process
their logits inside ``forward`` (Gemma-2's final-logit softcapping, output scaling in Cohere or
Granite, …); scoring with the bare head would train on a different distribution from the one
sampled (up to 2.45 nats off on Gemma-2). The forward is called with ``logits_to_keep`` so
the head and its post-processing still run only on the positions that predict completion
tokens; a model whose forward lacks that argument falls back to full logits (same result,
more head work).

The Conductor's input is captured by a forward hook on the chosen layer, at each row's last
non-pad token only, so no layer's full hidden states are retained (``output_hidden_states``
would hold every layer for the whole batch).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

HiddenLayer = Literal["last", "middle", "first"]
HiddenPosition = Literal["completion_end", "prompt_end"]


@dataclass(frozen=True)
class ScoringPass:
    """What one scoring forward gives.

    ``logprobs`` [N, T]: log π(token) of each completion token at the sampling temperature
    (carries gradient when the forward did). ``hidden`` [N, H]: the chosen layer's hidden
    state at the last non-pad token, detached. ``token_entropy`` [N, T]: entropy of the full
    next-token distribution (same temperature) at each completion position, detached; None
    unless asked for.
    """

    logprobs: torch.Tensor
    hidden: torch.Tensor
    token_entropy: torch.Tensor | None = None


def terminal_hidden_state(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state [N, H] at each row's last non-pad position, for left or right padding."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (positions * attention_mask.long()).argmax(dim=-1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def selective_log_softmax(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] per position, one row at a time to bound fp32 memory."""
    out = torch.empty(tokens.shape, dtype=torch.float32, device=logits.device)
    for i in range(logits.shape[0]):
        row = logits[i].float()
        out[i] = row.gather(-1, tokens[i].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(row, dim=-1)
    return out


@torch.no_grad()
def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """−Σ p log p over the vocabulary per position [N, T], one row at a time (no gradient)."""
    out = torch.empty(logits.shape[:2], dtype=torch.float32, device=logits.device)
    for i in range(logits.shape[0]):
        logp = torch.log_softmax(logits[i].float(), dim=-1)
        out[i] = -(logp.exp() * logp).sum(-1)
    return out


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, matching what ``generate`` uses."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def backbone_of(causal_lm: nn.Module) -> nn.Module:
    """The decoder stack without the LM head (its output is after the final norm).

    Where the base model wraps a ``decoder`` that the causal LM calls directly (OPT), that.
    """
    module = getattr(causal_lm, causal_lm.base_model_prefix)
    while isinstance(getattr(module, "decoder", None), nn.Module):
        module = module.decoder
    return module


def decoder_layers(causal_lm: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks: the backbone's ModuleList with ``num_hidden_layers`` entries."""
    count = causal_lm.config.num_hidden_layers
    for module in backbone_of(causal_lm).modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(
        f"cannot find the {count} decoder layers of {type(causal_lm).__name__} for hidden_layer='middle'/'first'"
    )


def hidden_source(causal_lm: nn.Module, hidden_layer: HiddenLayer) -> nn.Module:
    """The module whose output feeds the Conductor.

    ``last``: the backbone's output, after the final norm (= ``hidden_states[-1]``).
    ``middle``: the output of decoder block ``L // 2`` (1-based; = ``hidden_states[L // 2]``).
    ``first``: the output of the first decoder block (= ``hidden_states[1]``), not the
    embeddings. Middle and first are residual-stream states before any norm, as HF reports them.
    """
    if hidden_layer == "last":
        return backbone_of(causal_lm)
    layers = decoder_layers(causal_lm)
    if hidden_layer == "middle":
        return layers[len(layers) // 2 - 1] if len(layers) > 1 else layers[0]
    if hidden_layer == "first":
        return layers[0]
    raise ValueError(f"hidden_layer must be 'last', 'middle' or 'first', got {hidden_layer!r}")


@functools.cache
def _accepts(model_type: type, name: str) -> bool:
    return name in inspect.signature(model_type.forward).parameters


def _first_tensor(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state
    return output[0]


def scoring_pass(
    causal_lm: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_start: int,
    temperature: float = 1.0,
    hidden_layer: HiddenLayer = "last",
    with_entropy: bool = False,
    hidden_position: HiddenPosition = "completion_end",
) -> ScoringPass:
    """One forward of ``causal_lm`` (a transformers ``*ForCausalLM``, LoRA layers in place or not).

    Tokens from ``completion_start`` on are the completion; position ``completion_start - 1``
    onwards predicts them. ``logits_to_keep = T + 1`` keeps the last T + 1 positions (the
    final one predicts past the sequence and is dropped). ``hidden_position``: the hidden state
    at the completion's last token (the paper's), or at the prompt's last token (prompts are
    left-padded to ``completion_start``), which describes the prompt alone.
    """
    captured: list[torch.Tensor] = []

    def capture(_module, _inputs, output):
        states = _first_tensor(output)
        at = (
            states[:, completion_start - 1]
            if hidden_position == "prompt_end"
            else terminal_hidden_state(states, attention_mask)
        )
        captured.append(at.detach())

    completion_len = input_ids.shape[1] - completion_start
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if _accepts(type(causal_lm), "position_ids"):
        kwargs["position_ids"] = position_ids_from_mask(attention_mask)
    keeps_logits = _accepts(type(causal_lm), "logits_to_keep")
    if keeps_logits:
        kwargs["logits_to_keep"] = completion_len + 1
    handle = hidden_source(causal_lm, hidden_layer).register_forward_hook(capture)
    try:
        logits = causal_lm(**kwargs).logits
    finally:
        handle.remove()
    if len(captured) != 1:
        raise RuntimeError(
            f"hidden_layer={hidden_layer!r}: its module ran {len(captured)} times "
            f"in one forward of {type(causal_lm).__name__}"
        )
    logits = logits[:, -(completion_len + 1) : -1] if keeps_logits else logits[:, completion_start - 1 : -1]
    logits = logits / temperature
    return ScoringPass(
        logprobs=selective_log_softmax(logits, input_ids[:, completion_start:]),
        hidden=captured[0],
        token_entropy=token_entropy(logits) if with_entropy else None,
    )
