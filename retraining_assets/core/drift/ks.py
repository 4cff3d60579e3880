"""Two-sample Kolmogorov-Smirnov test from sorted samples: D and the p-value, as scipy's.

:func:`ks_statistic_sorted` equals ``scipy.stats.ks_2samp(...).statistic`` (ties included) at
a small part of the cost of the sort; :func:`ks_pvalue` equals its default ``method="auto"``
p-value, with scipy's one slow branch (the Smirnov sum) evaluated vectorised.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from retraining_assets.core.drift.columns import _n_before_nan

try:  # Exact small-sample KS p-value: scipy's own private helper (see ks_pvalue).
    from scipy.stats._stats_py import _attempt_exact_2kssamp
except ImportError:  # pragma: no cover - only on a scipy that moved the helper
    _attempt_exact_2kssamp = None

#: scipy ``ks_2samp(method="auto")`` is exact when the larger sample has at most this many values.
KS_MAX_EXACT_N = 10_000
# scipy.special.smirnov sums every term up to this n, and approximates above it.
_SMIRNOV_MAX_COMPUTE_N = 1_000_000
# Below this n scipy's own (double-double) Smirnov sum is already fast: use it as is.
_FAST_SMIRNOV_MIN_N = 1_000
_SMIRNOV_CHUNK = 1 << 16
# Width of the Smirnov terms' bump, in evaluated terms (see _smirnov_step).
_SMIRNOV_WIDTH_PER_STEP = 40.0
# Coarse-to-fine KS D search over the sorted batch (see _ks_d_presorted): first block size, and
# how much finer each next level is.
_KS_BLOCK = 512
_KS_RATIO = 8


def _ks_d_at(ref_sorted: np.ndarray, cur_sorted: np.ndarray, points: np.ndarray) -> float:
    """Largest ``|F_ref - F_cur|`` at ``points`` (current values) and just before each of them.

    At a value ``v`` the ECDF difference is ``#ref <= v / n - #cur <= v / m``. Just before ``v``
    (at the largest reference point below ``v``, if any, and otherwise at a point already counted)
    it is ``#ref < v / n - #cur < v / m``; only its positive side can be an extreme, because in a
    gap between current values the current ECDF is flat while the reference one rises.
    """
    n, m = ref_sorted.size, cur_sorted.size
    # The same count / n - count / m as scipy (whose exact mode then rounds D to h / lcm(n, m)).
    at = np.searchsorted(ref_sorted, points, "right") / n
    at -= np.searchsorted(cur_sorted, points, "right") / m
    before = np.searchsorted(ref_sorted, points, "left") / n
    before -= np.searchsorted(cur_sorted, points, "left") / m
    return float(max(at.max(), -at.min(), before.max(), 0.0))


def _ks_counts(
    ref_sorted: np.ndarray, cur_sorted: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ECDF counts at the batch values ``cur_sorted[index]``; an index of ``m`` stands for +inf.

    Returns ``#ref < v / n``, ``#ref <= v / n``, ``#cur < v / m`` and ``#cur <= v / m``.
    """
    n, m = ref_sorted.size, cur_sorted.size
    clipped = np.minimum(index, m - 1)
    values = cur_sorted[clipped]
    ref_lt = np.searchsorted(ref_sorted, values, "left")
    # #ref <= v differs from #ref < v only where v occurs in the reference (if ref_lt == n,
    # ref[n - 1] < v, so clipping the index cannot make a false hit).
    hit = ref_sorted[np.minimum(ref_lt, n - 1)] == values
    ref_le = ref_lt.copy()
    if hit.any():
        ref_le[hit] = np.searchsorted(ref_sorted, values[hit], "right")
    # #cur < v and #cur <= v are v's position and the next one, unless a neighbour equals v:
    # looking at the two neighbours of each point replaces a pass over the batch for ties.
    cur_lt, cur_le = index.copy(), index + 1
    tied = (cur_sorted[np.maximum(clipped - 1, 0)] == values) & (clipped > 0)
    tied |= (cur_sorted[np.minimum(clipped + 1, m - 1)] == values) & (clipped < m - 1)
    if tied.any():
        cur_lt[tied] = np.searchsorted(cur_sorted, values[tied], "left")
        cur_le[tied] = np.searchsorted(cur_sorted, values[tied], "right")
    beyond = index >= m
    if beyond.any():
        ref_lt[beyond], ref_le[beyond], cur_lt[beyond], cur_le[beyond] = n, n, m, m
    return ref_lt / n, ref_le / n, cur_lt / m, cur_le / m


def _ks_d_presorted(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """Two-sample KS D of two ascending, NaN-free samples, exact, in a small part of one sort.

    ``D = max |F_ref(x) - F_cur(x)|`` over every point of both samples (both ECDFs are
    right-continuous steps that only move there), and every such extreme is seen by
    :func:`_ks_d_at` at some batch value. Few distinct batch values (discrete features): all of
    them are evaluated. Otherwise a coarse-to-fine search over the sorted batch: cut it into
    blocks of :data:`_KS_BLOCK` values and evaluate the ECDFs at the block boundaries only. On
    the x-interval ``[v_start, v_end)`` of a block both ECDFs lie between their values at the two
    ends, which bounds ``|F_ref - F_cur|`` there; a block whose bound cannot beat the best exact
    value found so far is dropped, the others are cut :data:`_KS_RATIO` times finer, down to
    single values (whose interval extreme is the value at the start or just before the end).
    The result is the same maximum from the same integer counts, at about ``m / 512``
    binary searches for a continuous feature.
    """
    m = cur_sorted.size
    size = _KS_BLOCK
    if m <= size:
        return _ks_d_at(ref_sorted, cur_sorted, cur_sorted)
    # One row per block being refined; its columns are the boundaries of the sub-blocks.
    grid = np.minimum(np.arange(0, m + size, size), m)[None, :]
    # Long runs of equal values (half the block starts repeat the previous one's value) hint at
    # few distinct values; only then is the whole batch scanned for them, so a continuous
    # feature is never read in full here.
    at_starts = cur_sorted[grid[0, :-1]]
    if 2 * int(np.count_nonzero(at_starts[1:] == at_starts[:-1])) >= at_starts.size:
        new_value = cur_sorted[1:] != cur_sorted[:-1]
        if int(np.count_nonzero(new_value)) + 1 <= m // size:
            first_of_run = np.concatenate((cur_sorted[:1], cur_sorted[1:][new_value]))
            return _ks_d_at(ref_sorted, cur_sorted, first_of_run)
    found = 0.0
    while True:
        ref_lt, ref_le, cur_lt, cur_le = (
            counts.reshape(grid.shape)
            for counts in _ks_counts(ref_sorted, cur_sorted, grid.ravel())
        )
        at = ref_le - cur_le
        found = max(found, float(at.max()), float(-at.min()), float((ref_lt - cur_lt).max()))
        if size == 1:
            return found
        # On [v_start, v_end): F_ref within [ref_le(start), ref_lt(end)], F_cur within
        # [cur_le(start), cur_lt(end)].
        bound = np.maximum(ref_lt[:, 1:] - cur_le[:, :-1], cur_lt[:, 1:] - ref_le[:, :-1])
        rows, cols = np.nonzero(bound > found - 1e-12)
        if rows.size == 0:
            return found
        starts, ends = grid[rows, cols], grid[rows, cols + 1]
        size = max(size // _KS_RATIO, 1)
        steps = np.arange(0, int((ends - starts).max()) + size, size)
        grid = np.minimum(starts[:, None] + steps[None, :], ends[:, None])


def ks_statistic_sorted(ref_sorted: np.ndarray, cur: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D, reusing an already sorted reference.

    Sorts only ``cur``; the reference ECDF is read by binary search. Equals
    ``scipy.stats.ks_2samp(ref, cur).statistic`` (both ECDFs right-continuous, evaluated at every
    point of both samples), ties included.

    Args:
        ref_sorted: Reference values, ascending, without NaN.
        cur: Current values in any order; NaN values are ignored.

    Returns:
        ``D = max_x |F_ref(x) - F_cur(x)|``.

    Raises:
        ValueError: if either sample is empty.
    """
    ordered = np.sort(np.asarray(cur, dtype=np.float64))
    ordered = ordered[: _n_before_nan(ordered)]
    ref = np.asarray(ref_sorted, dtype=np.float64)
    if ref.size == 0 or ordered.size == 0:
        raise ValueError("KS needs two non-empty samples")
    return _ks_d_presorted(ref, ordered)


_STIRLING_SERIES = (1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188)
# stirlerr(k) = ln k! - (k ln k - k + ln(2 pi k) / 2) for k < 16, where the series is not accurate.
_STIRLERR_SMALL = np.array(
    [0.0]
    + [
        float(special.gammaln(k + 1.0) - (k * math.log(k) - k + 0.5 * math.log(2 * math.pi * k)))
        for k in range(1, 16)
    ]
)


def _stirlerr(k: np.ndarray) -> np.ndarray:
    """Stirling's series error of ``ln k!`` for ``k >= 16`` (Loader 2000), to ~1e-17."""
    r = 1.0 / k
    r2 = r * r
    s0, s1, s2, s3, s4 = _STIRLING_SERIES
    return r * (s0 - r2 * (s1 - r2 * (s2 - r2 * (s3 - r2 * s4))))


def _smirnov_step(n: int, x: float) -> int:
    """Spacing of the terms :func:`_smirnov_sf` evaluates (1: every term).

    As a function of ``v`` the terms form one smooth bump whose width is at least
    ``sqrt(n) / (4 x)`` (the Gaussian width of the binomial factor around ``p_v = 1/2``) and which
    vanishes at both ends (``e^-(n x)`` and less). The sum over every integer and the sum over every
    ``h``-th integer times ``h`` are two trapezoid rules of the same integral, and by Poisson
    summation both differ from it by about ``exp(-2 (pi width / h)^2)``: at ``h`` = width / 40 that
    is far below the rounding error of the sum itself.
    """
    return max(1, math.floor(math.sqrt(n) / (4.0 * x) / _SMIRNOV_WIDTH_PER_STEP))


def _smirnov_sf(n: int, x: float) -> float:
    """One-sided one-sample ``P(D+_n >= x)`` by the Birnbaum-Tingey sum, vectorised.

    The same finite sum ``x * sum_v C(n, v) (x + v/n)^(v-1) (1 - x - v/n)^(n-v)`` that
    ``scipy.special.smirnov`` evaluates term by term in double-double arithmetic (about a second
    at n = 1e6). Each term is written as ``x / p_v * Binomial(n, p_v).pmf(v)`` with
    ``p_v = x + v/n`` and the pmf in Loader's saddle-point form (Stirling series errors plus
    ``log1p`` deviance terms), so no large logarithms cancel: relative error about 1e-13, checked
    against scipy in the tests. The terms are a smooth bump many thousands of ``v`` wide at large
    ``n``, so only every :func:`_smirnov_step`-th one is evaluated (weighted by the step), which
    changes the sum by far less than its rounding error and makes it a few hundred times cheaper.
    """
    nx = n * x
    v_max = math.floor(n - nx)
    if n - nx - v_max <= 0:  # the term with 1 - x - v/n == 0 is zero
        v_max -= 1
    # Logarithms of partial sums, added up once at the end: near n x^2 = 370 the result is
    # subnormal, and summing subnormal terms one by one would lose digits.
    logs = [n * math.log1p(-x)]  # v = 0
    stirlerr_n = float(_stirlerr(np.array(float(n)))) if n >= 16 else _STIRLERR_SMALL[n]
    const = stirlerr_n + 0.5 * math.log(n / (2 * math.pi))
    step = _smirnov_step(n, x)
    chunk = _SMIRNOV_CHUNK * step
    for start in range(1, v_max + 1, chunk):
        v = np.arange(start, min(start + chunk, v_max + 1), step, dtype=np.float64)
        w = n - v
        err_v = _stirlerr(np.maximum(v, 16.0))
        small_v = v < 16
        if small_v.any():
            err_v[small_v] = _STIRLERR_SMALL[v[small_v].astype(np.int64)]
        err_w = _stirlerr(np.maximum(w, 16.0))
        if w[-1] < 16:  # only when n * x < 16, i.e. never in the band _kstwo_sf uses
            tail = w < 16
            err_w[tail] = _STIRLERR_SMALL[w[tail].astype(np.int64)]
        log_term = (
            v * np.log1p(nx / v)
            + w * np.log1p(-nx / w)
            - 0.5 * np.log(v * w)
            + (const - err_v - err_w)
            - np.log1p(v / nx)
        )
        top = float(log_term.max())
        logs.append(top + math.log(step * float(np.exp(log_term - top).sum())))
    top = max(logs)
    return math.exp(top + math.log(math.fsum(math.exp(item - top) for item in logs)))


def _kstwo_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``, with its one slow branch computed faster.

    For ``n > 140`` and ``2.2 <= n d^2 < 370`` scipy returns ``2 * scipy.special.smirnov(n, d)``,
    an O(n) scalar loop (0.1 s at n = 1e5, 1.2 s at n = 1e6). There the same sum is evaluated by
    :func:`_smirnov_sf` with numpy; every other branch (and n above scipy's exact-sum limit of
    1e6) is delegated to scipy itself.
    """
    if _FAST_SMIRNOV_MIN_N < n <= _SMIRNOV_MAX_COMPUTE_N and 0.0 < d < 0.5:
        nx = n * d
        if 1.0 < nx < n - 1 and 2.2 <= nx * d < 370.0:
            return min(max(2.0 * _smirnov_sf(n, d), 0.0), 1.0)
    return float(stats.kstwo.sf(d, n))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided p-value of a two-sample KS statistic, as ``scipy.stats.ks_2samp`` computes it.

    Reproduces ``ks_2samp(a, b)`` with its defaults (``alternative="two-sided"``,
    ``method="auto"``; checked against scipy 1.17) by replicating its dispatch and helpers:

    * if ``max(n, m) <= 10000`` (:data:`KS_MAX_EXACT_N`), the exact null distribution:
      ``D`` is rounded to the lattice ``h / lcm(n, m)`` and scipy's private
      ``scipy.stats._stats_py._attempt_exact_2kssamp`` counts the lattice paths (Hodges 1958);
    * otherwise, or when that computation overflows, Smirnov's asymptotic form
      ``kstwo.sf(D, round(n m / (n + m)))``, the one-sample Kolmogorov distribution at the
      effective sample size. Its slow branch is evaluated by a vectorised copy of the same sum
      (see :func:`_kstwo_sf`); all other branches are scipy's own code.

    Args:
        d: The KS statistic, in ``[0, 1]``.
        n: Size of the first sample (non-missing values).
        m: Size of the second sample.

    Returns:
        The p-value, in ``[0, 1]``.

    Raises:
        ValueError: if a sample size is not positive.
    """
    if n <= 0 or m <= 0:
        raise ValueError(f"sample sizes must be positive, got {n} and {m}")
    d = float(d)
    if max(n, m) <= KS_MAX_EXACT_N and _attempt_exact_2kssamp is not None:
        success, d_lattice, prob = _attempt_exact_2kssamp(n, m, math.gcd(n, m), d, "two-sided")
        d = float(d_lattice)
        if success:
            return float(np.clip(prob, 0.0, 1.0))
    en = float(n) * float(m) / (float(n) + float(m))
    return float(np.clip(_kstwo_sf(d, int(np.round(en))), 0.0, 1.0))
