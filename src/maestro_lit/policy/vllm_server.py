"""The ``vllm_server`` rollout engine: an OpenAI-compatible vLLM server samples, the trained LoRA adapter pushed to it.

Why: a vLLM server on other GPUs takes the rollout off the training GPU and scales past one card. The server
holds the base weights; after each policy update (``weights_changed``) the next rollout first writes the
adapter (peft format, atomically, to ``adapter_dir``) and asks the server to reload it in place
(``POST /v1/load_lora_adapter`` with ``load_inplace: true``, vLLM's runtime LoRA loading, on when the server
runs with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` and ``--enable-lora``): one load per training step, none
for validation or evals between updates. Then one ``POST /v1/completions`` sends the token ids of every
prompt with ``n = G`` and asks for the sampled tokens' ids and log-probs; choices come back indexed
prompt·G + g, which is the project's group layout.

The server's log-probs (with ``--logprobs-mode processed_logprobs``: of the distribution it sampled, after
temperature/top-k/top-p) become ``Rollout.sampler_logprobs``, so the loss can correct for its numerics
differing from the training forward (``model.rollout.importance_sampling_correction``).

Stdlib HTTP only (no client dependency). Every failure is a ``VllmServerError`` naming the URL and what went
wrong (HTTP status and the server's message, a timeout after ``timeout_s``, a reply that is not a completions
payload, fewer completions than asked for); no redirect is followed.
"""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from maestro_lit.atomic_io import atomic_path
from maestro_lit.policy.rollout import Rollout, RolloutEngine, RolloutEngineError, finish_rollout
from maestro_lit.settings import SamplingSettings, VllmServerSettings

TOKEN_ID_PREFIX = "token_id:"  # vLLM's spelling of a token with return_tokens_as_token_ids


class VllmServerError(RolloutEngineError):
    """The vLLM server did not give the rollout: an HTTP error, a timeout or a reply that is not one."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def completions_request(
    adapter_name: str, prompts: list[list[int]], num_generations: int, sampling: SamplingSettings, greedy: bool, eos
) -> dict:
    """The ``/v1/completions`` body: token-id prompts, n = G, the rollout's sampling settings, sampled log-probs."""
    return {
        "model": adapter_name,
        "prompt": prompts,
        "n": num_generations,
        "max_tokens": sampling.max_new_tokens,
        "temperature": 0.0 if greedy else sampling.temperature,
        "top_p": 1.0 if greedy else sampling.top_p,
        "top_k": -1 if greedy or not sampling.top_k else sampling.top_k,
        "stop_token_ids": list(eos),
        "logprobs": 1,  # the sampled token's log-prob is always included beside the top-1
        "return_tokens_as_token_ids": True,
        "return_token_ids": True,
        "skip_special_tokens": False,
    }


def choice_tokens(choice: dict) -> tuple[list[int], list[float]]:
    """Sampled token ids and their log-probs from one completions choice (``token_ids`` when the server sends
    them, else the ``token_id:N`` tokens of its log-probs)."""
    logprobs = choice.get("logprobs") or {}
    values = logprobs.get("token_logprobs")
    ids = choice.get("token_ids")
    if ids is None:
        ids = [int(token.removeprefix(TOKEN_ID_PREFIX)) for token in logprobs.get("tokens") or []]
    if not isinstance(values, list) or len(values) != len(ids) or not all(isinstance(v, (int, float)) for v in values):
        raise ValueError("no log-prob per sampled token")
    return [int(i) for i in ids], [float(v) for v in values]


class VllmServerEngine(RolloutEngine):
    """``model.rollout.engine: vllm_server`` (settings ``model.rollout.vllm_server``); module docstring."""

    samples_the_module = False

    def __init__(self, settings: VllmServerSettings | None = None) -> None:
        self.settings = settings or VllmServerSettings()
        parts = urllib.parse.urlsplit(self.settings.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"model.rollout.vllm_server.base_url: {self.settings.base_url!r} is not an http:// or https:// URL"
            )
        self.api = self.settings.base_url.rstrip("/") + "/v1"
        self._version, self._pushed = 0, -1  # policy updates seen, and the one the server holds
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.adapter_loads = 0

    def weights_changed(self) -> None:
        self._version += 1

    def _post(self, path: str, body: dict) -> bytes:
        url = self.api + path
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        timeout = self.settings.timeout_s
        try:
            with _OPENER.open(request, timeout=timeout) as reply:
                return reply.read()
        except urllib.error.HTTPError as err:
            message = err.read()[:500].decode(errors="replace").strip()
            raise VllmServerError(f"vLLM server: POST {url} answered HTTP {err.code}: {message}") from err
        except TimeoutError as err:
            raise VllmServerError(
                f"vLLM server: POST {url} timed out after {timeout:g} s (model.rollout.vllm_server.timeout_s)"
            ) from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                raise VllmServerError(
                    f"vLLM server: POST {url} timed out after {timeout:g} s (model.rollout.vllm_server.timeout_s)"
                ) from err
            raise VllmServerError(
                f"vLLM server: POST {url} failed: {err.reason} (is the server running at "
                f"model.rollout.vllm_server.base_url={self.settings.base_url!r}?)"
            ) from err

    def _adapter_folder(self) -> Path:
        if self.settings.adapter_dir:
            return Path(self.settings.adapter_dir) / self.settings.adapter_name
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="maestro_vllm_adapter_")
        return Path(self._tmp.name) / self.settings.adapter_name

    def push_adapter(self, policy) -> None:
        """Write the adapter and have the server reload it in place under ``adapter_name``."""
        if policy.full_finetuning:
            raise VllmServerError(
                "model.rollout.engine=vllm_server pushes a LoRA adapter each step: set model.policy.lora "
                "(full fine-tuning would need the whole weights sent every step)"
            )
        folder = self._adapter_folder()
        with atomic_path(folder) as tmp:
            policy.save_adapter(tmp)
        body = {"lora_name": self.settings.adapter_name, "lora_path": str(folder.resolve()), "load_inplace": True}
        self._post("/load_lora_adapter", body)
        self.adapter_loads += 1

    def generate(self, policy, prompt_ids, prompt_mask, num_generations, sampling, greedy=False) -> Rollout:
        if self._pushed != self._version:
            self.push_adapter(policy)
            self._pushed = self._version
        prompts = [ids[mask.bool()].tolist() for ids, mask in zip(prompt_ids, prompt_mask, strict=True)]
        eos = policy.eos_token_ids()
        body = completions_request(self.settings.adapter_name, prompts, num_generations, sampling, greedy, eos)
        url = self.api + "/completions"
        raw = self._post("/completions", body)
        rows = len(prompts) * num_generations
        try:
            choices = json.loads(raw)["choices"]
            ordered = sorted(choices, key=lambda choice: int(choice["index"]))
            parsed = [choice_tokens(choice) for choice in ordered]
        except (ValueError, KeyError, TypeError) as err:
            raise VllmServerError(
                f"vLLM server: POST {url} gave no completions with token ids and log-probs ({err}): {raw[:200]!r}"
            ) from err
        if [int(choice["index"]) for choice in ordered] != list(range(rows)):
            raise VllmServerError(f"vLLM server: POST {url} returned {len(ordered)} of {rows} completions")
        dtype, pad = prompt_ids.dtype, policy.tokenizer.pad_token_id
        ids = pad_sequence([torch.tensor(t or [pad], dtype=dtype) for t, _ in parsed], True, pad)
        logprobs = pad_sequence([torch.tensor(v or [0.0], dtype=torch.float32) for _, v in parsed], True)
        device = prompt_ids.device
        return finish_rollout(
            policy, prompt_ids, prompt_mask, num_generations, ids.to(device), None if greedy else logprobs.to(device)
        )
