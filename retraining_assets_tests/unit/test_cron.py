"""The replay's cron ticks (core/cron.py) match Dagster's own schedule iterator."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from retraining_assets.core.cron import cron_ticks

CRONS = [
    "0 3 * * 1",
    "0 3 1 * *",
    "0 3 1 1,4,7,10 *",
    "0 3 1 1 *",
    "*/30 */6 * * *",
    "15 2 1-7 * MON",
    "0 0 * * 7",
    "0 12 */10 FEB-MAR *",
    "@weekly",
]


@pytest.mark.parametrize("cron", CRONS)
def test_cron_ticks_match_dagster(cron: str) -> None:
    # Dagster's iterator is private: used only here, as the reference.
    from dagster._utils.schedules import cron_string_iterator

    after = dt.datetime(2023, 12, 30, 5, 0, tzinfo=dt.UTC)
    until = dt.datetime(2024, 4, 2, 3, 0, tzinfo=dt.UTC)
    expected = list(
        itertools.takewhile(
            lambda t: t <= until, cron_string_iterator(after.timestamp(), cron, "UTC")
        )
    )
    expected = [t for t in expected if t > after]
    assert [t.timestamp() for t in cron_ticks(cron, after, until)] == [
        t.timestamp() for t in expected
    ]


def test_bad_cron_is_refused() -> None:
    with pytest.raises(ValueError):
        list(cron_ticks("0 3 * *", dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1)))
    with pytest.raises(ValueError):
        list(cron_ticks("0 25 * * *", dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1)))
