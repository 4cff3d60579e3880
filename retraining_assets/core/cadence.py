"""Batch cadences: how long one batch's period is, where periods start, and how batches are named.

A dataset's ``frequency`` is any regular cadence, written one of three ways:

- a name: ``hourly``, ``daily``, ``weekly`` (weeks start Monday), ``monthly``, ``quarterly``
  (January, April, July, October) or ``yearly``;
- ``"N <unit>"`` with a unit of minutes, hours, days, weeks, months, quarters or years
  (``"2 weeks"``, ``"14 days"``, ``"6 hours"``; singular or plural);
- a pandas offset alias: ``2W``, ``14D``, ``6h``, ``30min``, ``MS``, ``QS``, ``QS-FEB``, ``YS``,
  ``YS-JUL`` (end-anchored aliases such as ``ME``, ``QE``, ``YE-JUN`` name the same periods by
  their last month). Business-day and other irregular offsets are refused.

Periods never depend on the data seen so far, so a batch arriving alone is placed exactly as a
whole history would be. Fixed-length cadences (minutes to weeks) are counted from Monday
1970-01-05 00:00 (``2W`` and ``14D`` are the same fortnights, each starting on a Monday; ``W-WED``
weeks end on Wednesday and start on Thursday); calendar cadences (months, quarters, years) start
at midnight on the first of a month.

A batch is named after its period's start: ``YYYY-MM-DD`` for cadences of whole days or longer
(``2024-04-01`` for the second quarter of 2024), ``YYYY-MM-DDTHHMM`` below a day
(``2024-04-01T0600``). Both sort in time as text and read as dates.

Pure core. Parsing a cadence and its cron need no pandas (the code location reads them when it
loads and must stay light); placing timestamps imports pandas when called.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: The named cadences and the pandas alias each stands for.
NAMED: dict[str, str] = {
    "hourly": "h",
    "daily": "D",
    "weekly": "W",
    "monthly": "MS",
    "quarterly": "QS",
    "yearly": "YS",
}
#: What ``frequency`` accepts, for error messages.
ACCEPTED_FORMS = (
    f'{", ".join(NAMED)}; "N <unit>" with a unit of minutes, hours, days, weeks, months, '
    'quarters or years (e.g. "2 weeks", "14 days", "6 hours"); or a pandas offset alias '
    "such as 2W, 14D, 6h, 30min, MS, QS, QS-FEB, YS, YS-JUL"
)
#: Monday 1970-01-05 00:00: where fixed-length periods are counted from.
ORIGIN = dt.datetime(1970, 1, 5)
#: A calendar cadence's (and a whole-day cadence's) schedule tick: 03:00 on the period's start.
SCHEDULE_DELAY = dt.timedelta(hours=3)

_UNITS = {
    "minute": "min",
    "hour": "h",
    "day": "D",
    "week": "W",
    "month": "MS",
    "quarter": "QS",
    "year": "YS",
}
_N_UNITS = re.compile(r"^(\d+)\s*(minute|hour|day|week|month|quarter|year)s?$")
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
# The pandas offset aliases of regular cadences: <n><unit>[-<anchor>].
_ALIAS = re.compile(r"^(\d*)(min|T|h|H|D|W|MS|ME|M|QS|QE|Q|YS|AS|YE|Y|A)(?:-([A-Z]{3}))?$")
_DAY_MINUTES = 24 * 60
_ID_START = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(\d{2}))?(?=$|[^0-9])")


class CadenceError(ValueError):
    """A ``frequency`` that is not a regular cadence; the message lists the accepted forms."""


@dataclass(frozen=True)
class Cadence:
    """A regular cadence: fixed-length periods or whole calendar months.

    Attributes:
        text: The ``frequency`` as configured (stripped; names lower-cased).
        minutes: The period length of a fixed cadence in minutes (0 for a calendar one).
        origin: Where fixed periods are counted from (``ORIGIN`` or a weekday after it).
        months: Months per period of a calendar cadence (0 for a fixed one).
        anchor: A calendar cadence's periods start in months ``anchor (mod months)``, counted
            from January of year 0 (``QS-FEB``: 1).
    """

    text: str
    minutes: int
    origin: dt.datetime = ORIGIN
    months: int = 0
    anchor: int = 0

    @property
    def sub_daily(self) -> bool:
        """True when periods can start at another time than midnight (batch ids carry a time)."""
        return self.minutes > 0 and self.minutes % _DAY_MINUTES != 0

    @property
    def schedule_delay(self) -> dt.timedelta:
        """How long after a period's start the schedule ticks (3 h from a day up, else 0)."""
        return dt.timedelta(0) if self.sub_daily else SCHEDULE_DELAY

    def floor(self, timestamps: pd.Series) -> pd.Series:
        """The start of the period holding each (naive) timestamp; missing stays missing.

        Args:
            timestamps: Naive datetimes.

        Returns:
            The period starts, same index, ``datetime64[ns]``.
        """
        import numpy as np
        import pandas as pd

        values = pd.to_datetime(timestamps).astype("datetime64[ns]")
        missing = values.isna().to_numpy()
        if self.minutes:
            # Integer nanoseconds: a float division would misplace instants on a boundary.
            ns = values.to_numpy().astype("int64")
            base = pd.Timestamp(self.origin).value
            step = self.minutes * 60 * 10**9
            starts = base + ((ns - base) // step) * step
            result = pd.Series(starts.astype("datetime64[ns]"), index=timestamps.index)
        else:
            filled = values.fillna(pd.Timestamp(ORIGIN))
            month_index = filled.dt.year.to_numpy() * 12 + filled.dt.month.to_numpy() - 1
            first = (month_index - self.anchor) // self.months * self.months + self.anchor
            result = pd.Series(
                pd.to_datetime(
                    {"year": first // 12, "month": first % 12 + 1, "day": np.ones_like(first)}
                ).to_numpy(),
                index=timestamps.index,
            ).astype("datetime64[ns]")
        result[missing] = pd.NaT
        return result

    def start_of(self, timestamp: Any) -> pd.Timestamp:
        """The start of the period holding ``timestamp`` (scalar arithmetic, no Series)."""
        import pandas as pd

        stamp = pd.Timestamp(timestamp)
        if self.minutes:
            base = pd.Timestamp(self.origin).value
            step = self.minutes * 60 * 10**9
            return pd.Timestamp(base + ((stamp.value - base) // step) * step)
        month_index = stamp.year * 12 + stamp.month - 1
        first = (month_index - self.anchor) // self.months * self.months + self.anchor
        return pd.Timestamp(year=first // 12, month=first % 12 + 1, day=1)

    def next(self, start: Any) -> pd.Timestamp:
        """The end of the period starting at ``start`` (the next period's start)."""
        import pandas as pd

        if self.minutes:
            return pd.Timestamp(start) + pd.Timedelta(minutes=self.minutes)
        return pd.Timestamp(start) + pd.DateOffset(months=self.months)

    def batch_id(self, start: Any) -> str:
        """The batch id of the period starting at ``start``: its date, and time below a day."""
        return start.strftime("%Y-%m-%dT%H%M" if self.sub_daily else "%Y-%m-%d")

    def cron(self) -> str:
        """A cron (UTC) that ticks at least once per period, at its start (+3 h from a day up).

        The schedule keeps only the tick that opens a period (:meth:`opens_period`): cron
        cannot say "every 14 days", so such cadences tick daily and skip the other days.
        """
        if not self.minutes:
            if self.months == 1 or 12 % self.months != 0:
                return "0 3 1 * *"
            starts = sorted({(self.anchor + k * self.months) % 12 + 1 for k in range(12)})
            return f"0 3 1 {','.join(map(str, starts))} *"
        if self.minutes % _DAY_MINUTES == 0:
            if self.minutes % (7 * _DAY_MINUTES) == 0:
                weekday = (self.origin.weekday() + 1) % 7  # cron: Sunday is 0
                return f"0 3 * * {weekday}"
            return "0 3 * * *"
        hours, rest = divmod(self.minutes, 60)
        if rest == 0:
            if hours == 1 or 24 % hours != 0:
                return "0 * * * *"
            return f"0 */{hours} * * *"
        every = math.gcd(self.minutes, 60)
        return "* * * * *" if every == 1 else f"*/{every} * * * *"

    @property
    def cron_is_exact(self) -> bool:
        """True when every tick of :meth:`cron` opens a period (no tick needs skipping)."""
        if not self.minutes:
            return self.months == 1 or 12 % self.months == 0
        if self.minutes % _DAY_MINUTES == 0:
            return self.minutes in (_DAY_MINUTES, 7 * _DAY_MINUTES)
        if self.minutes % 60 == 0:
            return 24 % (self.minutes // 60) == 0
        return 60 % self.minutes == 0

    def opens_period(self, tick: Any) -> bool:
        """True when the schedule tick ``tick`` (naive UTC) is the one that opens a period."""
        import pandas as pd

        moment = pd.Timestamp(tick) - self.schedule_delay
        return bool(self.start_of(moment) == moment)

    def describe(self) -> str:
        """Human words for messages: ``weekly``, ``every 2W``."""
        return self.text if self.text in NAMED else f"every {self.text}"


def _fail(value: object, why: str = "") -> CadenceError:
    lead = f"{why}; " if why else f"unknown cadence {value!r}; "
    return CadenceError(f"{lead}expected {ACCEPTED_FORMS}")


@functools.lru_cache(maxsize=256)
def parse_cadence(value: object) -> Cadence:
    """Read a ``frequency`` value (see the module docstring for the forms).

    Args:
        value: The configured value.

    Returns:
        The cadence.

    Raises:
        CadenceError: if ``value`` is not a regular cadence; the message lists the forms.
    """
    if not isinstance(value, str) or not value.strip():
        raise _fail(value, f"expected a cadence, got {value!r}")
    text = value.strip()
    lowered = text.lower()
    alias = text
    if lowered in NAMED:
        alias, text = NAMED[lowered], lowered
    elif match := _N_UNITS.match(lowered):
        alias = f"{int(match.group(1))}{_UNITS[match.group(2)]}"
    found = _ALIAS.match(alias)
    if not found:
        raise _fail(value)
    count_text, unit, anchor = found.groups()
    n = int(count_text) if count_text else 1
    if n < 1:
        raise _fail(value, f"a cadence must move forward, got {value!r}")
    if unit in ("min", "T", "h", "H", "D"):
        if anchor:
            raise _fail(value)
        per = {"min": 1, "T": 1, "h": 60, "H": 60, "D": _DAY_MINUTES}[unit]
        return Cadence(text, n * per)
    if unit == "W":
        # pandas names a week by its last day (W = W-SUN); periods start the day after.
        if anchor and anchor not in _WEEKDAYS:
            raise _fail(value)
        last = _WEEKDAYS.index(anchor or "SUN")
        origin = ORIGIN + dt.timedelta(days=(last + 1) % 7)
        return Cadence(text, n * 7 * _DAY_MINUTES, origin)
    if unit in ("MS", "ME", "M"):
        if anchor:
            raise _fail(value)
        return Cadence(text, 0, months=n)
    if anchor and anchor not in _MONTHS:
        raise _fail(value)
    span = 3 * n if unit in ("QS", "QE", "Q") else 12 * n
    if unit in ("QS", "YS", "AS"):
        # Begin-anchored: the named month opens a period.
        first = _MONTHS.index(anchor or "JAN")
    else:
        # End-anchored (QE, Q, YE, Y, A): the named month closes one; the next opens.
        first = (_MONTHS.index(anchor or "DEC") + 1) % 12
    return Cadence(text, 0, months=span, anchor=first % span)


def check_frequency(value: object) -> str:
    """The configured ``frequency`` stripped (names lower-cased) if it is a cadence.

    Raises:
        CadenceError: if it is not (the message lists the accepted forms).
    """
    return parse_cadence(value).text


def batch_start(batch_id: str) -> pd.Timestamp | None:
    """The period start a batch id names (``2024-01-08``, ``2024-01-08T0600``, ``..._late``).

    Returns:
        The start, or ``None`` if the id does not begin with a valid date.
    """
    import pandas as pd

    match = _ID_START.match(batch_id)
    if not match:
        return None
    year, month, day, hour, minute = match.groups()
    try:
        return pd.Timestamp(
            year=int(year),
            month=int(month),
            day=int(day),
            hour=int(hour or 0),
            minute=int(minute or 0),
        )
    except ValueError:
        return None
