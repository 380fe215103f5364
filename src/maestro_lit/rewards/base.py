"""The reward-component contract (docs/design.md §5), shaped like TRL's reward functions.

A component is called **by keyword**, as TRL's ``GRPOTrainer`` calls a reward function:
``prompts=``, ``completions=``, ``completion_ids=`` (one list of token ids per completion),
every dataset column (``reference=``, ``category=``, …) and ``trainer_state=``. It returns one
score per completion (Tensor or list; ``None``/NaN = missing, masked by the trainer).

What a component needs beyond that is declared by class attributes of
:class:`RewardComponent` (never probed with ``hasattr``); :func:`call_component` reads them and
adds exactly those keywords from the :class:`RewardInputs` record the trainer builds once per
step. :func:`score_components` scores a whole list, awaiting async components concurrently
and handing earlier results to components that declare ``needs_scores_of``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

Normalization = Literal["rank", "zscore", "none", "rank_centered", "centered"]
NORMALIZATIONS: tuple[str, ...] = ("rank", "zscore", "none", "rank_centered", "centered")


class RewardComponent:
    """Base class of reward components; plain Python (not nn.Module) so no reward model
    weights end up in the optimisers or the checkpoint.

    Subclasses implement ``__call__(self, prompts, completions, **kwargs)``; they are always
    called by keyword. The ``needs_*`` flags below say which trainer extras they receive.
    """

    name: str = "reward"
    #: within-group normalisation before scalarisation (``grpo.normalize_components``).
    normalization: Normalization = "zscore"
    #: ``ref_logprobs`` [N, T] (reference model, adapters off) and ``completion_mask`` [N, T].
    needs_reference_logprobs: bool = False
    #: ``logprobs`` [N, T] of the sampled tokens under the policy's scoring forward + ``completion_mask``.
    needs_logprobs: bool = False
    #: ``token_entropy`` [N, T], full-distribution entropy per completion token + ``completion_mask``.
    needs_token_entropy: bool = False
    #: ``tokenizer``, ``prompt_ids``/``prompt_mask`` [N, P] (left-padded, chat-templated) and
    #: ``reference_nll`` (one batched no-grad reference forward, see ``perplexity.ReferenceNLL``).
    needs_policy: bool = False
    #: ``group_size`` G (completions i·G … i·G+G-1 share a prompt).
    needs_group: bool = False
    #: names of components whose raw scores this one reads from ``earlier_scores``; they must come first.
    needs_scores_of: tuple[str, ...] = ()
    #: True when ``acall`` is a coroutine (async TRL reward functions); awaited concurrently.
    is_async: bool = False
    #: the share of completions the component scores by design (a judge on a sample of prompts scores less than
    #: all); the missing-score warning allows for the rest (``reward_set.MissingScores``).
    scored_fraction: float = 1.0
    #: with conversational data, ``prompts`` as message lists and ``completions`` as
    #: ``[{"role": "assistant", "content": …}]``, TRL's conversational shape; otherwise the texts.
    takes_messages: bool = False

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **kwargs: Any) -> Any:
        raise NotImplementedError

    async def acall(self, **kwargs: Any) -> Any:
        """Async entry point; only components with ``is_async = True`` override it."""
        return self(**kwargs)

    def state_dict(self) -> dict[str, Any]:
        """What the component's future scores depend on besides its inputs (a sampled judge's draws and counts),
        as tensors and plain values: saved in the checkpoint so a resumed run scores as one that never stopped."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def cost(self) -> dict[str, float]:
        """Running totals of what the component has paid for (e.g. judge calls, rows scored), logged as
        ``train/reward_cost/<name>/<key>``; empty for components whose cost is the step's own compute."""
        return {}


class RewardError(ValueError):
    """A component returned something that is not one finite-or-NaN float per completion."""


@dataclass
class RewardInputs:
    """Everything the trainer can give reward components in one step; built once, read by
    :func:`call_component`. Tensors are [N, ...] with N = B·G completions, group-major."""

    prompts: list[str]
    completions: list[str]
    completion_ids: list[list[int]]  # TRL's form: token ids without padding
    columns: dict[str, list[Any]] = field(default_factory=dict)  # dataset columns, one value per completion
    trainer_state: Any = None  # TRL passes its TrainerState; anything with ``global_step`` serves
    group_size: int = 1
    completion_mask: torch.Tensor | None = None
    logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None
    token_entropy: torch.Tensor | None = None
    prompt_ids: torch.Tensor | None = None
    prompt_mask: torch.Tensor | None = None
    tokenizer: Any = None
    reference_nll: Callable[..., torch.Tensor] | None = None
    earlier_scores: dict[str, torch.Tensor] = field(default_factory=dict)
    prompt_messages: list[list[dict[str, Any]]] | None = None  # conversational data: each prompt's messages
    completion_messages: list[list[dict[str, Any]]] | None = None  # and each completion as one assistant turn

    def __post_init__(self) -> None:
        n = len(self.completions)
        if len(self.prompts) != n or len(self.completion_ids) != n:
            raise ValueError(
                f"RewardInputs: {len(self.prompts)} prompts, {n} completions, {len(self.completion_ids)} completion_ids"
            )
        for name in ("prompt_messages", "completion_messages"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"RewardInputs: {len(values)} {name} for {n} completions")
        for key, values in self.columns.items():
            if key in ("prompts", "completions", "completion_ids", "trainer_state"):
                raise ValueError(f"dataset column '{key}' clashes with a reward-function keyword of the same name")
            if len(values) != n:
                raise ValueError(f"column '{key}' has {len(values)} values for {n} completions")


def id_lists(ids: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """[N, T] padded ids + mask → TRL's ``completion_ids`` (one unpadded list per row)."""
    return [row[m.bool()].tolist() for row, m in zip(ids.cpu(), mask.cpu())]


def _missing(component: RewardComponent, what: str) -> RewardError:
    return RewardError(f"reward component '{component.name}' needs {what}, but the trainer passed None")


def component_kwargs(component: RewardComponent, batch: RewardInputs) -> dict[str, Any]:
    """TRL's keywords plus exactly the extras ``component`` declares."""
    kwargs: dict[str, Any] = {
        "prompts": list(batch.prompts),
        "completions": list(batch.completions),
        "completion_ids": batch.completion_ids,
        **batch.columns,
        "trainer_state": batch.trainer_state,
    }
    if component.takes_messages and batch.prompt_messages is not None and batch.completion_messages is not None:
        kwargs["prompts"] = [list(messages) for messages in batch.prompt_messages]
        kwargs["completions"] = [list(messages) for messages in batch.completion_messages]
    wanted: dict[str, bool] = {
        "ref_logprobs": component.needs_reference_logprobs,
        "logprobs": component.needs_logprobs,
        "token_entropy": component.needs_token_entropy,
        "completion_mask": component.needs_reference_logprobs
        or component.needs_logprobs
        or component.needs_token_entropy,
        "tokenizer": component.needs_policy,
        "prompt_ids": component.needs_policy,
        "prompt_mask": component.needs_policy,
        "reference_nll": component.needs_policy,
    }
    for key, needed in wanted.items():
        if needed:
            value = getattr(batch, key)
            if value is None:
                raise _missing(component, f"'{key}'")
            kwargs[key] = value
    if component.needs_group:
        kwargs["group_size"] = batch.group_size
    if component.needs_scores_of:
        absent = [name for name in component.needs_scores_of if name not in batch.earlier_scores]
        if absent:
            raise _missing(component, f"the scores of {absent} (list those components before it)")
        kwargs["earlier_scores"] = {name: batch.earlier_scores[name] for name in component.needs_scores_of}
    return kwargs


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run to completion, also from inside a running event loop (notebooks): then on a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def call_component(component: RewardComponent, batch: RewardInputs) -> torch.Tensor:
    """Score one component: keyword call, output validated to a float32 CPU tensor [N] (None → NaN)."""
    output = component(**component_kwargs(component, batch))
    if asyncio.iscoroutine(output):
        output = run_coroutine(output)
    return as_score_tensor(component.name, output, len(batch.completions))


def check_component_order(components: Sequence[RewardComponent]) -> None:
    """Unique names, and every ``needs_scores_of`` name listed earlier (so one pass suffices)."""
    seen: list[str] = []
    for component in components:
        if component.name in seen:
            raise ValueError(f"reward component names must be unique; '{component.name}' appears twice")
        late = [name for name in component.needs_scores_of if name not in seen]
        if late:
            raise ValueError(
                f"reward component '{component.name}' reads the scores of {late}: list them before it in model.rewards"
            )
        if component.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"reward component '{component.name}': "
                f"normalization {component.normalization!r} not in {NORMALIZATIONS}"
            )
        seen.append(component.name)


def score_components(
    components: Sequence[RewardComponent], batch: RewardInputs, on_error: Literal["raise", "skip"] = "raise"
) -> torch.Tensor:
    """R [N, K] in component order. Async components run first, concurrently (one
    ``asyncio.gather``), as TRL does; then the others in list order, each seeing the raw
    scores of those before it (``earlier_scores``). ``on_error="skip"`` turns a component
    that raises into a NaN column for this step; malformed outputs always raise."""
    check_component_order(components)
    n = len(batch.completions)
    scores: dict[str, torch.Tensor] = {}

    def failed(component: RewardComponent, err: BaseException) -> torch.Tensor:
        if on_error == "raise" or isinstance(err, RewardError):
            raise RewardError(f"reward component '{component.name}' raised {type(err).__name__}: {err}") from err
        return torch.full((n,), float("nan"))

    async_ones = [c for c in components if c.is_async]
    if async_ones:

        async def gather() -> list[Any]:
            return await asyncio.gather(
                *(c.acall(**component_kwargs(c, batch)) for c in async_ones), return_exceptions=True
            )

        for component, output in zip(async_ones, run_coroutine(gather())):
            if isinstance(output, BaseException):
                scores[component.name] = failed(component, output)
            else:
                scores[component.name] = as_score_tensor(component.name, output, n)
    for component in components:
        if component.is_async:
            continue
        step = dataclasses.replace(batch, earlier_scores={**batch.earlier_scores, **scores})
        try:
            output = component(**component_kwargs(component, step))
        except Exception as err:  # noqa: BLE001 - the policy is the caller's (on_error)
            scores[component.name] = failed(component, err)
            continue
        scores[component.name] = as_score_tensor(component.name, output, n)
    return torch.stack([scores[c.name] for c in components], dim=-1)


def normalizations(components: Sequence[RewardComponent]) -> list[str]:
    """The per-column normalisation list ``grpo.scalarize`` takes."""
    return [component.normalization for component in components]


def as_score_tensor(component_name: str, scores: Any, expected: int) -> torch.Tensor:
    """Validate a component's output and return a float32 CPU tensor of shape [expected].

    ``None`` entries (TRL's "not applicable") become NaN, so they are masked downstream.
    """
    if isinstance(scores, torch.Tensor):
        values = scores.detach().to("cpu", torch.float32).flatten()
        if scores.dim() != 1:
            raise RewardError(
                f"reward component '{component_name}' returned a tensor of shape {tuple(scores.shape)}; "
                f"expected ({expected},)"
            )
    elif isinstance(scores, (list, tuple)):
        try:
            values = torch.tensor([float("nan") if s is None else float(s) for s in scores], dtype=torch.float32)
        except (TypeError, ValueError) as err:
            raise RewardError(
                f"reward component '{component_name}' returned non-numeric scores: {list(scores)[:5]!r}"
            ) from err
    elif hasattr(scores, "tolist") and not isinstance(scores, Mapping):  # numpy arrays and the like
        return as_score_tensor(component_name, scores.tolist(), expected)
    else:
        raise RewardError(
            f"reward component '{component_name}' returned {type(scores).__name__}; expected a Tensor or list of floats"
        )
    if values.numel() != expected:
        raise RewardError(
            f"reward component '{component_name}' returned {values.numel()} scores for {expected} completions"
        )
    return values
