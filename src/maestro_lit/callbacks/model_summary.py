"""``ParameterSummary``: Lightning's model summary at fit start, without FLOPs that were never measured.

Why: Lightning counts FLOPs only for a module with an ``example_input_array``; a policy that generates has none,
so its summary shows a FLOPs column of zeros and "Total FLOPs: 0", which reads as a measurement. When FLOPs were
counted (non-zero) Lightning's own table is shown unchanged.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count

FLOPS_COLUMN = "FLOPs"


class ParameterSummary(RichModelSummary):
    """The summary table (name, type, parameters, mode) and one line of parameter counts."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        if total_flops:
            RichModelSummary.summarize(
                summary_data,
                total_parameters,
                trainable_parameters,
                model_size,
                total_training_modes,
                total_flops,
                **summarize_kwargs,
            )
            return
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != FLOPS_COLUMN]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            table.add_column(name, justify="right" if name == "Params" else "left")
        for row in zip(*(values for _, values in columns)):
            table.add_row(*(str(value) for value in row))
        console = get_console()
        console.print(table)
        console.print(
            f"Trainable parameters: {get_human_readable_count(int(trainable_parameters))} of "
            f"{get_human_readable_count(int(total_parameters))} ({model_size:.1f} MB)"
        )
