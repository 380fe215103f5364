"""The model card (``README.md``) that ``export`` writes into the exported folder.

Why a card: an exported folder travels alone (a colleague's disk, the Hugging Face Hub), and the
run folder with its config and event files stays behind. The card keeps what a reader needs to
judge and reproduce the model: the base model, the method (the scalariser), the reward components,
how many steps it trained, when it was exported, and the run's whole config. The YAML front matter
is the Hub's metadata block; ``base_model`` is set only when the base is a Hub id (the Hub rejects a
local path or the project's embedded tiny model there), and the body names the base either way.

A pure function of a ``ModelCard`` record, so it is tested without a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RewardLine:
    """One reward component as the card lists it."""

    name: str
    class_path: str
    normalization: str


@dataclass(frozen=True)
class ModelCard:
    """What the card says; ``export`` fills it from the run's config, checkpoint and module."""

    base_model: str
    method: str
    """The scalariser's class (e.g. ``Conductor``: MAESTRO; ``StaticWeights``: a fixed-weight baseline)."""
    rewards: list[RewardLine]
    rollouts_done: int | None
    """Training steps (rollouts) in the checkpoint."""
    global_step: int | None
    """Policy optimiser steps in the checkpoint."""
    date: str
    """Export date, ISO (UTC)."""
    config_text: str
    """The run's ``config.yaml``, verbatim."""
    action_names: list[str] = field(default_factory=list)
    lora_merged: bool = True
    base_on_hub: bool = False
    """Whether ``base_model`` is a Hub id (then it goes into the front matter)."""


def is_hub_id(name: str) -> bool:
    """``org/name`` that is not a local folder: what the Hub accepts as ``base_model``."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and not Path(name).exists()


def _front_matter(card: ModelCard) -> str:
    lines = ["---"]
    if card.base_on_hub:
        lines.append(f"base_model: {card.base_model}")
    lines += ["library_name: transformers", "tags:", "- maestro_lit", "- grpo", "- multi-reward", "---"]
    return "\n".join(lines)


def render(card: ModelCard) -> str:
    """The card's markdown."""
    rewards = "\n".join(f"| `{r.name}` | `{r.class_path}` | {r.normalization} |" for r in card.rewards)
    steps = "unknown" if card.rollouts_done is None else str(card.rollouts_done)
    updates = "" if card.global_step is None else f" ({card.global_step} policy optimiser steps)"
    weights = "LoRA merged into the base weights" if card.lora_merged else "every weight fine-tuned"
    actions = f" Its actions: {', '.join(card.action_names)}." if card.action_names else ""
    fence = "````" if "```" in card.config_text else "```"
    return f"""{_front_matter(card)}

# Exported with maestro_lit

A causal language model trained with multi-reward GRPO by `maestro_lit` (MAESTRO, arXiv 2601.07208),
{weights}.

| | |
|---|---|
| base model | `{card.base_model}` |
| method (scalariser) | `{card.method}` |
| training steps (rollouts) | {steps}{updates} |
| exported | {card.date} |

## Rewards

| component | class | normalisation |
|---|---|---|
{rewards}

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("PATH_OR_REPO")
tokenizer = AutoTokenizer.from_pretrained("PATH_OR_REPO")
```

The scalariser that weighted the rewards is in `conductor/` (`conductor.json` describes its inputs
and action table).{actions} `maestro_lit.export.load_conductor(PATH)` rebuilds a learned Conductor.

## Training config

The run's `config.yaml`, as the command line composed it:

{fence}yaml
{card.config_text.rstrip()}
{fence}
"""
