"""Prompt data: JSONL, Parquet or an HF dataset id, streamed row by row.

Every row needs a ``prompt``: a string, or TRL's conversational form, a list of ``{role, content}`` messages
(``data.messages``; one form per file); ``category``, ``reference`` and any other columns
ride along and reach the reward components as keyword columns. Files are read lazily
(an IterableDataset with a shuffle buffer), so a prompt set larger than memory is fine; at setup each
local file is read once to its end, one row at a time, so that a bad row fails before training
(``data.check_files``). A column may not be named like a keyword the trainer passes reward
components itself (``RESERVED_COLUMNS``: ``completions``, ``prompts``, ``trainer_state``, …).
Rows are sharded across distributed ranks and dataloader workers so that no two
processes see the same prompt in one epoch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from maestro_lit.data.messages import is_conversation, prompt_problem, wrap_last_user_turn
from maestro_lit.data.prepared import in_split, is_local, raw_rows, tag_task
from maestro_lit.data.task_specs import task_spec
from maestro_lit.data.templates import question_prompt
from maestro_lit.paths import TRAIN_PROMPTS, VAL_PROMPTS

PromptTemplate = Literal["nover"] | None
POSITION_KEY = "_stream_position"  # (epoch, rows consumed) after a batch: the resume point
RESERVED_COLUMNS = frozenset(
    {
        "prompts",
        "completions",
        "completion_ids",
        "trainer_state",
        "group_size",
        "completion_mask",
        "logprobs",
        "ref_logprobs",
        "token_entropy",
        "prompt_ids",
        "prompt_mask",
        "tokenizer",
        "reference_nll",
        "earlier_scores",
        "prompt_messages",
        "completion_messages",
        POSITION_KEY,
    }
)
"""Names a data column cannot have: the keywords the trainer passes reward components itself (the fields of
``rewards.base.RewardInputs``; a test keeps the two in step) and the stream's position tag."""


class DataFileError(ValueError):
    """A prompt file is missing, unreadable or holds a bad row; the message names file and line."""


class _FormCheck:
    """One prompt form per file: a file whose rows mix strings and message lists names the first row that
    differs (a reward function would otherwise see the shape of its inputs change from batch to batch)."""

    def __init__(self) -> None:
        self.first: tuple[str, bool] | None = None  # (location, is a conversation) of the first row

    def __call__(self, location: str, row: dict[str, Any]) -> None:
        _check_row(location, row)
        conversation = is_conversation(row["prompt"])
        if self.first is None:
            self.first = (location, conversation)
        elif self.first[1] != conversation:
            forms = ("a plain string", "a list of messages")
            raise DataFileError(
                f"{location}: 'prompt' is {forms[conversation]}, but the first row ({self.first[0]}) holds "
                f"{forms[not conversation]}; use one form per file"
            )


def _check_row(location: str, row: dict[str, Any]) -> None:
    prompt = row.get("prompt")
    if prompt is None:
        raise DataFileError(f"{location}: row has no 'prompt' field (fields: {sorted(map(str, row))})")
    problem = prompt_problem(prompt)
    if problem:
        raise DataFileError(f"{location}: {problem}")
    clash = sorted(RESERVED_COLUMNS.intersection(row))
    if clash:
        raise DataFileError(
            f"{location}: column {clash[0]!r} has the name of a keyword the trainer passes reward components "
            "itself (as TRL does); rename the column"
        )


def iter_rows(source: str, split: str = "train", task: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, row)`` of ``split`` with location ``file:line`` for error messages; rows are validated.

    CSV/JSONL/Parquet files or hub ids, split selection and ``task`` tagging: ``maestro_lit.data.prepared``.
    """
    rows = (item for item in raw_rows(source, split, error=DataFileError) if in_split(item[1], split))
    empty, check = True, _FormCheck()
    for number, row in rows:
        location = f"{source}:{number}"
        check(location, row)
        empty = False
        yield location, tag_task(row, task)
    if empty:
        raise DataFileError(f"prompt source {source} holds no rows")


def check_source(source: str, splits: Sequence[str], whole: bool = True) -> None:
    """Fail before training, naming the file and line, when a prompt source holds a bad row or no row of a split.

    ``whole``: a local file is read once to its end, one row in memory at a time (a streaming pass, not a load),
    checking every row of ``splits``; otherwise (and always for a hub dataset, which a pass would download) only
    the first row of each split is read.
    """
    if not whole or not is_local(source):
        for split in splits:
            next(iter_rows(source, split))
        return
    seen: set[str] = set()
    check = _FormCheck()
    for number, row in raw_rows(source, splits[0], error=DataFileError):
        wanted = [split for split in splits if in_split(row, split)]
        if wanted:
            check(f"{source}:{number}", row)
            seen.update(wanted)
    for split in splits:
        if split not in seen:
            raise DataFileError(f"prompt source {source} holds no rows of split {split!r}")


class PromptStream(IterableDataset):
    """Streams rows of one source; shards by (rank, worker); shuffles within a buffer per epoch."""

    def __init__(
        self, source: str, split: str = "train", shuffle: bool = False, buffer_size: int = 1024, seed: int = 0
    ) -> None:
        self.source, self.split, self.shuffle, self.buffer_size, self.seed = source, split, shuffle, buffer_size, seed
        self.epoch = 0
        self.task: str | None = None  # tags rows with task/category (set by the DataModule)
        self.prompt_template: PromptTemplate = None  # wraps each prompt (set by the DataModule)
        self.skip_rows = 0  # rows of ``epoch`` already consumed before a resume

    def resume_at(self, epoch: int, rows: int) -> None:
        """Continue a run: the next pass replays ``epoch``'s order and skips ``rows`` rows."""
        self.epoch, self.skip_rows = epoch, rows

    def _shard(self) -> tuple[int, int]:
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return rank * workers + worker, world * workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Rows of this shard, each tagged with its (epoch, ordinal) position for resuming."""
        epoch, skip = self.epoch, self.skip_rows
        self.epoch, self.skip_rows = epoch + 1, 0
        for ordinal, row in enumerate(self._rows(epoch)):
            if ordinal >= skip:
                yield {**row, POSITION_KEY: (epoch, ordinal + 1)}

    def _rows(self, epoch: int) -> Iterator[dict[str, Any]]:
        index, count = self._shard()
        rng = random.Random(self.seed * 100_003 + epoch)
        buffer: list[dict[str, Any]] = []
        for i, (_, row) in enumerate(iter_rows(self.source, self.split, self.task)):
            if i % count != index:
                continue
            if self.prompt_template == "nover":
                row = {**row, "prompt": wrap_last_user_turn(row["prompt"], question_prompt)}
            if not self.shuffle:
                yield row
                continue
            buffer.append(row)
            if len(buffer) >= self.buffer_size:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer


def collate_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """List of rows → dict of columns; a column missing from some rows is None there.

    The stream's position tags collapse to the position after the batch's last row.
    """
    positions = [row[POSITION_KEY] for row in rows if POSITION_KEY in row]
    keys = list(dict.fromkeys(k for row in rows for k in row if k != POSITION_KEY))
    batch: dict[str, Any] = {k: [row.get(k) for row in rows] for k in keys}
    if positions:
        batch[POSITION_KEY] = positions[-1]
    return batch


class PromptDataModule(L.LightningDataModule):
    """Batches of ``batch_size`` prompts; each prompt is expanded to G completions by the module.

    ``train_path``/``val_path`` default to the prompt set shipped with the package (with ``task``
    set: that task's shipped sample). A file in
    NOVER's prepared format (``prompt, reference, split``) serves both: ``train_split`` and
    ``val_split`` pick its rows; ``task`` names the task in each row's ``task``/``category``.
    ``prompt_template: nover`` wraps plain questions (a conversation's last user turn) in NOVER's training
    template (the ``<think>…</think><answer>…</answer>`` instruction); prepared files already carry it.
    ``check_files`` (default true): at setup, before the first step, read each local data file once to its end
    (streamed, one row in memory at a time) so that a bad row deep in the file fails then, naming file and line,
    not hours into the run; false reads only the first row (for files so large that one pass takes too long).
    Hub datasets are always checked by their first row only.
    """

    def __init__(
        self,
        train_path: str | None = None,
        val_path: str | None = None,
        batch_size: int = 4,
        val_batch_size: int = 16,
        train_split: str = "train",
        val_split: str = "validation",
        shuffle_buffer: int = 1024,
        seed: int = 0,
        num_workers: int = 0,
        task: str | None = None,
        prompt_template: PromptTemplate = None,
        check_files: bool = True,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        sample = str(task_spec(task).sample) if task else None  # a paper task's shipped sample
        self.train_path = train_path or sample or str(TRAIN_PROMPTS)
        self.val_path = val_path or sample or str(VAL_PROMPTS)
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.train_split, self.val_split = train_split, val_split
        self.shuffle_buffer, self.seed, self.num_workers = shuffle_buffer, seed, num_workers
        self.task, self.prompt_template, self.check_files = task, prompt_template, check_files
        self.position: tuple[int, int] | None = None  # (epoch, rows) after the last trained batch

    def setup(self, stage: str | None = None) -> None:
        # Fail at start-up, naming the file and line, rather than mid-run (``check_files``).
        splits: dict[str, list[str]] = {}
        for source, split in ((self.train_path, self.train_split), (self.val_path, self.val_split)):
            splits.setdefault(source, []).append(split)
        for source, wanted in splits.items():
            check_source(source, wanted, whole=self.check_files)
        self.train_stream = PromptStream(
            self.train_path, self.train_split, shuffle=True, buffer_size=self.shuffle_buffer, seed=self.seed
        )
        self.val_stream = PromptStream(self.val_path, self.val_split)
        for stream in (self.train_stream, self.val_stream):
            stream.task, stream.prompt_template = self.task, self.prompt_template

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Strip the stream position from every batch; remember it for the batch about to be trained.

        Lightning calls this for the batch the training step receives next (not the prefetched
        one), so a checkpoint saved after that step resumes right after it.
        """
        position = batch.pop(POSITION_KEY, None) if isinstance(batch, dict) else None
        if position is not None and self.trainer is not None and self.trainer.training:
            self.position = position
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The data position of the last *trained* batch (not the prefetched one)."""
        return {"epoch": self.position[0], "rows": self.position[1]} if self.position else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            if self.num_workers:
                raise ValueError(
                    "exact data resume needs data.num_workers=0 (worker processes keep their own stream state)"
                )
            self.position = (int(state["epoch"]), int(state["rows"]))
            self.train_stream.resume_at(*self.position)

    def _loader(self, stream: PromptStream, batch_size: int) -> DataLoader:
        # A private generator: creating a DataLoader iterator draws a seed, and drawing it from
        # the global RNG would shift the sampling stream of a resumed run by one draw.
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            stream, batch_size=batch_size, collate_fn=collate_columns, num_workers=self.num_workers, generator=generator
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_stream, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_stream, self.val_batch_size)
