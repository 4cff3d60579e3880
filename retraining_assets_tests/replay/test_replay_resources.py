"""What a replay's resources leave out: work whose result nothing in a replay reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from retraining_assets.replay import ReplayHarness, ReplayOptions


def _three_weeks(tmp_path: Path) -> Path:
    """A folder of three weekly one-row batches: enough to build a harness on."""
    source = tmp_path / "batches"
    source.mkdir()
    for start in ("2024-01-01", "2024-01-08", "2024-01-15"):
        pd.DataFrame({"x": [1]}).to_parquet(source / f"{start}.parquet")
    return source


def test_a_replay_neither_pushes_to_its_dvc_remote_nor_logs_mlflow_model_flavours(
    tmp_path: Path,
) -> None:
    """The replay turns both off for itself; the project's definitions keep them on."""
    from retraining_assets.definitions import defs

    source = _three_weeks(tmp_path)
    harness = ReplayHarness(source, "never", tmp_path / "work", ReplayOptions(initial=2))
    dvc, mlflow = harness.resources["dvc"], harness.resources["mlflow"]
    assert (dvc.push, mlflow.model_flavor) == (False, False)
    # Still the replay's own remote and registry, as configured otherwise.
    assert dvc.remote_url == str(harness.home / "dvc-remote")
    assert mlflow.registered_model_name == defs.resources["mlflow"].registered_model_name
    assert defs.resources["dvc"].push and defs.resources["mlflow"].model_flavor
    # A kept state is for looking at afterwards: its registry holds loadable MLflow models.
    kept = ReplayOptions(initial=2, keep_state=True)
    kept_harness = ReplayHarness(source, "never", tmp_path / "kept", kept)
    assert kept_harness.resources["mlflow"].model_flavor


def test_a_schedule_tick_builds_its_resources_on_the_replay_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No throw-away Dagster instance per tick (it cost ~0.1 s, ten times the tick itself)."""
    import dagster as dg

    source = _three_weeks(tmp_path)
    harness = ReplayHarness(source, "weekly", tmp_path / "work", ReplayOptions(initial=2))
    with harness._new_instance() as instance:
        harness.instance = instance

        def no_ephemeral(*args, **kwargs):
            raise AssertionError("a schedule tick made an ephemeral instance")

        monkeypatch.setattr(dg.DagsterInstance, "ephemeral", no_ephemeral)
        found = harness._schedule_requests(
            harness.resources, harness.clock("2024-01-01"), harness.clock("2024-01-08")
        )
    # Nothing retrained yet, so the fallback fires on the week's tick.
    assert [cause for cause, _ in found] == ["weekly"]
