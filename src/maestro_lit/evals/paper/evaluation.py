"""``PaperTaskEvaluation``: the evaluation callback of one of the paper's seven tasks.

Why its own class: every task config would otherwise repeat the same nested
``BenchmarkCallback → PaperTask → judge`` block and differ only in the task name. This
callback is that block with the task's defaults (the shipped sample, the ``test`` split,
the offline proxy judge); a task file names the task and whatever differs.
"""

from __future__ import annotations

from typing import Optional

from maestro_lit.evals.callback import BenchmarkCallback
from maestro_lit.evals.judges.votes import FALSE_ACCEPT_WARN, VoteJudge
from maestro_lit.evals.paper.benchmark import PaperTask


class PaperTaskEvaluation(BenchmarkCallback):
    """Greedy answers on ``task``'s ``split``, scored by the deterministic metrics and ``judge``.

    Args:
        task: one of the seven task names (``maestro_lit.data.task_specs.TASKS``).
        path / hub_id / hub_config: the prepared data; default the shipped sample.
        split: the split to evaluate (the paper reports ``test``).
        judge: a ``VoteJudge``; default the offline ``ProxyVoteJudge`` (metric names say ``proxy``).
        limit: evaluate only the first ``limit`` items (a configured sample).
        max_new_tokens: answer budget; 128 suits the tiny CPU demo, use 1024+ on a GPU.
        every_n_train_steps: also evaluate during fit every N rollouts (default: at fit end only).
        control_share / min_controls / control_seed / false_accept_warn: the judge's negative control
            on reference-judged tasks, ``bench/<task>/judge_false_accept`` (see ``PaperTask``).
    """

    def __init__(
        self,
        task: str,
        path: Optional[str] = None,
        split: str = "test",
        judge: Optional[VoteJudge] = None,
        hub_id: Optional[str] = None,
        hub_config: Optional[str] = None,
        limit: Optional[int] = None,
        max_new_tokens: int = 128,
        every_n_train_steps: Optional[int] = None,
        output_dir: Optional[str] = None,
        progress_bar: bool = True,
        control_share: float = 0.2,
        min_controls: int = 5,
        control_seed: int = 0,
        false_accept_warn: float = FALSE_ACCEPT_WARN,
    ) -> None:
        benchmark = PaperTask(
            task,
            path=path,
            split=split,
            judge=judge,
            hub_id=hub_id,
            hub_config=hub_config,
            limit=limit,
            control_share=control_share,
            min_controls=min_controls,
            control_seed=control_seed,
            false_accept_warn=false_accept_warn,
        )
        super().__init__(
            [benchmark],
            every_n_train_steps=every_n_train_steps,
            max_new_tokens=max_new_tokens,
            output_dir=output_dir,
            progress_bar=progress_bar,
        )

    @property
    def state_key(self) -> str:
        # One instance per task may sit in one trainer (e.g. several task files composed).
        return f"PaperTaskEvaluation[{self.benchmarks[0].name}]"
