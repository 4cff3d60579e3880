"""The monitoring store: typed artifacts in the state store, the same from a folder and from S3."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retraining_assets.core.drift import build_reference
from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.monitoring_store import MonitoringDataError, MonitoringStore
from retraining_assets.storage import InvalidKey, KeyNotFound, S3Store, open_store

MD5 = "0123456789abcdef0123456789abcdef"


@pytest.fixture(params=["local", "s3"])
def monitoring(request: pytest.FixtureRequest, tmp_path: Path) -> MonitoringStore:
    if request.param == "local":
        return MonitoringStore(open_store(tmp_path / "state").child("monitoring"))
    request.getfixturevalue("s3_env")
    bucket = f"m{abs(hash(str(tmp_path))) % 10**9}"
    root = open_store(f"s3://{bucket}/state")
    assert isinstance(root, S3Store)
    root.client.create_bucket(Bucket=bucket)
    return MonitoringStore(root.child("monitoring"))


def test_reference_profile_round_trip(monitoring: MonitoringStore) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], size=500)})
    profile = build_reference(frame, ["x"], ["c"])
    assert monitoring.get_profile(MD5, "abcd1234") is None
    key = monitoring.put_profile(MD5, "abcd1234", profile)
    assert key == f"profiles/{MD5}-abcd1234.npz"
    loaded = monitoring.get_profile(MD5, "abcd1234")
    assert loaded is not None and loaded.features == ["x", "c"]
    assert loaded.to_bytes() == profile.to_bytes()
    assert monitoring.store.list() == [key]


def test_reference_correlations_round_trip(monitoring: MonitoringStore) -> None:
    correlations = {"temp": {"dewp": 0.77}, "dewp": {"temp": 0.77}}
    assert monitoring.get_correlations(MD5, "abcd1234") is None
    key = monitoring.put_correlations(MD5, "abcd1234", correlations)
    assert key == f"profiles/{MD5}-abcd1234.correlations.json"
    assert monitoring.get_correlations(MD5, "abcd1234") == correlations
    # A torn copy reads as not built: the asset recomputes it.
    monitoring.store.put(key, b"{not json")
    assert monitoring.get_correlations(MD5, "abcd1234") is None


def test_error_stream_round_trip(monitoring: MonitoringStore) -> None:
    errors = np.linspace(0, 1, 7)
    key = monitoring.put_errors("2024-03-04", 3, errors)
    assert key == "errors/2024-03-04.v3.npy"
    assert "/state/monitoring/errors/2024-03-04.v3.npy" in monitoring.location_of(key)
    np.testing.assert_allclose(monitoring.errors_at(key), errors, rtol=1e-6)
    np.testing.assert_allclose(monitoring.get_errors("2024-03-04", 3), errors, rtol=1e-6)
    with pytest.raises(KeyNotFound):
        monitoring.get_errors("2024-03-04", 4)
    # Only error-stream keys: the metadata cannot send the sensor to another artifact.
    with pytest.raises(MonitoringDataError, match="not an error-stream key"):
        monitoring.errors_at(f"shadow/{MD5}/2024-03-04.npz")


def test_labelled_scores_and_test_split_round_trip(monitoring: MonitoringStore) -> None:
    from retraining_assets.core.performance_estimation import LabelledScores

    week = LabelledScores(
        y=np.array([0.0, 1.0, 1.0]),
        scores=np.array([0.1, 0.7, 0.4]),
        batch_id="2024-03-04",
        period_start=pd.Timestamp("2024-03-04"),
    )
    key = monitoring.put_labelled_scores(3, week)
    assert key == "scores/2024-03-04.v3.npz" == monitoring.labelled_scores_key("2024-03-04", 3)
    again = monitoring.labelled_scores_at(key)
    np.testing.assert_array_equal(again.scores, week.scores)
    assert (again.batch_id, again.period_start) == ("2024-03-04", pd.Timestamp("2024-03-04"))
    with pytest.raises(KeyNotFound):
        monitoring.labelled_scores_at("scores/2024-03-11.v3.npz")
    # Only labelled-scores keys: a verdict cannot send the estimate to another artifact.
    with pytest.raises(MonitoringDataError, match="not a labelled-scores key"):
        monitoring.labelled_scores_at("errors/2024-03-04.v3.npy")
    with pytest.raises(InvalidKey):
        monitoring.labelled_scores_key("../x", 3)
    assert monitoring.get_reference_scores(MD5) is None
    test_key = monitoring.put_reference_scores(MD5, LabelledScores(y=week.y, scores=week.scores))
    assert test_key == f"calibrators/{MD5}.test-split.npz"
    reference = monitoring.get_reference_scores(MD5)
    assert reference is not None and reference.rows == 3 and reference.period_start is None
    monitoring.store.put(test_key, b"torn")
    with pytest.raises(MonitoringDataError, match="unreadable"):
        monitoring.get_reference_scores(MD5)


def test_shadow_scores_put_list_get(monitoring: MonitoringStore) -> None:
    assert monitoring.shadow_batches(MD5) == []
    for batch, n in (("2024-03-11", 3), ("2024-03-04", 2)):
        monitoring.put_shadow(
            MD5, batch, y=np.ones(n), champion=np.full(n, 0.5), challenger=np.full(n, 0.7)
        )
    monitoring.put_shadow("f" * 32, "2024-03-04", y=[0], champion=[0.1], challenger=[0.2])
    assert monitoring.shadow_batches(MD5) == ["2024-03-04", "2024-03-11"]
    scores = monitoring.get_shadow(MD5, "2024-03-11")
    assert scores.batch_id == "2024-03-11"
    np.testing.assert_array_equal(scores.challenger, [0.7, 0.7, 0.7])
    assert [s.batch_id for s in monitoring.all_shadow(MD5)] == ["2024-03-04", "2024-03-11"]
    with pytest.raises(ValueError, match="lengths y=2, champion=2, challenger=1"):
        monitoring.put_shadow(MD5, "x", y=[0, 1], champion=[0.1, 0.2], challenger=[0.3])


@pytest.mark.parametrize("bad", ["../../x", "/abs", "a/b", "..", ""])
def test_names_with_path_tricks_are_refused(monitoring: MonitoringStore, bad: str) -> None:
    with pytest.raises(InvalidKey):
        monitoring.put_errors(bad, 1, np.zeros(2))
    with pytest.raises(InvalidKey):
        monitoring.put_shadow(MD5, bad, y=[0], champion=[0], challenger=[0])
    with pytest.raises(InvalidKey):
        monitoring.shadow_batches(bad)
    with pytest.raises(InvalidKey):
        monitoring.get_profile(bad, "k")
    assert monitoring.store.list() == []


def test_negative_or_non_integer_versions_are_refused(monitoring: MonitoringStore) -> None:
    for version in (-1, True, "1"):
        with pytest.raises(ValueError, match="production version"):
            monitoring.errors_key("2024-03-04", version)  # type: ignore[arg-type]


def test_torn_or_pickled_records_are_refused_with_the_key(monitoring: MonitoringStore) -> None:
    """Nothing read back may execute code: an object array needs pickle and is refused."""
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    monitoring.store.put("errors/2024-03-04.v1.npy", pickled.getvalue())
    with pytest.raises(
        MonitoringDataError,
        match=r"errors/2024-03-04\.v1\.npy in .* is unreadable .*allow_pickle",
    ):
        monitoring.get_errors("2024-03-04", 1)
    monitoring.store.put("errors/2024-03-11.v1.npy", b"\x93NUMPY torn")
    with pytest.raises(MonitoringDataError, match="unreadable"):
        monitoring.get_errors("2024-03-11", 1)
    monitoring.store.put(f"shadow/{MD5}/2024-03-04.npz", b"PK\x03\x04 torn")
    with pytest.raises(MonitoringDataError, match="unreadable"):
        monitoring.get_shadow(MD5, "2024-03-04")
    foreign = io.BytesIO()
    np.savez(foreign, y=np.zeros(2))
    monitoring.store.put(f"shadow/{MD5}/2024-03-11.npz", foreign.getvalue())
    with pytest.raises(MonitoringDataError, match=r"lacks arrays \['champion', 'challenger'\]"):
        monitoring.get_shadow(MD5, "2024-03-11")
    monitoring.store.put(f"profiles/{MD5}-k.npz", b"not an archive")
    with pytest.raises(MonitoringDataError, match="not a readable reference profile"):
        monitoring.get_profile(MD5, "k")


def test_resource_defaults_to_the_home_folder_and_follows_the_state_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAINING_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RETRAINING_STATE_URL", raising=False)
    local = MonitoringStoreResource().open()
    key = local.put_errors("b1", 1, np.zeros(3))
    expected = tmp_path / "home" / "monitoring" / "errors" / "b1.v1.npy"
    assert expected.is_file() and local.location_of(key) == str(expected)
    monkeypatch.setenv("RETRAINING_STATE_URL", "s3://bucket/state")
    remote = MonitoringStoreResource(endpoint_url="http://127.0.0.1:1").open()
    assert remote.location == "s3://bucket/state/monitoring at http://127.0.0.1:1"
    assert remote.location_of(key) == (
        "s3://bucket/state/monitoring/errors/b1.v1.npy at http://127.0.0.1:1"
    )


def test_model_keyed_entries_are_shared_and_per_batch_ones_are_not(tmp_path: Path) -> None:
    """Two policies' stores with one shared area: a model's profile, thresholds and calibrator
    built by one are read (and copied) by the other; another model misses; per-batch records
    (error streams of a version) stay each policy's own."""
    from retraining_assets.core.performance_estimation import LabelledScores, fit_calibrator

    shared = tmp_path / "shared"
    first = MonitoringStoreResource(url=str(tmp_path / "a"), shared_url=str(shared)).open()
    second = MonitoringStoreResource(url=str(tmp_path / "b"), shared_url=str(shared)).open()
    rng = np.random.default_rng(0)
    profile = build_reference(pd.DataFrame({"x": rng.normal(size=200)}), ["x"], [])
    first.put_profile(MD5, "k", profile)
    first.put_thresholds(MD5, "k", 0.99, {"x": 0.25})
    first.put_correlations(MD5, "k", {"x": {}})
    calibrator = fit_calibrator(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.1, 0.8, 0.6, 0.3]))
    first.put_calibrator(MD5, calibrator)
    reference = LabelledScores(y=np.array([0.0, 1.0]), scores=np.array([0.2, 0.9]))
    first.put_reference_scores(MD5, reference)
    first.put_errors("b1", 1, np.zeros(3))

    hit = second.get_profile(MD5, "k")
    assert hit is not None and hit.to_bytes() == profile.to_bytes()
    assert second.get_thresholds(MD5, "k", 0.99) == {"x": 0.25}
    assert second.get_correlations(MD5, "k") == {"x": {}}
    got = second.get_calibrator(MD5)
    assert got is not None and got.to_bytes() == calibrator.to_bytes()
    scores = second.get_reference_scores(MD5)
    assert scores is not None and scores.to_bytes() == reference.to_bytes()
    # Copied into the second policy's own area: the same bytes as if built there.
    assert sorted(second.store.list()) == sorted(k for k in first.store.list() if "errors" not in k)
    for key in second.store.list():
        assert second.store.get(key) == first.store.get(key)
    # Another model, another quantile, another feature set: misses.
    other = "f" * 32
    assert second.get_profile(other, "k") is None and second.get_calibrator(other) is None
    assert second.get_thresholds(MD5, "k", 0.95) is None
    assert second.get_profile(MD5, "other") is None
    with pytest.raises(KeyNotFound):
        second.get_errors("b1", 1)
    # Without a shared area nothing is shared.
    alone = MonitoringStoreResource(url=str(tmp_path / "c")).open()
    assert alone.get_profile(MD5, "k") is None and alone.get_calibrator(MD5) is None


def test_policies_sharing_an_area_build_a_models_entries_one_at_a_time(
    tmp_path: Path, await_lock_waiter
) -> None:
    """While one policy builds a model's calibrator under ``building``, the other waits, then
    finds it in the shared area instead of fitting it again."""
    from retraining_assets.core.performance_estimation import fit_calibrator

    shared = tmp_path / "shared"
    first = MonitoringStoreResource(url=str(tmp_path / "a"), shared_url=str(shared)).open()
    second = MonitoringStoreResource(url=str(tmp_path / "b"), shared_url=str(shared)).open()
    calibrator = fit_calibrator(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.1, 0.8, 0.6, 0.3]))
    found: list[bytes | None] = []

    def other_policy() -> None:
        with second.building(f"{MD5}-calibrator"):
            got = second.get_calibrator(MD5)
            found.append(None if got is None else got.to_bytes())

    thread = threading.Thread(target=other_policy)
    with first.building(f"{MD5}-calibrator"):
        assert first.get_calibrator(MD5) is None
        thread.start()
        await_lock_waiter(shared / ".locks" / "building" / f"{MD5}-calibrator.lock")
        first.put_calibrator(MD5, calibrator)
    thread.join(timeout=5)
    assert found == [calibrator.to_bytes()]
    assert shared.joinpath(".locks").is_dir() and ".locks" not in str(open_store(shared).list())
    # A view of a store locks under its prefix, in the folder's hidden (never listed) .locks.
    with open_store(shared).child("monitoring").lock("x"):
        assert (shared / ".locks" / "monitoring" / "x.lock").exists()
    # No shared area: nothing to wait for.
    with MonitoringStoreResource(url=str(tmp_path / "c")).open().building("x"):
        pass


def test_drift_chart_is_rendered_in_memory(tmp_path: Path, monkeypatch) -> None:
    from retraining_assets.core.drift import DriftPolicy, compute_drift
    from retraining_assets.core.monitoring import plot_drift

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"x": rng.normal(size=400)})
    result = compute_drift(
        build_reference(reference, ["x"], []),
        pd.DataFrame({"x": rng.normal(1.0, size=400)}),
        DriftPolicy(),
    )
    png = plot_drift(result, title="t", psi_threshold=0.2)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert list(tmp_path.iterdir()) == []  # nothing written to the working directory
