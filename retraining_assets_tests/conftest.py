"""Shared fixtures: an isolated project state (Dagster, MLflow store, DVC repo, batches)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Keep LightGBM/OpenMP and BLAS from spinning threads on both cores in tests.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow SQLite store, created once per session (migration takes ~10 s)."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@dataclass
class Project:
    """Paths of one isolated project state."""

    home: Path
    batches: Path

    @property
    def production(self) -> Path:
        return self.home / "production"


@pytest.fixture
def project(
    tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """Point the project's state and batch folder at a fresh temporary directory."""
    home = tmp_path / "var"
    (home / "mlflow").mkdir(parents=True)
    shutil.copyfile(mlflow_template, home / "mlflow" / "mlflow.db")
    batches = tmp_path / "batches"
    batches.mkdir()
    monkeypatch.setenv("RETRAINING_HOME", str(home))
    monkeypatch.setenv("RETRAINING_BATCHES_DIR", str(batches))
    yield Project(home=home, batches=batches)
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()
