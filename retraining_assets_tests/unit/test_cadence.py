"""Any regular cadence: periods, batch ids that sort in time, the schedule's ticks, bad values."""

from __future__ import annotations

import pandas as pd
import pytest

from retraining_assets.core.batches import batch_period
from retraining_assets.core.cadence import CadenceError, batch_start, parse_cadence

STAMPS = pd.Series(
    pd.to_datetime(
        ["2024-01-07 23:59", "2024-01-08 05:30", "2024-05-17 23:59", None, "1969-12-31 13:00"]
    )
)


@pytest.mark.parametrize(
    ("frequency", "ids"),
    [
        ("hourly", ["2024-01-07T2300", "2024-01-08T0500", "2024-05-17T2300", "1969-12-31T1300"]),
        ("6h", ["2024-01-07T1800", "2024-01-08T0000", "2024-05-17T1800", "1969-12-31T1200"]),
        ("daily", ["2024-01-07", "2024-01-08", "2024-05-17", "1969-12-31"]),
        ("weekly", ["2024-01-01", "2024-01-08", "2024-05-13", "1969-12-29"]),
        # Fortnights counted from Monday 1970-01-05, however they are written.
        ("2W", ["2023-12-25", "2024-01-08", "2024-05-13", "1969-12-22"]),
        ("14D", ["2023-12-25", "2024-01-08", "2024-05-13", "1969-12-22"]),
        ("2 weeks", ["2023-12-25", "2024-01-08", "2024-05-13", "1969-12-22"]),
        ("W-WED", ["2024-01-04", "2024-01-04", "2024-05-16", "1969-12-25"]),
        ("monthly", ["2024-01-01", "2024-01-01", "2024-05-01", "1969-12-01"]),
        ("QS", ["2024-01-01", "2024-01-01", "2024-04-01", "1969-10-01"]),
        ("quarterly", ["2024-01-01", "2024-01-01", "2024-04-01", "1969-10-01"]),
        ("QS-FEB", ["2023-11-01", "2023-11-01", "2024-05-01", "1969-11-01"]),
        ("YS", ["2024-01-01", "2024-01-01", "2024-01-01", "1969-01-01"]),
        ("yearly", ["2024-01-01", "2024-01-01", "2024-01-01", "1969-01-01"]),
        ("YE-JUN", ["2023-07-01", "2023-07-01", "2023-07-01", "1969-07-01"]),
    ],
)
def test_periods_and_ids(frequency: str, ids: list[str]) -> None:
    cadence = parse_cadence(frequency)
    starts = cadence.floor(STAMPS)
    assert pd.isna(starts.iloc[3])
    got = [cadence.batch_id(s) for s in starts.drop(index=3)]
    assert got == ids
    for stamp, start, batch_id in zip(STAMPS.drop(index=3), starts.drop(index=3), got, strict=True):
        # Each timestamp lies in [start, next start); the id names the start exactly.
        assert start <= stamp < cadence.next(start)
        assert batch_start(batch_id) == start
        assert batch_period(batch_id, None, frequency) == (start, cadence.next(start))


def test_ids_sort_in_time() -> None:
    stamps = pd.Series(pd.date_range("1999-12-30", periods=400, freq="7h"))
    for frequency in ("hourly", "6h", "daily", "2W", "monthly", "QS", "yearly"):
        cadence = parse_cadence(frequency)
        starts = cadence.floor(stamps).drop_duplicates()
        ids = [cadence.batch_id(s) for s in starts]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_schedule_opens_one_tick_per_period() -> None:
    from dagster._utils.schedules import cron_string_iterator

    span = (pd.Timestamp("2023-12-20").timestamp(), pd.Timestamp("2026-01-10").timestamp())
    expected = {"monthly": 25, "QS": 9, "yearly": 3, "2W": 54, "weekly": 107, "6h": 3009}
    for frequency, count in expected.items():
        cadence = parse_cadence(frequency)
        opening = ticks = 0
        for tick in cron_string_iterator(span[0], cadence.cron(), "UTC"):
            if tick.timestamp() > span[1]:
                break
            opening += cadence.opens_period(pd.Timestamp(tick.timestamp(), unit="s"))
            ticks += 1
        assert opening == count, frequency
        # An exact cron opens a period at every tick; 2W ticks weekly and skips every other.
        assert cadence.cron_is_exact == (ticks == count), frequency


@pytest.mark.parametrize(
    "bad", ["fortnightly", "B", "BMS", "0D", "10s", "3 lunar months", "W-JAN", "QS-MON", "", 7]
)
def test_bad_values_list_the_accepted_forms(bad: object) -> None:
    with pytest.raises(CadenceError, match=r"hourly, daily, weekly, monthly, quarterly, yearly"):
        parse_cadence(bad)


def test_named_forms_are_case_insensitive_but_aliases_are_not() -> None:
    assert parse_cadence(" Yearly ").text == "yearly"
    # pandas: MS is month start, ms milliseconds (refused: below a minute).
    assert parse_cadence("MS").months == 1
    with pytest.raises(CadenceError, match="unknown cadence 'ms'"):
        parse_cadence("ms")
