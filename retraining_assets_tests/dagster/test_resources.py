"""Resources against the real stores of an isolated project state."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from retraining_assets.defs.resources import MlflowResource


def test_log_to_run_adds_metrics_and_tags_and_skips_missing(project) -> None:
    """Metrics and tags land on a finished run in one call; None and NaN metrics are left out."""
    resource = MlflowResource()
    with resource.start_run("probe", tags={"cause": "test"}) as run:
        run_id = run.info.run_id
    resource.log_to_run(
        run_id,
        {"test_auc": 0.75, "baseline_auc": math.nan, "p95_latency_ms": None},  # type: ignore[dict-item]
        {"promotion": "rejected", "version": 3},
    )
    data = resource.client().get_run(run_id).data
    assert data.metrics == {"test_auc": 0.75}
    assert data.tags["promotion"] == "rejected"
    assert data.tags["version"] == "3"
    assert data.tags["cause"] == "test"
    resource.log_to_run(run_id, {}, {})  # nothing to log is not an error


def test_copied_state_folder_keeps_mlflow_artifacts_under_the_copy(
    project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copied ``var/`` logs new artifacts under the copy and reads the old ones from it."""
    import shutil
    from urllib.parse import urlparse

    import mlflow

    original = project.home
    with MlflowResource().start_run("before the copy", tags={}) as first:
        mlflow.log_text("first", "note.txt")
    copy = tmp_path / "elsewhere" / "var"
    shutil.copytree(original, copy)
    monkeypatch.setenv("RETRAINING_HOME", str(copy))

    moved = MlflowResource()
    with moved.start_run("after the copy", tags={}) as second:
        mlflow.log_text("second", "note.txt")

    client = moved.client()
    root = copy / "mlflow" / "artifacts"
    for run, text in ((second, "second"), (first, "first")):
        where = Path(urlparse(client.get_run(run.info.run_id).info.artifact_uri).path)
        assert where.is_relative_to(root), where
        assert (where / "note.txt").read_text() == text
    assert client.get_experiment_by_name(moved.experiment_name).artifact_location == root.as_uri()
    assert not (original / "mlflow" / "artifacts" / second.info.run_id).exists()
    # The original folder's store still names its own root.
    kept = mlflow.MlflowClient(f"sqlite:///{original / 'mlflow' / 'mlflow.db'}")
    experiment = kept.get_experiment_by_name(moved.experiment_name)
    assert experiment.artifact_location == (original / "mlflow" / "artifacts").as_uri()


def _booster():
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (x["a"] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=5), x.head(5)


def test_without_the_model_flavour_the_text_file_is_registered_with_the_same_numbering(
    project, tmp_path: Path
) -> None:
    """``model_flavor`` off: same run contents and version numbers, the text file registered."""
    from urllib.parse import urlparse

    booster, example = _booster()
    model_file = tmp_path / "candidate_model.txt"
    booster.save_model(str(model_file))
    logged = {
        "tags": {"cause": "test"},
        "params": [{"seed": 0, "strategy": "rolling"}, {"n_train": 200, "data_version": "abc"}],
        "metrics": {"training_seconds": 0.5, "best_iteration": 5},
        "booster": booster,
        "example": example,
        "pip_requirements": ["lightgbm"],
        "model_file": model_file,
    }
    flavour, plain = MlflowResource(), MlflowResource(model_flavor=False)
    full_run, full_uri, first = flavour.log_trained_model("full", **logged)  # type: ignore[arg-type]
    run_id, uri, version = plain.log_trained_model("plain", **logged)  # type: ignore[arg-type]
    assert [first, version] == ["1", "2"]
    client = plain.client()
    full, lite = client.get_run(full_run).data, client.get_run(run_id).data
    expected = {"seed": "0", "strategy": "rolling", "n_train": "200", "data_version": "abc"}
    assert lite.params == full.params == expected
    assert lite.metrics == full.metrics == {"training_seconds": 0.5, "best_iteration": 5.0}
    assert full_uri.startswith("models:/")
    assert uri == f"runs:/{run_id}/model"
    registered = client.get_model_version(plain.registered_model_name, version)
    assert registered.run_id == run_id
    logged_file = Path(urlparse(registered.source).path) / model_file.name
    assert logged_file.read_bytes() == model_file.read_bytes()
    # Aliases and tags work on such a version as on any other.
    plain.set_alias(plain.registered_model_name, "champion", version)
    plain.tag_model_version(plain.registered_model_name, version, "production v1")


def test_the_model_flavour_off_needs_the_model_file(project) -> None:
    booster, example = _booster()
    with pytest.raises(ValueError, match="model_file"):
        MlflowResource(model_flavor=False).log_trained_model(
            "plain", {}, [], {}, booster, example, []
        )


def test_dvc_push_off_keeps_tracked_files_in_the_cache_only(tmp_path: Path) -> None:
    """``push`` off: same md5 and cache copy, nothing in the remote; on (default): pushed."""
    import pandas as pd

    from retraining_assets.defs.resources import DvcResource

    where = {"repo_dir": str(tmp_path / "store"), "remote_url": str(tmp_path / "remote")}
    quiet, pushing = DvcResource(**where, push=False), DvcResource(**where)
    assert pushing.push
    frame = pd.DataFrame({"x": [1, 2, 3]})
    _, kept = quiet.write_tracked(frame, "artifacts/one.parquet")
    store = quiet.store()
    assert store.cache_path(kept).exists()
    assert not store.remote_path(kept).exists()  # type: ignore[union-attr]
    pd.testing.assert_frame_equal(quiet.read_dataset(kept), frame)
    path, pushed = pushing.write_tracked(frame.assign(x=[4, 5, 6]), "artifacts/two.parquet")
    assert store.remote_path(pushed).exists()  # type: ignore[union-attr]
    # The same bytes tracked without a push have the same md5 (the data version).
    copy = path.with_name("three.parquet")
    copy.write_bytes(path.read_bytes())
    assert quiet.track(copy).md5 == pushed
