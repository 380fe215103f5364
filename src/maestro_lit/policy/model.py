"""The policy: load any HF causal LM, wrap it with peft LoRA (or train it whole), and score sequences.

``scoring_pass`` is the one forward of docs/design.md §1 step 2 (``maestro_lit.policy.scoring``):
the model's own forward, so its logit post-processing applies, returning the completion
tokens' log-probs, the hidden state the Conductor reads and, on request, token entropies.
With LoRA the reference model is the same weights with the adapters switched off, never a
copy; with full fine-tuning it is a frozen copy of the initial weights (``Policy.reference``).
Log-probs are taken at the sampling temperature (logits / T), as TRL does, so that the
importance ratio compares the distributions the rollout actually sampled from.
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from maestro_lit.policy.scoring import (
    HiddenLayer,
    HiddenPosition,
    ScoringPass,
    backbone_of,
    scoring_pass,
)
from maestro_lit.settings import ModelSettings
from maestro_lit.tiny import resolve_model_path

log = logging.getLogger(__name__)

MIN_BITSANDBYTES = "0.49"


def _quantization_config(dtype: torch.dtype):
    try:
        import bitsandbytes
    except ImportError as err:
        raise RuntimeError(
            f"model.policy.load_in_4bit=true needs bitsandbytes>={MIN_BITSANDBYTES}: pip install 'maestro_lit[quant]'"
        ) from err
    from packaging.version import Version

    if Version(bitsandbytes.__version__) < Version(MIN_BITSANDBYTES):
        raise RuntimeError(
            f"model.policy.load_in_4bit=true needs bitsandbytes>={MIN_BITSANDBYTES} (4-bit on CPU and CUDA), "
            f"found {bitsandbytes.__version__}: pip install -U 'maestro_lit[quant]'"
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True
    )


def _keep_4bit_trainable_on_cpu(model: nn.Module) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference.

    On a CPU with AVX512-BF16, ``Linear4bit`` repacks its weight the first time it runs in eval
    mode without grad (as generation does) and from then on uses a kernel with no autograd:
    later training forwards drop the gradient through every 4-bit layer, with only a warning.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


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
    """A causal LM plus its tokenizer: peft-LoRA-wrapped, or trained whole (``lora=None``)."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM

        path = resolve_model_path(settings.name_or_path)
        if not Path(path).exists() and not _looks_like_hub_id(path):
            raise FileNotFoundError(
                f"policy.name_or_path {settings.name_or_path!r} is neither an existing folder nor a hub id (owner/name)"
            )
        if settings.lora is None and settings.load_in_4bit:
            raise ValueError(
                "model.policy.lora=null (full fine-tuning) cannot train 4-bit weights: "
                "set model.policy.load_in_4bit=false or give LoRA settings"
            )
        dtype = getattr(torch, settings.dtype)
        kwargs = {"dtype": dtype, "trust_remote_code": settings.trust_remote_code}
        if settings.load_in_4bit:
            kwargs["quantization_config"] = _quantization_config(dtype)
        self.tokenizer = load_tokenizer(path, settings.trust_remote_code)
        base = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        checkpointing = {"use_reentrant": False}
        if settings.load_in_4bit:
            from peft import prepare_model_for_kbit_training

            _keep_4bit_trainable_on_cpu(base)
            # peft would enable checkpointing by transformers' deprecated name; with use_reentrant=False that is
            # all it would do, so it is enabled below, as for every other model
            base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
        if settings.gradient_checkpointing:
            if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5 (the old name is deprecated)
                base.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpointing)
            else:
                base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        self.full_finetuning = settings.lora is None
        if self.full_finetuning:
            # The reference: the initial weights, frozen. Not registered as a submodule so that
            # state_dict, checkpoints, DDP and the optimiser never see it; moved with ``_apply``.
            self._reference = [copy.deepcopy(base).requires_grad_(False).eval()]
            self.model = base
        else:
            from peft import LoraConfig, get_peft_model

            lora = settings.lora
            config = LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
                task_type="CAUSAL_LM",
            )
            if settings.gradient_checkpointing:
                # frozen embeddings: checkpointed blocks still need a grad-carrying input
                base.enable_input_require_grads()
            self._reference = []
            self.model = get_peft_model(base, config)
        self.model.train()  # from_pretrained returns eval mode; Lightning leaves modes as found
        self._scoring_target: nn.Module | None = None  # set by ``reference()`` in full fine-tuning
        self._merged_buffers: dict[int, torch.Tensor] = {}  # merged_adapters' W + B·A per LoRA layer, reused
        self._lora_layer_list: list[nn.Module] | None = None
        self.name_or_path = settings.name_or_path

    def _apply(self, fn, *args, **kwargs):
        """Move / cast the unregistered frozen reference along with the policy."""
        super()._apply(fn, *args, **kwargs)
        for reference in self._reference:
            reference._apply(fn, *args, **kwargs)
        return self

    @property
    def causal_lm(self) -> nn.Module:
        """The transformers ``*ForCausalLM`` being trained (LoRA layers injected in place, if any)."""
        return self.model if self.full_finetuning else self.model.get_base_model()

    @property
    def reference_model(self) -> nn.Module | None:
        """Full fine-tuning's frozen copy of the initial weights; None with LoRA."""
        return self._reference[0] if self._reference else None

    @property
    def hidden_size(self) -> int:
        return self.causal_lm.config.hidden_size

    @property
    def backbone(self) -> nn.Module:
        """The decoder stack without the LM head (its output is after the final norm)."""
        return backbone_of(self.causal_lm)

    @property
    def lm_head(self) -> nn.Module:
        return self.causal_lm.get_output_embeddings()

    def eos_token_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def scoring_pass(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        completion_start: int,
        temperature: float = 1.0,
        hidden_layer: HiddenLayer = "last",
        with_entropy: bool = False,
        hidden_position: HiddenPosition = "completion_end",
    ) -> ScoringPass:
        """One forward → ``ScoringPass(logprobs [N, T], hidden [N, H], token_entropy [N, T] | None)``.

        Tokens from ``completion_start`` on are the completion. The model's own forward runs
        (its logit post-processing included) with logits only at the positions predicting
        them. ``hidden_layer`` and ``hidden_position`` pick the Conductor's input (``maestro_lit.policy.scoring``);
        ``with_entropy`` adds the full-distribution entropy at the sampling temperature.
        Inside ``reference()`` this scores with the reference weights.
        """
        target = self._scoring_target if self._scoring_target is not None else self.causal_lm
        return scoring_pass(
            target,
            input_ids,
            attention_mask,
            completion_start,
            temperature,
            hidden_layer,
            with_entropy,
            hidden_position,
        )

    @contextmanager
    def reference(self):
        """Score as the reference model: LoRA switched off, or (full fine-tuning) the frozen initial weights.

        Use it around ``scoring_pass`` under ``torch.no_grad()``.
        """
        if not self.full_finetuning:
            with self._lora_switched_off():
                yield
            return
        previous, self._scoring_target = self._scoring_target, self.reference_model
        try:
            yield
        finally:
            self._scoring_target = previous

    @contextmanager
    def _lora_switched_off(self):
        """Toggled per LoRA layer: peft's model-wide ``disable_adapter()`` walks every module and
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
        if not enabled or self.full_finetuning:  # full fine-tuning has nothing to merge
            yield
            return
        originals = []
        try:
            for layer in self._lora_layers():
                base = layer.get_base_layer()
                weight = base.weight.data
                merged = self._merged_buffers.get(id(layer))
                if (
                    merged is None
                    or merged.shape != weight.shape
                    or merged.dtype != weight.dtype
                    or merged.device != weight.device
                ):
                    merged = self._merged_buffers[id(layer)] = torch.empty_like(weight)
                with torch.no_grad():
                    self._write_merged(layer, weight, merged)
                originals.append((base, weight))
                base.weight.data = merged
            with self._lora_switched_off():
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

    def gathered_weights(self, keep: bool) -> dict[str, torch.Tensor] | None:
        """Under FSDP2: what ``save_adapter`` writes (every LoRA tensor, reference adapter included; everything in
        full fine-tuning), gathered whole. Collective: every rank calls it; only ``keep`` ranks get the tensors.
        None when the model is not sharded."""
        from maestro_lit.policy.sharding import full_tensors, is_sharded

        if not is_sharded(self.causal_lm):
            return None
        named = dict(self.model.named_parameters())
        if not self.full_finetuning:
            named = {name: tensor for name, tensor in named.items() if "lora_" in name}
        return full_tensors(named, keep)

    def save_adapter(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """peft-format adapter (safetensors) that ``PeftModel.from_pretrained`` can load; full weights in full
        fine-tuning. ``state_dict``: the weights gathered by ``gathered_weights`` when the model is sharded."""
        extra = {} if state_dict is None else {"state_dict": state_dict}
        self.model.save_pretrained(str(directory), safe_serialization=True, **extra)
