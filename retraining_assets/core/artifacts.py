"""Small records that flow between assets: where the bytes are and which version they are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatasetRef:
    """A training dataset version: its DVC md5 (the data version) and what it was built from."""

    md5: str
    path: str
    n_rows: int
    n_train: int
    n_test: int
    train_batches: tuple[str, ...]
    test_batches: tuple[str, ...]
    strategy: str = "rolling"
    validated: bool = False
    half_life_days: float | None = None
    init_from_version: int | None = None


@dataclass(frozen=True)
class ModelRef:
    """A trained model version: its text-model bytes (DVC md5) and its MLflow identity."""

    md5: str
    path: str
    dataset_md5: str
    mlflow_run_id: str
    mlflow_model_uri: str
    registered_name: str
    registered_version: str
    params: dict[str, Any] = field(default_factory=dict)
    best_iteration: int = 0
    train_seconds: float = 0.0
    strategy: str = "rolling"
    train_batches: tuple[str, ...] = ()
    test_batches: tuple[str, ...] = ()
    init_from_version: int | None = None


@dataclass(frozen=True)
class EvaluationReport:
    """Candidate vs production on one test set, with the gate's verdict."""

    candidate: dict[str, Any]
    production: dict[str, Any] | None
    baseline: dict[str, Any]
    production_version: int | None
    promote: bool
    against: str
    reasons: tuple[str, ...]
    test_batches: tuple[str, ...]
    roc_plot: str | None  # None: not drawn (``GateConfig.roc_plot`` off, as in a replay)
    mode: str = "direct"
    shadow_batches: int = 0
    delong: dict[str, Any] | None = None
