"""Dataset schemas: the columns of a batch, what the model sees and what it predicts.

Plain data, no I/O. ``settings`` re-exports them; the DVC stage that builds the demo batches
depends on this file (not on the policy settings), so only a schema change rebuilds the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetSchema:
    """Columns of a batch: what the model sees, what it predicts, and how rows are ordered in time.

    Attributes:
        timestamp: Column holding each row's event time (naive local datetime).
        target: Binary 0/1 label column.
        numeric_features: Features used as numbers.
        categorical_features: Features used as LightGBM categories.
        id_column: Optional unique row id (kept, never used as a feature).
        numeric_ranges: Optional inclusive (min, max) bounds per numeric feature, validated.
        required_non_null: Features that must never be missing (the rest may be, LightGBM copes).
        min_rows: Smallest batch worth validating and training on.
    """

    timestamp: str
    target: str
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    id_column: str | None = None
    numeric_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    required_non_null: tuple[str, ...] = ()
    min_rows: int = 100

    @property
    def features(self) -> list[str]:
        """All model features, numeric first, in a stable order."""
        return [*self.numeric_features, *self.categorical_features]

    @property
    def columns(self) -> list[str]:
        """Every column a batch must have."""
        cols = [self.timestamp, *self.features, self.target]
        if self.id_column:
            cols.insert(0, self.id_column)
        return cols


#: NYC flights 2013: predict an arrival delay of 15 minutes or more from what is known before
#: departure (schedule, route, carrier, weather at the origin in the scheduled hour).
FLIGHTS_SCHEMA = DatasetSchema(
    timestamp="scheduled_departure",
    target="delayed",
    id_column="flight_id",
    numeric_features=(
        "month",
        "weekday",
        "hour",
        "minute",
        "sched_arr_hour",
        "distance",
        "temp",
        "dewp",
        "humid",
        "wind_dir",
        "wind_speed",
        "wind_gust",
        "precip",
        "pressure",
        "visib",
    ),
    categorical_features=("carrier", "origin", "dest"),
    numeric_ranges={
        "month": (1, 12),
        "weekday": (0, 6),
        "hour": (0, 23),
        "minute": (0, 59),
        "sched_arr_hour": (0, 24),
        "distance": (1, 6000),
        "humid": (0, 100),
        "wind_dir": (0, 360),
        "precip": (0, 10),
        "visib": (0, 10),
    },
    required_non_null=(
        "month",
        "weekday",
        "hour",
        "minute",
        "distance",
        "carrier",
        "origin",
        "dest",
    ),
    min_rows=100,
)
