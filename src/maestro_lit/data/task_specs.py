"""What each of the paper's seven tasks is: category, how the judge compares, which metrics apply.

Data-driven (one frozen record per task) so the evaluation, the converter and ``compare`` read
the same facts instead of branching on task names.

- ``judging``: ``"reference"`` = the judge checks the answer is consistent with the reference
  answer (reasoning and social tasks); ``"pairwise"`` = the judge compares the output with the
  reference story/translation and prefers one (SS-GEN, OPUS-Books).
- ``metrics``: deterministic metrics beside the judge: ``letter`` (option-letter accuracy on
  multiple-choice items), ``rouge_l``, ``chrf`` and ``bleu``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "tasks"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    title: str  # the paper's column name
    category: str  # reasoning | creative | social | multilingual
    judging: str  # reference | pairwise
    metrics: tuple[str, ...]
    nover_file: str  # NOVER's prepared file name (SS-GEN: converted from its own release)

    @property
    def sample(self) -> Path:
        """The project-written sample in the prepared format (train + test splits)."""
        return ASSET_DIR / f"{self.name}.jsonl"


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("natural_reasoning", "NR", "reasoning", "reference", ("rouge_l",), "nr.csv"),
        TaskSpec("ss_gen", "SS-GEN", "creative", "pairwise", ("rouge_l",), "ss_gen/{dev,test}.jsonl"),
        TaskSpec("webinstruct", "WI", "reasoning", "reference", ("letter", "rouge_l"), "webit.csv"),
        TaskSpec("tombench", "ToMBench", "social", "reference", ("letter",), "tombench.csv"),
        TaskSpec("general_thoughts", "GT", "reasoning", "reference", ("letter", "rouge_l"), "gt.csv"),
        TaskSpec("opus_books", "OPUS", "multilingual", "pairwise", ("chrf", "bleu"), "opus_books_all_pairs.csv"),
        TaskSpec("emobench", "EmoBench", "social", "reference", ("letter",), "emobench.csv"),
    )
}


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]
