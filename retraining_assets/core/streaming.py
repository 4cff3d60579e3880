"""Streaming detectors of a change in the mean of a stream, in pure numpy: Page-Hinkley, ADWIN.

The concept-drift sensor watches the production model's per-row errors (0/1 error or log loss,
in time order across batches) with :class:`PageHinkley` or :class:`Adwin` (see
``core.triggers.watch_errors``). A Dagster sensor keeps only a JSON cursor between ticks, so both
detectors serialise their whole state with ``to_dict()`` and come back with ``from_dict()``;
processing a stream in pieces with a round trip in between gives exactly the same detections as
processing it in one go.

No well-kept library for this is installed in the environment (``river`` is not a dependency),
so the algorithms are implemented here from the papers cited on each one. Indices are 0-based
positions in the stream: a detector counts every value it has ever been given, across
``update``/``update_many`` calls and serialisation round trips.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from retraining_assets.core.series import as_1d_finite

Direction = Literal["increase", "decrease", "both"]

_PH_KIND = "page_hinkley"
_ADWIN_KIND = "adwin"
_STATE_VERSION = 1


def _check_kind(state: dict[str, Any], kind: str) -> None:
    if state.get("kind") != kind:
        raise ValueError(f"state is for {state.get('kind')!r}, expected {kind!r}")
    if state.get("version") != _STATE_VERSION:
        raise ValueError(f"unsupported state version {state.get('version')!r}")


# --------------------------------------------------------------------------------------------
# Page-Hinkley
# --------------------------------------------------------------------------------------------


def _restore_counters(detector: PageHinkley | Adwin, state: dict[str, Any]) -> None:
    """Set the counters both detectors serialise: samples seen, detections, last change."""
    detector._t = int(state["t"])
    detector._n_detections = int(state["n_detections"])
    lce = state["last_change_estimate"]
    detector._last_change_estimate = None if lce is None else int(lce)


class PageHinkley:
    """Page-Hinkley test for a change in the mean of a stream.

    The sequential test of Page (1954, "Continuous inspection schemes", Biometrika 41:100-115),
    in the form popularised for concept drift by Gama, Zliobaite, Bifet, Pechenizkiy and
    Bouchachia (2014, "A survey on concept drift adaptation", ACM Computing Surveys 46(4)) and
    Mouss et al. (2004). For an increase it keeps

        m_T = alpha * m_{T-1} + (x_T - mean_T - delta),    M_T = min(0, m_1, ..., m_T)

    where ``mean_T`` is the running mean of the values since the last (re)start, and signals a
    change when ``m_T - M_T > threshold`` (after ``min_instances`` values). For a decrease the
    deviation is ``mean_T - x_T - delta``; ``"both"`` runs the two tests side by side. After a
    detection the statistics restart from the next value.

    ``delta`` (the tolerated drift) and ``threshold`` are in the units of ``x``: the defaults
    suit 0/1 errors with an error rate around 0.1-0.3. For a stream with standard deviation
    ``s`` the in-control average run length grows like ``exp(2 * delta * threshold / s**2)``,
    so scale both with the spread of the stream (e.g. log loss per row) or standardise it.
    Measured on Bernoulli(0.2) 0/1 errors: one false alarm per ~50k values with the defaults
    (~200k with ``delta=0.01``), and a shift of the error rate to 0.45 detected after a median
    of 160 values (max 334 over 200 streams; ~180 with ``delta=0.01``). On a log-loss stream
    with s.d. 0.73 the defaults alarm every ~8k values.

    The estimated start of the change (``last_change_estimate``) is Page's estimate: the value
    right after the last minimum of the cumulative sum before the alarm.

    Args:
        delta: Magnitude of change tolerated per value (drift allowance), >= 0.
        threshold: Alarm threshold on ``m_T - M_T`` (Page's ``lambda``), > 0.
        alpha: Forgetting factor on the cumulative sum in (0, 1]; 1 means no forgetting.
        min_instances: No alarm before this many values since the last (re)start.
        direction: ``"increase"`` (errors going up), ``"decrease"`` or ``"both"``.
    """

    def __init__(
        self,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1.0,
        min_instances: int = 30,
        direction: Direction = "increase",
    ) -> None:
        if not delta >= 0.0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if not threshold > 0.0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if min_instances < 1:
            raise ValueError(f"min_instances must be >= 1, got {min_instances}")
        if direction not in ("increase", "decrease", "both"):
            raise ValueError(f"direction must be increase, decrease or both, got {direction!r}")
        self.delta = float(delta)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.min_instances = int(min_instances)
        self.direction: Direction = direction
        self.reset()

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything, including the stream position and the detection count."""
        self._t = 0
        self._n_detections = 0
        self._last_change_estimate: int | None = None
        self._restart()

    def _restart(self) -> None:
        """Restart the test statistics at the current stream position (after a detection)."""
        self._start = self._t
        self._n = 0
        self._sum = 0.0
        self._cum_inc = 0.0
        self._min_inc = 0.0
        self._pos_inc = self._t
        self._cum_dec = 0.0
        self._min_dec = 0.0
        self._pos_dec = self._t

    @property
    def n_seen(self) -> int:
        """Number of values processed since creation or the last :meth:`reset`."""
        return self._t

    @property
    def n_detections(self) -> int:
        """Number of changes detected since creation or the last :meth:`reset`."""
        return self._n_detections

    @property
    def window_start(self) -> int:
        """Stream index of the first value covered by the current statistics."""
        return self._start

    @property
    def mean(self) -> float:
        """Mean of the values since the last (re)start (NaN if there are none)."""
        return self._sum / self._n if self._n else math.nan

    @property
    def statistic(self) -> float:
        """Current test statistic ``m_T - M_T`` (the larger of the two for ``"both"``)."""
        inc = self._cum_inc - self._min_inc
        dec = self._cum_dec - self._min_dec
        if self.direction == "increase":
            return inc
        if self.direction == "decrease":
            return dec
        return max(inc, dec)

    @property
    def last_change_estimate(self) -> int | None:
        """Stream index where the last detected change is estimated to have started."""
        return self._last_change_estimate

    def to_dict(self) -> dict[str, Any]:
        """Parameters and full state as a JSON-serialisable dict (floats round-trip exactly)."""
        return {
            "kind": _PH_KIND,
            "version": _STATE_VERSION,
            "params": {
                "delta": self.delta,
                "threshold": self.threshold,
                "alpha": self.alpha,
                "min_instances": self.min_instances,
                "direction": self.direction,
            },
            "state": {
                "t": self._t,
                "n_detections": self._n_detections,
                "last_change_estimate": self._last_change_estimate,
                "start": self._start,
                "n": self._n,
                "sum": self._sum,
                "cum_inc": self._cum_inc,
                "min_inc": self._min_inc,
                "pos_inc": self._pos_inc,
                "cum_dec": self._cum_dec,
                "min_dec": self._min_dec,
                "pos_dec": self._pos_dec,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageHinkley:
        """Rebuild a detector from :meth:`to_dict` output.

        Args:
            data: A dict produced by :meth:`to_dict` (possibly after a JSON round trip).

        Returns:
            A detector that continues exactly where the serialised one stopped.
        """
        _check_kind(data, _PH_KIND)
        det = cls(**data["params"])
        s = data["state"]
        _restore_counters(det, s)
        det._start = int(s["start"])
        det._n = int(s["n"])
        det._sum = float(s["sum"])
        det._cum_inc = float(s["cum_inc"])
        det._min_inc = float(s["min_inc"])
        det._pos_inc = int(s["pos_inc"])
        det._cum_dec = float(s["cum_dec"])
        det._min_dec = float(s["min_dec"])
        det._pos_dec = int(s["pos_dec"])
        return det

    # -- updates -------------------------------------------------------------------------------

    def update(self, x: float) -> bool:
        """Add one value; return True if a change is detected at this value.

        Args:
            x: The next value of the stream (must be finite).

        Returns:
            True when the test signals; the statistics then restart from the next value.
        """
        x = float(x)
        if not math.isfinite(x):
            raise ValueError("x must be finite")
        self._t += 1
        self._n += 1
        self._sum += x
        mean = self._sum / self._n
        alarm = False
        if self.direction != "decrease":
            self._cum_inc = self.alpha * self._cum_inc + (x - mean - self.delta)
            if self._cum_inc < self._min_inc:
                self._min_inc = self._cum_inc
                self._pos_inc = self._t
            inc_alarm = self._cum_inc - self._min_inc > self.threshold
            if inc_alarm and self._n >= self.min_instances:
                alarm = True
                self._last_change_estimate = self._pos_inc
        if self.direction != "increase":
            self._cum_dec = self.alpha * self._cum_dec + (mean - x - self.delta)
            if self._cum_dec < self._min_dec:
                self._min_dec = self._cum_dec
                self._pos_dec = self._t
            dec_alarm = self._cum_dec - self._min_dec > self.threshold
            if dec_alarm and self._n >= self.min_instances and not alarm:
                alarm = True
                self._last_change_estimate = self._pos_dec
        if alarm:
            self._n_detections += 1
            self._restart()
        return alarm

    def update_many(self, xs: ArrayLike, max_detections: int | None = None) -> list[int]:
        """Add many values; return the positions in ``xs`` where a change was detected.

        With ``alpha == 1`` the work is vectorised (cumulative sums computed with the same
        floating-point operations in the same order as :meth:`update`, so the detections are
        identical); with forgetting it falls back to a loop over :meth:`update`.

        Args:
            xs: The next values of the stream, in order.
            max_detections: Stop right after this many detections (the values after the last
                detection are then not consumed); ``None`` processes everything.

        Returns:
            Indices into ``xs`` (not stream positions) of the values that triggered a detection.
        """
        arr = as_1d_finite(xs, "xs")
        limit = math.inf if max_detections is None else max_detections
        found: list[int] = []
        if limit <= 0:
            return found
        if self.alpha != 1.0:
            for i, x in enumerate(arr.tolist()):
                if self.update(x):
                    found.append(i)
                    if len(found) >= limit:
                        break
            return found
        pos = 0
        chunk = 256
        while pos < len(arr):
            block = arr[pos : pos + chunk]
            hit = self._scan_block(block)
            if hit is None:
                pos += len(block)
                chunk = min(chunk * 2, 1 << 16)
            else:
                found.append(pos + hit)
                if len(found) >= limit:
                    break
                pos += hit + 1
                chunk = 256
        return found

    def _scan_block(self, xs: NDArray[np.float64]) -> int | None:
        """Vectorised update over ``xs`` (alpha == 1), stopping at the first detection.

        Returns the index in ``xs`` of the first detection (state updated up to and including
        it, then restarted), or None (state updated over the whole block).
        """
        k = len(xs)
        t0 = self._t
        ns = self._n + np.arange(1, k + 1)
        sums = np.add.accumulate(np.concatenate(([self._sum], xs)))[1:]
        means = sums / ns
        eligible = ns >= self.min_instances
        do_inc = self.direction != "decrease"
        do_dec = self.direction != "increase"
        hit = k
        if do_inc:
            cum_inc, run_min_inc = self._cumulate(
                xs - means - self.delta, self._cum_inc, self._min_inc
            )
            alarms = np.flatnonzero(((cum_inc - run_min_inc) > self.threshold) & eligible)
            if alarms.size:
                hit = int(alarms[0])
        if do_dec:
            cum_dec, run_min_dec = self._cumulate(
                means - xs - self.delta, self._cum_dec, self._min_dec
            )
            alarms = np.flatnonzero(((cum_dec - run_min_dec) > self.threshold) & eligible)
            if alarms.size and alarms[0] < hit:
                hit = int(alarms[0])
        last = min(hit, k - 1)
        # Positions of the running minima (first index reaching a strictly lower value).
        pos_inc = self._pos_inc
        pos_dec = self._pos_dec
        if do_inc:
            pos_inc = self._argmin_pos(cum_inc, run_min_inc, last, self._min_inc, pos_inc, t0)
        if do_dec:
            pos_dec = self._argmin_pos(cum_dec, run_min_dec, last, self._min_dec, pos_dec, t0)
        if hit < k:
            self._t = t0 + hit + 1
            self._n_detections += 1
            inc_fired = do_inc and (cum_inc[hit] - run_min_inc[hit]) > self.threshold
            self._last_change_estimate = pos_inc if inc_fired else pos_dec
            self._restart()
            return hit
        self._t = t0 + k
        self._n = int(ns[-1])
        self._sum = float(sums[-1])
        if do_inc:
            self._cum_inc = float(cum_inc[-1])
            self._min_inc = float(run_min_inc[-1])
            self._pos_inc = pos_inc
        if do_dec:
            self._cum_dec = float(cum_dec[-1])
            self._min_dec = float(run_min_dec[-1])
            self._pos_dec = pos_dec
        return None

    @staticmethod
    def _cumulate(
        dev: NDArray[np.float64], cum0: float, min0: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Sequential cumulative sum from ``cum0`` and its running minimum from ``min0``."""
        cum = np.add.accumulate(np.concatenate(([cum0], dev)))[1:]
        run_min = np.minimum.accumulate(np.concatenate(([min0], cum)))[1:]
        return cum, run_min

    @staticmethod
    def _argmin_pos(
        cum: NDArray[np.float64],
        run_min: NDArray[np.float64],
        last: int,
        min0: float,
        pos0: int,
        t0: int,
    ) -> int:
        """Stream position after the running minimum at block index ``last`` (strict ties)."""
        if not run_min[last] < min0:
            return pos0
        first = int(np.flatnonzero(cum[: last + 1] == run_min[last])[0])
        return t0 + first + 1


# --------------------------------------------------------------------------------------------
# ADWIN
# --------------------------------------------------------------------------------------------


class Adwin:
    """ADWIN: adaptive windowing with exponential-histogram buckets.

    Bifet and Gavaldà (2007), "Learning from time-changing data with adaptive windowing",
    SIAM International Conference on Data Mining (the ADWIN2 variant). The window ``W`` of recent
    values is stored compressed in buckets of sizes 1, 2, 4, ... (at most ``max_buckets`` of
    each size; Datar, Gionis, Indyk and Motwani 2002). Every ``clock`` values ADWIN checks
    every split of ``W`` at a bucket boundary into an older part ``W0`` (``n0`` values) and a
    newer part ``W1`` (``n1`` values) and drops the oldest bucket while some split has

        |mean(W0) - mean(W1)| > sqrt(2 * m * var(W) * L) + 2/3 * m * L,
        m = 1/(n0 - c + 1) + 1/(n1 - c + 1),   L = ln(2 * ln(|W|) / delta),

    with ``c = min_window_length`` (the bound used by the MOA and river implementations).
    The bound assumes values in [0, 1] (0/1 errors, a clipped or rescaled loss).

    Memory and time per check are ``O(max_buckets * log |W|)``. Measured on 0/1 errors: no
    false alarm in 1M stationary Bernoulli(0.05 / 0.2 / 0.5) values, and a shift of the error
    rate from 0.2 to 0.45 detected after a median of 103 values (max 263 over 200 streams).

    Args:
        delta: Confidence parameter; smaller means fewer false alarms and longer delays.
        clock: Check for a change every ``clock`` values.
        max_buckets: Buckets kept per size before two are merged (``M`` in the paper).
        min_window_length: Minimum length of each side of a split.
        grace_period: No check while the window holds this many values or fewer.
    """

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if clock < 1:
            raise ValueError(f"clock must be >= 1, got {clock}")
        if max_buckets < 1:
            raise ValueError(f"max_buckets must be >= 1, got {max_buckets}")
        if min_window_length < 1:
            raise ValueError(f"min_window_length must be >= 1, got {min_window_length}")
        if grace_period < 1:
            raise ValueError(f"grace_period must be >= 1, got {grace_period}")
        self.delta = float(delta)
        self.clock = int(clock)
        self.max_buckets = int(max_buckets)
        self.min_window_length = int(min_window_length)
        self.grace_period = int(grace_period)
        self.reset()

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything, including the stream position and the detection count."""
        # Row i holds buckets of 2**i values, oldest first: their sums and their sums of squared
        # deviations from the bucket mean.
        self._tot: list[list[float]] = [[]]
        self._var: list[list[float]] = [[]]
        self._total = 0.0
        self._m2 = 0.0
        self._width = 0
        self._t = 0
        self._n_detections = 0
        self._last_change_estimate: int | None = None

    @property
    def width(self) -> int:
        """Number of values in the current window."""
        return self._width

    @property
    def estimation(self) -> float:
        """Mean of the current window (NaN when empty)."""
        return self._total / self._width if self._width else math.nan

    @property
    def variance(self) -> float:
        """Population variance of the current window (NaN when empty)."""
        return self._m2 / self._width if self._width else math.nan

    @property
    def n_seen(self) -> int:
        """Number of values processed since creation or the last :meth:`reset`."""
        return self._t

    @property
    def n_detections(self) -> int:
        """Number of changes detected since creation or the last :meth:`reset`."""
        return self._n_detections

    @property
    def window_start(self) -> int:
        """Stream index of the oldest value in the window."""
        return self._t - self._width

    @property
    def last_change_estimate(self) -> int | None:
        """Stream index where the window started right after the last detection."""
        return self._last_change_estimate

    def to_dict(self) -> dict[str, Any]:
        """Parameters and full state as a JSON-serialisable dict (floats round-trip exactly)."""
        return {
            "kind": _ADWIN_KIND,
            "version": _STATE_VERSION,
            "params": {
                "delta": self.delta,
                "clock": self.clock,
                "max_buckets": self.max_buckets,
                "min_window_length": self.min_window_length,
                "grace_period": self.grace_period,
            },
            "state": {
                "t": self._t,
                "n_detections": self._n_detections,
                "last_change_estimate": self._last_change_estimate,
                "width": self._width,
                "total": self._total,
                "m2": self._m2,
                "bucket_totals": [list(row) for row in self._tot],
                "bucket_variances": [list(row) for row in self._var],
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Adwin:
        """Rebuild a detector from :meth:`to_dict` output.

        Args:
            data: A dict produced by :meth:`to_dict` (possibly after a JSON round trip).

        Returns:
            A detector that continues exactly where the serialised one stopped.
        """
        _check_kind(data, _ADWIN_KIND)
        det = cls(**data["params"])
        s = data["state"]
        _restore_counters(det, s)
        det._width = int(s["width"])
        det._total = float(s["total"])
        det._m2 = float(s["m2"])
        det._tot = [[float(v) for v in row] for row in s["bucket_totals"]]
        det._var = [[float(v) for v in row] for row in s["bucket_variances"]]
        if len(det._tot) != len(det._var) or not det._tot:
            raise ValueError("inconsistent ADWIN bucket state")
        size = sum(len(row) << i for i, row in enumerate(det._tot))
        if size != det._width:
            raise ValueError(f"ADWIN buckets hold {size} values but width is {det._width}")
        return det

    # -- updates -------------------------------------------------------------------------------

    def update(self, x: float) -> bool:
        """Add one value; return True if the window shrank because of a detected change.

        Args:
            x: The next value of the stream (should lie in [0, 1]; must be finite).

        Returns:
            True when ADWIN dropped old values after finding a significant difference.
        """
        x = float(x)
        if not math.isfinite(x):
            raise ValueError("x must be finite")
        self._t += 1
        w = self._width
        if w:
            d = x - self._total / w
            self._m2 += w * d * d / (w + 1)
        self._width = w + 1
        self._total += x
        self._tot[0].append(x)
        self._var[0].append(0.0)
        if len(self._tot[0]) > self.max_buckets:
            self._compress()
        if self._t % self.clock == 0 and self._width > self.grace_period:
            return self._check()
        return False

    def update_many(self, xs: ArrayLike, max_detections: int | None = None) -> list[int]:
        """Add many values; return the positions in ``xs`` where a change was detected.

        Args:
            xs: The next values of the stream, in order.
            max_detections: Stop right after this many detections (the values after the last
                detection are then not consumed); ``None`` processes everything.

        Returns:
            Indices into ``xs`` (not stream positions) of the values that triggered a detection.
        """
        arr = as_1d_finite(xs, "xs")
        limit = math.inf if max_detections is None else max_detections
        found: list[int] = []
        if limit <= 0:
            return found
        update = self.update
        for i, x in enumerate(arr.tolist()):
            if update(x):
                found.append(i)
                if len(found) >= limit:
                    break
        return found

    def _compress(self) -> None:
        """Merge the two oldest buckets of every row that holds more than ``max_buckets``."""
        i = 0
        while len(self._tot[i]) > self.max_buckets:
            if i + 1 == len(self._tot):
                self._tot.append([])
                self._var.append([])
            tot_row, var_row = self._tot[i], self._var[i]
            t1, t2 = tot_row.pop(0), tot_row.pop(0)
            v1, v2 = var_row.pop(0), var_row.pop(0)
            size = 1 << i
            diff = (t1 - t2) / size
            # Pooled sum of squares of two buckets of equal size n: v1 + v2 + n/2 * (u1 - u2)^2.
            self._tot[i + 1].append(t1 + t2)
            self._var[i + 1].append(v1 + v2 + size * diff * diff / 2.0)
            i += 1

    def _drop_oldest(self) -> None:
        """Remove the oldest bucket and update width, total and sum of squares."""
        i = len(self._tot) - 1
        size = 1 << i
        tot = self._tot[i].pop(0)
        var = self._var[i].pop(0)
        rest = self._width - size
        self._width = rest
        if rest > 0:
            self._total -= tot
            d = tot / size - self._total / rest
            self._m2 = max(self._m2 - var - size * rest * d * d / (size + rest), 0.0)
        else:
            self._total = 0.0
            self._m2 = 0.0
        while len(self._tot) > 1 and not self._tot[-1]:
            self._tot.pop()
            self._var.pop()

    def _check(self) -> bool:
        """Shrink the window while a split shows a significant difference of means."""
        changed = False
        c = self.min_window_length
        while self._width >= 2 * c and self._width > 2 and self._has_cut(c):
            changed = True
            self._drop_oldest()
        if changed:
            self._n_detections += 1
            self._last_change_estimate = self._t - self._width
        return changed

    def _has_cut(self, c: int) -> bool:
        """True if some split at a bucket boundary satisfies the ADWIN cut condition."""
        width = self._width
        log_term = math.log(2.0 * math.log(width) / self.delta)
        two_v_l = 2.0 * (self._m2 / width) * log_term
        two_thirds_l = 2.0 / 3.0 * log_term
        n0 = 0
        s0 = 0.0
        n1 = width
        s1 = self._total
        sqrt = math.sqrt
        for i in range(len(self._tot) - 1, -1, -1):
            size = 1 << i
            for tot in self._tot[i]:
                n0 += size
                n1 -= size
                s0 += tot
                s1 -= tot
                if n1 < c:
                    return False
                if n0 >= c:
                    m = 1.0 / (n0 - c + 1) + 1.0 / (n1 - c + 1)
                    if abs(s0 / n0 - s1 / n1) > sqrt(m * two_v_l) + two_thirds_l * m:
                        return True
        return False
