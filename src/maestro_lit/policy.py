"""The LoRA policy: load any HF causal LM, wrap it with peft, and score sequences.

``score`` is the one forward of DESIGN §1 step 2: it runs the decoder once and returns
both the completion tokens' log-probs and the terminal hidden state the Conductor reads.
The reference model is the same weights with the adapters switched off, never a copy.
Log-probs are taken at the sampling temperature (logits / T), as TRL does, so that the
importance ratio compares the distributions the rollout actually sampled from.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from maestro_lit.tiny import resolve_model_path

log = logging.getLogger(__name__)


@dataclass
class LoraSettings:
    """peft LoRA hyper-parameters; ``target_modules='all-linear'`` adapts every linear but the head."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"


@dataclass
class ModelSettings:
    """Which causal LM to load and how. ``name_or_path`` is a hub id, a local folder, or the embedded ``maestro-lit/tiny``."""

    name_or_path: str = "maestro-lit/tiny"
    dtype: str = "float32"
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)


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


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, matching what ``generate`` uses."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _quantization_config(dtype: torch.dtype):
    if not torch.cuda.is_available():
        raise RuntimeError("model.load_in_4bit=true needs a CUDA GPU (bitsandbytes 4-bit has no CPU path here); set it to false")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise RuntimeError("model.load_in_4bit=true needs bitsandbytes: pip install 'maestro_lit[quant]'") from err
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)


def _looks_like_hub_id(name: str) -> bool:
    return name.count("/") <= 1 and not name.startswith((".", "/", "~")) and bool(name.strip())


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        log.warning("Tokenizer of %s has no pad token; using its EOS token %r for padding", path, tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class Policy(nn.Module):
    """A peft-LoRA-wrapped causal LM plus its tokenizer."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM

        path = resolve_model_path(settings.name_or_path)
        if not Path(path).exists() and not _looks_like_hub_id(path):
            raise FileNotFoundError(
                f"policy.name_or_path {settings.name_or_path!r} is neither an existing folder nor a hub id (owner/name)"
            )
        dtype = getattr(torch, settings.dtype)
        kwargs = {"dtype": dtype, "trust_remote_code": settings.trust_remote_code}
        if settings.load_in_4bit:
            kwargs["quantization_config"] = _quantization_config(dtype)
        self.tokenizer = load_tokenizer(path, settings.trust_remote_code)
        base = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if settings.load_in_4bit:
            base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
        lora = settings.lora
        config = LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules, task_type="CAUSAL_LM"
        )
        self.model = get_peft_model(base, config)
        self.model.train()  # from_pretrained returns eval mode; Lightning leaves modes as found
        self._merged_buffers: dict[int, torch.Tensor] = {}  # merged_adapters' W + B·A per LoRA layer, reused
        self._lora_layer_list: list[nn.Module] | None = None
        self.name_or_path = settings.name_or_path

    @property
    def hidden_size(self) -> int:
        return self.model.get_base_model().config.hidden_size

    @property
    def backbone(self) -> nn.Module:
        """The decoder stack without the LM head (its output is after the final norm)."""
        base = self.model.get_base_model()
        return getattr(base, base.base_model_prefix)

    @property
    def lm_head(self) -> nn.Module:
        return self.model.get_base_model().get_output_embeddings()

    def eos_token_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def score(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_start: int, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoder forward → (completion log-probs [N, T], terminal hidden state [N, H]).

        Tokens from ``completion_start`` on are the completion; logits are computed only for
        the positions that predict them, so the prompt costs no LM-head work.
        """
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids_from_mask(attention_mask), use_cache=False
        ).last_hidden_state
        logits = self.lm_head(hidden[:, completion_start - 1 : -1]) / temperature
        logprobs = selective_log_softmax(logits, input_ids[:, completion_start:])
        return logprobs, terminal_hidden_state(hidden, attention_mask).detach()

    @contextmanager
    def adapters_disabled(self):
        """The frozen reference model: the same weights with LoRA switched off.

        Toggled per LoRA layer: peft's model-wide ``disable_adapter()`` walks every module and
        costs ~3 ms a call on the tiny model, more than the reference forward it guards.
        """
        switched_off = [layer for layer in self._lora_layers() if not layer.disable_adapters]
        for layer in switched_off:
            layer.enable_adapters(False)
        try:
            yield
        finally:
            for layer in switched_off:
                layer.enable_adapters(True)

    @contextmanager
    def merged_adapters(self, enabled: bool = True):
        """LoRA folded into the weights for generation (one matmul per linear instead of three).

        Why not peft's merge/unmerge: they add and subtract B·A in place, and in bf16 every
        round trip rounds the frozen base weights a little, so the base drifts over a run.
        Here W + B·A is written into a separate buffer per layer (kept between calls, so a
        compiled / CUDA-graph decode step sees the same addresses every rollout), the layer
        points at it while generating with the adapters switched off, and the original tensor
        is put back untouched. Cost: one extra copy of the adapted weights.
        """
        if not enabled:
            yield
            return
        originals = []
        try:
            for layer in self._lora_layers():
                base = layer.get_base_layer()
                weight = base.weight.data
                merged = self._merged_buffers.get(id(layer))
                if merged is None or merged.shape != weight.shape or merged.dtype != weight.dtype or merged.device != weight.device:
                    merged = self._merged_buffers[id(layer)] = torch.empty_like(weight)
                with torch.no_grad():
                    self._write_merged(layer, weight, merged)
                originals.append((base, weight))
                base.weight.data = merged
            with self.adapters_disabled():
                yield
        finally:
            for base, weight in originals:
                base.weight.data = weight

    @staticmethod
    def _write_merged(layer: nn.Module, weight: torch.Tensor, out: torch.Tensor) -> None:
        """out = W + Σ B·A·scale over the layer's active adapters, rounded once to W's dtype."""
        names = [name for name in layer.active_adapters if name in layer.lora_A]
        delta = layer.get_delta_weight(names[0]) if names else torch.zeros_like(weight)
        for name in names[1:]:
            delta = delta + layer.get_delta_weight(name)
        if weight.dtype == delta.dtype == torch.float32:
            torch.add(weight, delta, out=out)
        else:
            out.copy_(weight.float() + delta.float())

    def _lora_layers(self) -> list[nn.Module]:
        """peft's LoRA layers, found once: the module tree does not change after loading."""
        if self._lora_layer_list is None:
            from peft.tuners.lora import LoraLayer

            self._lora_layer_list = [m for m in self.model.modules() if isinstance(m, LoraLayer)]
        return self._lora_layer_list

    def save_adapter(self, directory: str | Path) -> None:
        """peft-format adapter (safetensors) that ``PeftModel.from_pretrained`` can load."""
        self.model.save_pretrained(str(directory), safe_serialization=True)
