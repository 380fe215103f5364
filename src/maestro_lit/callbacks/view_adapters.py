"""One adapter per kind of logger: shows the views through that logger's native table, image and histogram.

Why adapters: Lightning's ``Logger`` interface carries scalars and hyperparameters only; tables,
images and histograms are each logger's own API. ``LoggerViews`` gives each of the trainer's loggers
the first adapter that ``serves`` it (the adapters come from the config, ``views.adapters``, so a
logger the project does not know is one ``class_path`` away) and shows only the views the adapter
lists in ``shows``; it warns once for what a logger cannot show.

- TensorBoard: the table as markdown (TEXT), the figure (IMAGES), histograms, the custom-scalars layout.
- Weights & Biases: a ``wandb.Table``, a ``wandb.Image``, a ``wandb.Histogram``.
- MLflow: the table and the figure as run artifacts (``samples/completions/step_NNNNNN.json`` in the
  ``{"columns", "data"}`` form MLflow's own tables use, ``conductor/actions_by_category/step_NNNNNN.png``);
  MLflow has no histograms.

An adapter holds no state: every method gets the Lightning logger it writes through.
"""

from __future__ import annotations

from typing import Any

import torch

from maestro_lit.callbacks.view_content import markdown_table

TABLE, FIGURE, HISTOGRAM, LAYOUT = "completion table", "action figure", "histograms", "scalar layout"
VIEWS = (TABLE, FIGURE, HISTOGRAM)
"""The views every logger is expected to show; the layout is TensorBoard's own and never missed elsewhere."""


class ViewAdapter:
    """Shows views through one kind of Lightning logger; ``shows`` names the views it can show."""

    shows: tuple[str, ...] = ()

    def serves(self, logger: Any) -> bool:
        """Whether this adapter writes through ``logger``."""
        raise NotImplementedError

    def table(self, logger: Any, key: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        raise NotImplementedError

    def figure(self, logger: Any, key: str, figure: Any, step: int) -> None:
        raise NotImplementedError

    def histogram(self, logger: Any, key: str, values: torch.Tensor, step: int) -> None:
        raise NotImplementedError

    def layout(self, logger: Any, layout: dict[str, dict[str, list]]) -> None:
        raise NotImplementedError

    def flush(self, logger: Any) -> None:
        """Make what was shown durable (a no-op where the logger writes at once)."""


class TensorBoardAdapter(ViewAdapter):
    shows = (TABLE, FIGURE, HISTOGRAM, LAYOUT)

    def serves(self, logger: Any) -> bool:
        from lightning.pytorch.loggers import TensorBoardLogger

        return isinstance(logger, TensorBoardLogger)

    def table(self, logger: Any, key: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        logger.experiment.add_text(key, markdown_table(columns, rows), global_step=step)

    def figure(self, logger: Any, key: str, figure: Any, step: int) -> None:
        logger.experiment.add_figure(key, figure, step, close=True)

    def histogram(self, logger: Any, key: str, values: torch.Tensor, step: int) -> None:
        logger.experiment.add_histogram(key, values, step)

    def layout(self, logger: Any, layout: dict[str, dict[str, list]]) -> None:
        logger.experiment.add_custom_scalars(layout)

    def flush(self, logger: Any) -> None:
        logger.experiment.flush()


def figure_pixels(figure: Any):
    """RGBA pixels of a matplotlib figure (drawn with Agg, no pyplot), as a numpy array."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


class WandbAdapter(ViewAdapter):
    shows = (TABLE, FIGURE, HISTOGRAM)

    def serves(self, logger: Any) -> bool:
        from lightning.pytorch.loggers import WandbLogger

        return isinstance(logger, WandbLogger)

    def table(self, logger: Any, key: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        logger.log_table(key, columns=columns, data=rows, step=step)

    def figure(self, logger: Any, key: str, figure: Any, step: int) -> None:
        logger.log_image(key, [figure_pixels(figure)], step=step)

    def histogram(self, logger: Any, key: str, values: torch.Tensor, step: int) -> None:
        import wandb

        logger.log_metrics({key: wandb.Histogram(values.numpy())}, step=step)


class MLflowAdapter(ViewAdapter):
    shows = (TABLE, FIGURE)

    def serves(self, logger: Any) -> bool:
        from lightning.pytorch.loggers import MLFlowLogger

        return isinstance(logger, MLFlowLogger)

    def table(self, logger: Any, key: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        table = {"columns": columns, "data": rows}
        logger.experiment.log_dict(logger.run_id, table, f"{key}/step_{step:06d}.json")

    def figure(self, logger: Any, key: str, figure: Any, step: int) -> None:
        logger.experiment.log_figure(logger.run_id, figure, f"{key}/step_{step:06d}.png")


def default_adapters() -> list[ViewAdapter]:
    """The loggers the project knows: TensorBoard, Weights & Biases, MLflow."""
    return [TensorBoardAdapter(), WandbAdapter(), MLflowAdapter()]


def adapter_for(logger: Any, adapters: list[ViewAdapter]) -> ViewAdapter | None:
    """The first adapter that serves ``logger``, or ``None``."""
    return next((adapter for adapter in adapters if adapter.serves(logger)), None)
