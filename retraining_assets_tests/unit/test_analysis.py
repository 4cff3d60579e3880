"""Retrospective degradation analysis: onset, per-model handling, drift attribution, plot."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest

from retraining_assets.core.analysis import (
    DegradationReport,
    PeriodPerformance,
    analyze_degradation,
    plot_degradation,
)

N = 52
DROP_AT = 30
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def periods(n: int = N) -> list[str]:
    """Weekly ISO dates, like the batches of the flights data."""
    start = dt.date(2013, 1, 7)
    return [(start + dt.timedelta(weeks=i)).isoformat() for i in range(n)]


def auc_levels(seed: int, levels: list[tuple[int, float]], sd: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([level + sd * rng.standard_normal(length) for length, level in levels])


def history(values, versions=None, n_rows: int = 500) -> list[PeriodPerformance]:
    ids = periods(len(values))
    versions = versions if versions is not None else [None] * len(values)
    return [
        PeriodPerformance(period=p, auc=float(v), n_rows=n_rows, model_version=ver)
        for p, v, ver in zip(ids, values, versions, strict=True)
    ]


def planted(seed: int) -> np.ndarray:
    return auc_levels(seed, [(DROP_AT, 0.80), (N - DROP_AT, 0.72)])


def drift_history(seed: int, jumps: dict[str, int | None], n: int = N) -> dict:
    """PSI per period: ~0.03 noise, +0.5 from the period in ``jumps`` (None: never)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {p: {} for p in periods(n)}
    for name, at in jumps.items():
        psi = np.abs(0.03 + 0.015 * rng.standard_normal(n))
        if at is not None:
            psi[at:] += 0.5
        for p, value in zip(periods(n), psi, strict=True):
            out[p][name] = float(value)
    return out


# -- onset ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_planted_drop_found_within_one_period(seed: int) -> None:
    report = analyze_degradation(history(planted(seed)))
    assert report.found
    assert report.onset_index is not None and abs(report.onset_index - DROP_AT) <= 1
    assert report.onset_period == periods()[report.onset_index]
    assert report.before_mean == pytest.approx(0.80, abs=0.01)
    assert report.after_mean == pytest.approx(0.72, abs=0.01)
    assert report.drop == pytest.approx(0.08, abs=0.015)
    assert report.onset_period in report.change_points
    text = report.summary()
    assert text.startswith(f"degradation began in {report.onset_period}")
    assert f"(period {report.onset_index + 1} of {N})" in text


@pytest.mark.parametrize("method", ["pelt", "binseg"])
def test_both_methods(method: str) -> None:
    report = analyze_degradation(history(planted(11)), method=method)
    assert report.method == method
    assert report.found and abs((report.onset_index or 0) - DROP_AT) <= 1


@pytest.mark.parametrize("seed", range(6))
def test_stationary_series_is_no_degradation(seed: int) -> None:
    report = analyze_degradation(history(auc_levels(100 + seed, [(N, 0.74)])))
    assert not report.found
    assert report.onset_period is None and report.drop is None
    assert report.summary().startswith("no degradation: AUC ")
    assert f"over {N} periods" in report.summary()


def test_stationary_summary_wording() -> None:
    report = analyze_degradation(history(auc_levels(100, [(N, 0.74)])))
    assert report.change_points == ()
    assert report.summary() == (
        f"no degradation: AUC stable at {report.mean_auc:.3f} over {N} periods (no change point)"
    )


@pytest.mark.parametrize("seed", range(3))
def test_improvement_is_no_degradation(seed: int) -> None:
    report = analyze_degradation(history(auc_levels(seed, [(25, 0.72), (27, 0.80)])))
    assert not report.found
    assert len(report.change_points) == 1  # the improvement is seen, and not reported as a drop
    assert "none a drop" in report.summary()


def test_small_drop_below_min_drop_is_ignored() -> None:
    values = auc_levels(3, [(DROP_AT, 0.80), (N - DROP_AT, 0.792)], sd=0.001)
    assert analyze_degradation(history(values)).found is False
    assert analyze_degradation(history(values), min_drop=0.005).found is True


def test_nan_periods_skipped_and_onset_period_id_right() -> None:
    values = planted(4)
    nan_at = [3, 10, 17, 28, 29, 33, 45]
    values[nan_at] = np.nan
    perf = history(values)
    report = analyze_degradation(perf)
    assert report.found
    # 28 and 29 are NaN, so the first analysed period of the worse level is period 30.
    assert report.onset_index == DROP_AT
    assert report.onset_period == periods()[DROP_AT]
    assert report.skipped_periods == tuple(periods()[i] for i in nan_at)
    assert report.n_analysed == N - len(nan_at)
    json.dumps(report.to_dict(), allow_nan=False)


def test_nan_right_at_the_drop_gives_next_analysed_period() -> None:
    values = planted(5)
    values[[DROP_AT, DROP_AT + 1]] = np.nan
    report = analyze_degradation(history(values))
    assert report.onset_index == DROP_AT + 2
    assert report.onset_period == periods()[DROP_AT + 2]


def test_min_rows_skips_tiny_periods() -> None:
    values = planted(6)
    perf = history(values)
    # A tiny period with a wildly off AUC would be noise; skipped by min_rows.
    perf[12] = PeriodPerformance(period=perf[12].period, auc=0.3, n_rows=8)
    report = analyze_degradation(perf, min_rows=50)
    assert perf[12].period in report.skipped_periods
    assert report.found and abs((report.onset_index or 0) - DROP_AT) <= 1


# -- model versions ---------------------------------------------------------------------------


def retrained_history(seed: int) -> list[PeriodPerformance]:
    """v1 degrades at 30, retraining at 40 (v2) restores the AUC."""
    values = auc_levels(seed, [(DROP_AT, 0.80), (40 - DROP_AT, 0.72), (N - 40, 0.80)])
    return history(values, versions=[1] * 40 + [2] * (N - 40))


@pytest.mark.parametrize("seed", range(3))
def test_retraining_restores_auc_reports_the_degraded_model(seed: int) -> None:
    perf = retrained_history(seed)
    report = analyze_degradation(perf)
    assert report.found
    assert report.model_version == 1
    assert report.current_model_version == 2
    assert abs((report.onset_index or 0) - DROP_AT) <= 1
    assert [m.model_version for m in report.models] == [1, 2]
    assert report.models[0].found and not report.models[1].found
    assert report.models[1].start == periods()[40]
    text = report.summary()
    assert text.startswith("no degradation of the current model v2")
    assert f"most recent degradation: model v1 from {report.onset_period}" in text
    assert f"until v2 replaced it in {periods()[40]}" in text
    # A model change starts a segment; the segments tile the analysed periods.
    assert [s.model_version for s in report.segments][-1] == 2
    assert periods()[40] in [s.start for s in report.segments]
    assert periods()[40] not in report.change_points
    assert sum(s.n_periods for s in report.segments) == N


def test_noise_dip_in_a_short_stint_needs_min_z() -> None:
    # Seed 47: the 12 periods of v2 end with a 1.5 s.d. dip the change-point search accepts.
    perf = retrained_history(47)
    assert analyze_degradation(perf, min_z=0.0).model_version == 2
    report = analyze_degradation(perf)
    assert report.model_version == 1 and abs((report.onset_index or 0) - DROP_AT) <= 1
    assert report.models[0].z is not None and report.models[0].z > 10


def test_current_model_degradation_is_preferred() -> None:
    # v1 degrades at 10, v2 (from 20) at 40: the answer is the current model's onset.
    values = auc_levels(8, [(10, 0.80), (10, 0.70), (20, 0.82), (N - 40, 0.75)])
    perf = history(values, versions=[1] * 20 + [2] * (N - 20))
    report = analyze_degradation(perf)
    assert report.model_version == 2
    assert abs((report.onset_index or 0) - 40) <= 1
    assert report.models[0].found and abs((report.models[0].onset_index or 0) - 10) <= 1
    assert report.summary().startswith("degradation of the current model v2 began in")


def test_whole_series_mode_skips_the_recovery() -> None:
    report = analyze_degradation(retrained_history(1), per_model=False)
    assert report.found and abs((report.onset_index or 0) - DROP_AT) <= 1
    assert report.model_version is None and len(report.models) == 1
    assert report.summary().startswith("degradation began in")


def test_missing_versions_are_filled_and_no_degradation_of_any_model() -> None:
    values = auc_levels(9, [(N, 0.78)])
    versions: list[int | None] = [None, None] + [3] * 20 + [None] * 5 + [4] * (N - 27)
    report = analyze_degradation(history(values, versions=versions))
    assert [m.model_version for m in report.models] == [3, 4]
    assert report.models[0].n_periods == 27
    assert not report.found
    assert report.summary().startswith("no degradation of any of the 2 served models (v3 from")


# -- drift attribution ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_drift_near_onset_reported_early_drift_not(seed: int) -> None:
    drift = drift_history(seed, {"temp": 29, "dewp": 5, "wind": None})
    report = analyze_degradation(history(planted(seed)), drift)
    names = [name for name, _, _ in report.drifting_features]
    assert names == ["temp"]
    _, change, start = report.drifting_features[0]
    assert start == periods()[29]
    assert change == pytest.approx(0.5, abs=0.05)
    assert f"drift started around then in temp (PSI +{change:.2g} from {periods()[29]})" in (
        report.summary()
    )


def test_drift_ranked_by_size_and_flags_respected() -> None:
    ids = periods()
    drift = drift_history(0, {"temp": 29, "humid": 31, "visib": 30})
    for i, p in enumerate(ids):
        drift[p]["humid"] += 0.7 if i >= 31 else 0.0  # +1.2 in all: strongest
        psi = drift[p]["visib"]
        drift[p]["visib"] = {"psi": psi, "drifted": False}  # never flagged: not attributed
    report = analyze_degradation(history(planted(0)), drift)
    assert [name for name, _, _ in report.drifting_features] == ["humid", "temp"]
    assert report.drifting_features[0][2] == ids[31]


def test_drift_given_but_none_near_onset_is_said() -> None:
    report = analyze_degradation(history(planted(2)), drift_history(2, {"dewp": 5}))
    assert report.drifting_features == ()
    assert "no feature's drift started within 2 period(s) of the onset" in report.summary()


def test_drift_restricted_to_the_degraded_models_stint() -> None:
    # PSI resets at the retraining (new reference); temp's drift at 29 is still attributed.
    drift = drift_history(3, {"temp": 29})
    for i, p in enumerate(periods()):
        if i >= 40:
            drift[p]["temp"] -= 0.5
    report = analyze_degradation(retrained_history(3), drift)
    assert report.model_version == 1
    assert [(n, s) for n, _, s in report.drifting_features] == [("temp", periods()[29])]


# -- conversion, serialisation, validation ----------------------------------------------------


def test_to_dict_is_json_ready() -> None:
    perf = retrained_history(0)
    perf[5] = PeriodPerformance(perf[5].period, math.nan, model_version=1)
    report = analyze_degradation(perf, drift_history(0, {"temp": 29}))
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    assert back["onset_period"] == report.onset_period
    assert back["drifting_features"][0]["feature"] == "temp"
    assert back["models"][1]["before_mean"] is None
    assert back["summary"] == report.summary()
    empty = analyze_degradation([])
    assert not empty.found and "no period with a usable AUC" in empty.summary()
    json.dumps(empty.to_dict(), allow_nan=False)


def test_validation() -> None:
    perf = history(planted(0))
    with pytest.raises(ValueError, match="unknown method"):
        analyze_degradation(perf, method="cusum")
    with pytest.raises(ValueError, match="min_drop"):
        analyze_degradation(perf, min_drop=-0.1)
    with pytest.raises(ValueError, match="duplicated period ids"):
        analyze_degradation([*perf, perf[0]])


# -- plot -------------------------------------------------------------------------------------


def test_plot_writes_png(tmp_path: Path) -> None:
    values = auc_levels(0, [(DROP_AT, 0.80), (40 - DROP_AT, 0.72), (N - 40, 0.80)])
    values[[12, 13, 35]] = np.nan
    perf = history(values, versions=[1] * 40 + [2] * (N - 40))
    report = analyze_degradation(perf, drift_history(0, {"temp": 29, "dewp": 5}))
    assert isinstance(report, DegradationReport) and report.found
    out = plot_degradation(
        perf,
        report,
        tmp_path / "sub" / "degradation.png",
        title="Production AUC per week",
        events=[(periods()[40], "retrained -> v2"), ("not-a-period", "ignored")],
    )
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 10_000
    empty = plot_degradation([], analyze_degradation([]), tmp_path / "empty.png", title="none")
    assert empty.read_bytes()[:8] == PNG_MAGIC
