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
