"""The Experiments page's verdict in words, from the figures of an experiment."""

from __future__ import annotations

from clickthru.dashboard.verdict import verdict, views_needed
from clickthru.reports import Experiment, VariantFigures
from clickthru.reports.stats import two_proportion_p, wilson


def variant(
    name: str, views: int, clicks: int, orders: int = 0, control: int = 0
) -> VariantFigures:
    low, high = wilson(clicks, views) or (None, None)
    return VariantFigures(
        variant=name, views=views, clicks=clicks, ctr=clicks / views, ctr_low=low, ctr_high=high,
        ctr_p_value=None if name == "A" else two_proportion_p(clicks, views, control, 1000),
        conversions=orders, conversion_rate=orders / views, conversion_p_value=None,
        revenue={}, revenue_per_1000_views={},
    )  # fmt: skip


def experiment(*variants: VariantFigures) -> Experiment:
    return Experiment(
        sites=["shop"], since=0, until=1, bots=False, control="A", variants=list(variants),
        counted_until=0, uncounted_events=0,
    )  # fmt: skip


def test_a_clear_lead_is_said_to_be_enough_to_tell() -> None:
    said = verdict(experiment(variant("A", 1000, 40), variant("B", 1000, 80, control=40)))
    assert "variant B is ahead, 8.00% against 4.00%, and the data is enough to tell" in said[1]


def test_a_small_lead_asks_for_more_data_and_says_how_much() -> None:
    said = verdict(experiment(variant("A", 1000, 40), variant("B", 1000, 45, control=40)))
    assert "could still be chance" in said[1] and "not enough data yet" in said[1]
    assert f"about {views_needed(0.045, 0.04):,} views of each" in said[1]


def test_without_variants_it_says_how_to_start_one() -> None:
    assert "No variants were served" in verdict(experiment())[0]


def test_views_needed_is_the_usual_sample_size() -> None:
    # 10 % against 12 %: the textbook figure is about 3,840 per arm.
    assert 3_800 < (views_needed(0.10, 0.12) or 0) < 3_900
