"""The ticks of a five-field cron string in a time span (UTC), for the replay's simulated clock.

Standard cron semantics: minute, hour, day of month, month, day of week; ``*``, ``a-b``, ``*/n``,
``a-b/n``, lists, month and weekday names (``JAN``, ``MON``), Sunday as 0 or 7, the ``@hourly``
... ``@yearly`` aliases; when both day fields are restricted a day matches either of them.
Walks the span day by day, so a year of a daily cron costs 365 small steps, not half a million.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NAMES = {
    3: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    4: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _value(text: str, field: int) -> int:
    names = _NAMES.get(field)
    if names and text.upper() in names:
        return names.index(text.upper()) + (1 if field == 3 else 0)
    return int(text)


def _field(text: str, field: int) -> tuple[frozenset[int], bool]:
    """The values a field allows, and whether it is unrestricted (``*``)."""
    low, high = _RANGES[field]
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, b = span.split("-", 1)
            first, last = _value(a, field), _value(b, field)
        else:
            first = _value(span, field)
            last = high if step_text else first
        if not low <= first <= last <= high or step < 1:
            raise ValueError(f"cron field {text!r} outside {low}-{high}")
        values.update(range(first, last + 1, step))
    if field == 4 and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values), text == "*"


def cron_ticks(cron: str, after: dt.datetime, until: dt.datetime) -> Iterator[dt.datetime]:
    """The instants in ``(after, until]`` that ``cron`` fires at, in order (naive or UTC-aware).

    Raises:
        ValueError: if ``cron`` is not a five-field cron string or alias.
    """
    fields = _ALIASES.get(cron.strip(), cron).split()
    if len(fields) != 5:
        raise ValueError(f"not a five-field cron string: {cron!r}")
    (minutes, _), (hours, _), (days, any_day), (months, _), (weekdays, any_weekday) = (
        _field(text, i) for i, text in enumerate(fields)
    )
    minutes_sorted, hours_sorted = sorted(minutes), sorted(hours)
    day = after.replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= until:
        weekday = (day.weekday() + 1) % 7  # cron counts from Sunday = 0
        if any_day or any_weekday:
            day_ok = day.day in days and weekday in weekdays
        else:
            day_ok = day.day in days or weekday in weekdays
        if day_ok and day.month in months:
            for hour in hours_sorted:
                for minute in minutes_sorted:
                    tick = day.replace(hour=hour, minute=minute)
                    if after < tick <= until:
                        yield tick
        day += dt.timedelta(days=1)
