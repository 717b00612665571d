"""The statistics of the experiment report: Wilson score intervals for a rate, and the
two-proportion z-test of a variant against the control. Closed forms; the tests check
them against scipy."""

from __future__ import annotations

import math
from typing import Final

Z95: Final = 1.959963984540054  # the standard normal's 97.5th percentile


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The 95 % Wilson score interval of ``successes / trials``; None without trials, or
    with more successes than trials (clicks on links whose view was never reported)."""
    if trials <= 0 or not 0 <= successes <= trials:
        return None
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> float | None:
    """The two-sided p-value of the pooled two-proportion z-test of a against b; None when
    it is undefined (no trials on a side, more successes than trials, or no variance:
    every trial alike)."""
    if trials_a <= 0 or trials_b <= 0:
        return None
    if not (0 <= successes_a <= trials_a and 0 <= successes_b <= trials_b):
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:
        return None
    z = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))
