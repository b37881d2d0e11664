"""The loadtest's memory-growth figures (``loadtest.stats.rss_growth``)."""

from __future__ import annotations

from loadtest.monitor import Sample
from loadtest.stats import MB, rss_growth


def sample(t: float, rss_mb: float | None) -> Sample:
    return Sample(t, 50.0, None if rss_mb is None else int(rss_mb * MB), 10.0, 0)


def test_growth_in_all_and_its_rate_over_the_second_half() -> None:
    window = [sample(t, 100 + (t if t < 30 else 30 + (t - 30) / 6)) for t in range(61)]
    growth = rss_growth(window)
    assert growth == {"rss_mb_growth": 35.0, "rss_mb_per_min_second_half": 10.0}


def test_a_flat_working_set_has_no_growth_rate_and_missing_samples_are_skipped() -> None:
    window = [sample(t, None if t % 7 == 0 else 80.0) for t in range(20)]
    assert rss_growth(window) == {"rss_mb_growth": 0.0, "rss_mb_per_min_second_half": 0.0}


def test_too_few_samples_give_no_figures() -> None:
    assert rss_growth([sample(0, 10.0)]) == {
        "rss_mb_growth": None,
        "rss_mb_per_min_second_half": None,
    }
