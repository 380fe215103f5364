"""Can a testbed tell methods apart? The oracle's lead over static weights in seed standard deviations.

This check runs *before* any comparison: if even the oracle — which knows each
category's true weights — is within a few seed standard deviations of static weights, no
method's difference would mean anything, and the comparison is not worth running.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


@dataclass(frozen=True)
class Resolution:
    oracle: tuple[float, float]
    """Mean and seed std of the oracle's true utility."""
    static: tuple[float, float]
    """Mean and seed std of static (equal) weights."""
    required: float
    """How many seed standard deviations the oracle must lead by."""

    @property
    def margin(self) -> float:
        return self.oracle[0] - self.static[0]

    @property
    def sigmas(self) -> float:
        """Lead / the larger of the two seed stds (inf when both are 0 and the lead is positive)."""
        spread = max(self.oracle[1], self.static[1])
        if spread > 0:
            return self.margin / spread
        return math.inf if self.margin > 0 else 0.0

    @property
    def passed(self) -> bool:
        return self.sigmas >= self.required

    def describe(self) -> str:
        (om, os_), (sm, ss) = self.oracle, self.static
        verdict = "passes" if self.passed else "FAILS"
        return (
            f"oracle {om:.3f} ± {os_:.3f} vs static {sm:.3f} ± {ss:.3f}: lead {self.margin:+.3f} = "
            f"{self.sigmas:.1f} seed std (required ≥ {self.required:g}) — {verdict}"
        )


def resolution(oracle: Sequence[float], static: Sequence[float], required: float = 5.0) -> Resolution:
    """The check on final held-out true utilities, one value per seed for each side."""
    if not oracle or not static:
        raise ValueError("the resolution check needs at least one finished oracle run and one static run")
    return Resolution(mean_std(list(oracle)), mean_std(list(static)), required)


def gap_closure(utility: float, static: float, oracle: float) -> float:
    """(U − U_static) / (U_oracle − U_static): 0 = static weights, 1 = the oracle; NaN without a gap."""
    gap = oracle - static
    return (utility - static) / gap if gap > 0 else math.nan
