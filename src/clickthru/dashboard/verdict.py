"""What an experiment says, in words: which variant is ahead of the control, on CTR and on
conversion rate, and whether the data is enough to tell yet.

A difference counts as shown when its two-sided p-value is under 0.05. When it is not, the
verdict says roughly how many views each variant would need for a difference of the size
seen to show, 8 times in 10 (the usual sample size of a two-proportion test)."""

from __future__ import annotations

import math
from typing import Final

from clickthru.reports import Experiment, VariantFigures

SIGNIFICANT: Final = 0.05
Z_ALPHA: Final = 1.959963984540054  # two-sided, 5 %
Z_POWER: Final = 0.8416212335729143  # 80 % power


def views_needed(rate_a: float, rate_b: float) -> int | None:
    """Views per variant for a difference of this size to show at 5 % with 80 % power."""
    if rate_a == rate_b:
        return None
    spread = rate_a * (1 - rate_a) + rate_b * (1 - rate_b)
    return math.ceil((Z_ALPHA + Z_POWER) ** 2 * spread / (rate_a - rate_b) ** 2)


def _name(variant: str) -> str:
    return f"variant {variant}" if variant else "links without a variant"


def _compare(
    what: str,
    variant: VariantFigures,
    control: VariantFigures,
    rate: float | None,
    base: float | None,
    p: float | None,
) -> str:
    name, base_name = _name(variant.variant), _name(control.variant)
    if rate is None or base is None:
        return f"{what}: {name} or {base_name} has no views yet."
    if p is None:
        return f"{what}: {name} and {base_name} cannot be told apart yet: every view alike."
    ahead = name if rate > base else base_name
    said = f"{what}: {ahead} is ahead, {max(rate, base):.2%} against {min(rate, base):.2%}"
    if p < SIGNIFICANT:
        return f"{said}, and the data is enough to tell (p = {p:.3f})."
    needed = views_needed(rate, base)
    more = f"; about {needed:,} views of each would show a difference this size" if needed else ""
    return f"{said}, but it could still be chance (p = {p:.2f}): not enough data yet{more}."


def verdict(experiment: Experiment) -> list[str]:
    """Sentences for the Experiments page, one per finding."""
    variants = {variant.variant: variant for variant in experiment.variants}
    named = [name for name in variants if name]
    if not named:
        return [
            "No variants were served in this range. Sign the tokens of each arm with its"
            ' variant (tokens.mint(..., variant="B"), or clickthru token --variant B).'
        ]
    control = variants.get(experiment.control)
    if control is None or len(variants) < 2:
        return [f"Only {_name(named[0])} was served in this range: there is nothing to compare."]
    said = [f"Each variant is compared with the control, {_name(control.variant)}."]
    for name, variant in variants.items():
        if name == experiment.control:
            continue
        said.append(
            _compare("Click-through rate", variant, control, variant.ctr, control.ctr,
                     variant.ctr_p_value)
        )  # fmt: skip
        if variant.conversions or control.conversions:
            said.append(
                _compare("Conversion rate", variant, control, variant.conversion_rate,
                         control.conversion_rate, variant.conversion_p_value)
            )  # fmt: skip
    return said
