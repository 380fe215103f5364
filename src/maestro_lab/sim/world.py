"""The simulated world: prompt categories, discrete response types, observable components, true utility.

A response *type* stands for everything a completion of the language-model loop can differ
in that the rewards see: a length band (short / medium / long) crossed with a style (plain /
structured / padded). Each type has a mean score per observable reward component; a sampled
completion of that type shows those means plus Gaussian noise. The true utility of a type
for a category is that category's weighting of the component means: training never sees it,
except through the trusted labels of the ``trusted`` method.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

COMPONENTS = ("detail", "brevity", "format", "preference")
LENGTHS = {"short": 15.0, "medium": 60.0, "long": 150.0}  # words: the "completion length" of a type
STYLES = ("plain", "structured", "padded")

# True utility weights per category over COMPONENTS (rows sum to 1). Fixed before the first comparison.
TRUE_WEIGHTS = {
    "factoid": (0.2, 0.6, 0.0, 0.2),  # a short, correct answer
    "explain": (0.6, 0.0, 0.1, 0.3),  # depth matters most
    "howto": (0.3, 0.1, 0.6, 0.0),  # steps in a clear format
    "chat": (0.0, 0.4, 0.1, 0.5),  # pleasant and brief
}


@dataclass(frozen=True)
class ResponseType:
    length_band: str
    style: str
    length: float  # words
    redundancy: float  # share of repeated n-grams the type would show (padding loops)


def _response_types() -> list[ResponseType]:
    types = []
    for (band, words), style in itertools.product(LENGTHS.items(), STYLES):
        redundancy = 0.4 if style == "padded" else (0.1 if band == "long" else 0.03)
        types.append(ResponseType(band, style, words, redundancy))
    return types


def _component_means(t: ResponseType) -> tuple[float, ...]:
    """Mean observable scores of one type, in [0, 1]; the shapes echo the project's real rewards."""
    depth = {"short": 0.2, "medium": 0.6, "long": 0.9}[t.length_band]
    detail = min(1.0, depth + (0.1 if t.style == "padded" else 0.0))  # padding fools a shallow detail metric
    brevity = 1.0 - t.length / 160.0
    fmt = {"plain": 0.3, "structured": 0.9, "padded": 0.4}[t.style]
    # a length-biased RM
    preference = 0.3 + 0.3 * t.length / 150.0 + (0.2 if t.style == "structured" else 0.0) - 0.5 * t.redundancy
    return detail, brevity, fmt, preference


@dataclass
class World:
    """Everything fixed about the simulated task; ``embed`` is the stand-in for the LM hidden state."""

    categories: tuple[str, ...]
    components: tuple[str, ...]
    types: list[ResponseType]
    means: torch.Tensor  # [T, K]
    true_weights: torch.Tensor  # [C, K]
    noise: float
    hidden_size: int
    embed_category: torch.Tensor = field(repr=False)  # [C, D]
    embed_type: torch.Tensor = field(repr=False)  # [T, D]

    @property
    def utility(self) -> torch.Tensor:
        """True utility U[c, t] = w_c · means_t (noise-free)."""
        return self.true_weights @ self.means.T

    @property
    def lengths(self) -> torch.Tensor:
        return torch.tensor([t.length for t in self.types])

    @property
    def redundancies(self) -> torch.Tensor:
        return torch.tensor([t.redundancy for t in self.types])

    @property
    def type_names(self) -> list[str]:
        return [f"{t.length_band}/{t.style}" for t in self.types]

    def scores(
        self, types: torch.Tensor, generator: torch.Generator | None = None, categories: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Observed component scores [N, K] of completions of the given types: means plus N(0, noise²).

        ``categories`` (each completion's prompt category) is for worlds whose scores depend on it; unused here."""
        mean = self.means[types]
        return mean + self.noise * torch.randn(mean.shape, generator=generator)

    def hidden(self, categories: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """A fixed random feature embedding of (category, type), as an LM's final hidden state carries both."""
        return self.embed_category[categories] + self.embed_type[types]


def build_world(noise: float = 0.25, hidden_size: int = 32, embed_seed: int = 1234) -> World:
    """The default world. The embedding seed is fixed: it is part of the world, not of a run."""
    types = _response_types()
    g = torch.Generator().manual_seed(embed_seed)
    return World(
        categories=tuple(TRUE_WEIGHTS),
        components=COMPONENTS,
        types=types,
        means=torch.tensor([_component_means(t) for t in types]),
        true_weights=torch.tensor(list(TRUE_WEIGHTS.values())),
        noise=noise,
        hidden_size=hidden_size,
        embed_category=torch.randn(len(TRUE_WEIGHTS), hidden_size, generator=g),
        embed_type=torch.randn(len(types), hidden_size, generator=g),
    )


@dataclass
class StaticCheck:
    """The no-training separation check: the best single weighting vs the per-category optimum."""

    best_static_weights: tuple[float, ...]
    best_static_utility: float
    oracle_utility: float
    best_type_per_category: dict[str, str]


def static_check(world: World, grid: int = 10) -> StaticCheck:
    """Every static weighting w makes one type the best for all categories (argmax_t w·means_t);
    the best of those on a simplex grid is compared with each category's own best type."""
    u = world.utility
    k = len(world.components)
    best_w, best_u = None, -float("inf")
    for counts in itertools.product(range(grid + 1), repeat=k):
        if sum(counts) != grid:
            continue
        w = torch.tensor(counts, dtype=torch.float32) / grid
        t = int((world.means @ w).argmax())
        value = float(u[:, t].mean())
        if value > best_u:
            best_w, best_u = tuple(float(x) for x in w), value
    names = world.type_names
    return StaticCheck(
        best_static_weights=best_w,
        best_static_utility=best_u,
        oracle_utility=float(u.max(dim=1).values.mean()),
        best_type_per_category={c: names[int(u[i].argmax())] for i, c in enumerate(world.categories)},
    )
