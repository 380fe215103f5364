"""One figure: learning curves with seed bands, and the mean weights per category of each method."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from maestro_lab.sim.compare import mean_weights  # noqa: E402
from maestro_lab.sim.loop import RunResult  # noqa: E402
from maestro_lab.sim.world import World  # noqa: E402


def plot(results: dict[str, list[RunResult]], world: World, path: Path) -> None:
    n = len(results)
    fig = plt.figure(figsize=(4 + 2.2 * n, 7))
    grid = fig.add_gridspec(2, n)
    ax = fig.add_subplot(grid[0, :])
    for name, runs in results.items():
        steps = runs[0].curve_steps
        u = torch.tensor([r.curve_utility for r in runs])
        mean, std = u.mean(0), u.std(0) if len(runs) > 1 else torch.zeros(len(steps))
        ax.plot(steps, mean, label=name)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("true utility (mean ± std over seeds)")
    ax.legend(loc="lower right", fontsize=8, ncol=2)
    for j, (name, runs) in enumerate(results.items()):
        axw = fig.add_subplot(grid[1, j])
        axw.imshow(mean_weights(runs).numpy(), vmin=0, vmax=1, cmap="viridis")
        axw.set_title(name, fontsize=9)
        axw.set_xticks(range(len(world.components)), world.components, rotation=60, fontsize=7)
        axw.set_yticks(range(len(world.categories)), world.categories if j == 0 else [], fontsize=7)
    fig.suptitle("Simulator: learning curves; mean weights per category (last quarter)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
