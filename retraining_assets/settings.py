"""Dataset schema and policy defaults, in one place.

Every default is defined here once. The Dagster layer turns them into ``dg.Config`` fields so they
can be changed per run from the launchpad, and the core policies (``TrainParams``, ``GatePolicy``,
``DriftPolicy``, the shadow decision, the concept-drift detector) take theirs from here;
``retraining_assets_tests/dagster/test_config_defaults.py`` fails if a copy drifts apart.
Everything here is plain data: no environment reads and no I/O at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# The dataset schemas live in their own module: the DVC stage that builds the demo batches depends
# on it, and on nothing else here, so changing a threshold does not invalidate the data.
from retraining_assets.schemas import FLIGHTS_SCHEMA, DatasetSchema

__all__ = ["FLIGHTS_SCHEMA", "DatasetSchema"]


#: Name of the column that marks each row of ``training_dataset`` as ``train`` or ``test``.
SPLIT_COLUMN = "__split__"
#: Name of the column that records which batch each row of ``training_dataset`` came from.
BATCH_COLUMN = "__batch__"
#: Name of the optional sample-weight column of ``training_dataset``.
WEIGHT_COLUMN = "__weight__"


#: Where ``candidate_model`` trains: in the run process, or on the DaskResource's cluster.
Trainer = Literal["local", "dask"]
#: How a candidate that passes the gate reaches production: at once, or after a shadow period.
PromotionMode = Literal["direct", "shadow"]


@dataclass(frozen=True)
class TrainingDefaults:
    """LightGBM parameters: ``CandidateModelConfig``'s defaults; ``TrainParams`` extends it."""

    seed: int = 42
    num_threads: int = 1
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.9
    bagging_fraction: float = 0.9
    bagging_freq: int = 1
    lambda_l2: float = 1.0


DEFAULT_TRAINING = TrainingDefaults()


@dataclass(frozen=True)
class Policy:
    """Defaults of the chain's run-time knobs; each is a ``dg.Config`` field of the same name.

    ``training_dataset``: ``window_batches`` ... ``half_life_days``; ``candidate_model``:
    ``trainer`` (its hyper-parameters are :class:`TrainingDefaults`); ``evaluation_report`` and
    ``core.promotion.GatePolicy``: ``min_relative_auc`` ... ``shadow_batches``; the shadow
    decision (``ShadowDecisionConfig``, ``core.promotion.decide_shadow``): the same
    ``min_relative_auc`` and ``shadow_min_positives``.
    """

    window_batches: int = 8
    test_batches: int = 1
    strategy: str = "rolling"  # one of core.strategies.STRATEGIES
    half_life_days: float = 28.0
    trainer: Trainer = "local"
    min_relative_auc: float = 0.99
    max_p95_latency_ms: float = 100.0
    min_baseline_auc_margin: float = 0.02
    min_test_positives: int = 30
    latency_calls: int = 500
    mode: PromotionMode = "direct"
    shadow_batches: int = 2
    shadow_min_positives: int = 30


DEFAULT_POLICY = Policy()

#: Where ``make mlflow-ui`` serves the MLflow UI; ``$RETRAINING_MLFLOW_UI_URL`` overrides it.
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"
#: Where ``make dev`` serves the Dagster UI; ``$RETRAINING_DAGSTER_UI_URL`` overrides it.
DEFAULT_DAGSTER_UI = "http://127.0.0.1:3000"

#: Environment variable naming the folder that holds run-time state (Dagster home, MLflow store,
#: DVC store, production pointer). Read only when a path is needed, never at import.
HOME_ENV = "RETRAINING_HOME"
#: Environment variable naming the folder of incoming batch files.
BATCHES_ENV = "RETRAINING_BATCHES_DIR"


def project_root() -> Path:
    """The repository root (the folder holding ``pyproject.toml``)."""
    return Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """Folder for run-time state: ``$RETRAINING_HOME`` or ``<project>/var``."""
    value = os.environ.get(HOME_ENV)
    return Path(value).resolve() if value else project_root() / "var"


def batches_dir() -> Path:
    """Folder of incoming batch files: ``$RETRAINING_BATCHES_DIR`` or ``<project>/data/batches``."""
    value = os.environ.get(BATCHES_ENV)
    return Path(value).resolve() if value else project_root() / "data" / "batches"


@dataclass(frozen=True)
class TriggerPolicy:
    """When retraining starts by itself.

    Every field can be overridden without code in the ``triggers:`` section of the YAML file
    named by ``$RETRAINING_CONFIG`` (default ``<project>/retraining.yaml``; optional).

    Attributes:
        psi_threshold: A feature whose PSI exceeds this has drifted (0.1 moderate, 0.2 major).
        ks_alpha: Significance level of the KS / chi-square tests, after correction.
        ks_min_d: Effect-size floor: KS flags negligible shifts at large n, so a feature is
            KS-drifted only if its D is at least this as well.
        correction: Multiple-testing correction over features: none, bonferroni, holm, bh.
        drift_rule: Dataset verdict: ``matters`` (default: per-feature PSI thresholds calibrated
            on the training batches, importance-weighted, calendar fields left out; see
            ``core/drift_matters.py``), ``any_psi`` (some PSI > psi_threshold), ``share`` or
            ``importance`` (importance-weighted share of PSI/KS-drifted features).
        share_threshold: Share of drifted features for the share / importance / matters rules.
        drift_quantile: ``matters``: quantile of the training batches' leave-one-out PSI.
        drift_margin: ``matters``: a feature's threshold is max(psi_threshold, margin x that).
        drift_importance_share: ``matters``: gain-importance share of the features past their
            thresholds that makes the batch drifted.
        drift_exclude_calendar: ``matters``: leave calendar fields (month, day, ...) out.
        drift_correlation: ``matters``: a drifted feature also counts the importance of the
            features it correlates with at least this strongly (|Spearman| in the training
            rows; gain importance is split arbitrarily between such features); 0 turns it off.
        drift_exclude: Features left out of drift monitoring (e.g. calendar features such as
            ``month``, which leave the reference range by construction).
        auc_floor: Absolute AUC on labelled feedback below which the model is degraded.
        relative_auc_floor: Degraded also if AUC < this x the AUC it had at promotion.
        min_labelled_rows: Fewer labelled rows than this: no performance verdict.
        estimated_relative_auc_floor: Label-free early warning: degraded if the AUC estimated
            from calibrated scores (CBPE) < this x the AUC on the model's reference test data.
        estimated_auc_floor: Label-free early warning: degraded also if the estimated AUC <
            this, whatever the reference (the effective floor is the higher of the two, as
            ``auc_floor`` is for labelled feedback); 0 turns it off.
        estimated_min_rows: Fewer rows in a batch than this: no estimated-performance verdict.
        concept_detector: Error-stream change detector: adwin or page_hinkley.
        concept_delta: ADWIN confidence (smaller: fewer false alarms, later detection).
        concept_ph_delta: Page-Hinkley: rise of the mean error tolerated per row.
        concept_ph_threshold: Page-Hinkley: alarm threshold on the cumulative deviation.
        cooldown_hours: Soft triggers do not start a retraining within this many hours of one.
        schedule_cooldown_hours: The weekly schedule skips if a retraining ran this recently.
        cron: Fallback schedule (UTC) when set in the file; unset, one tick per batch period.
    """

    psi_threshold: float = 0.2
    ks_alpha: float = 0.05
    ks_min_d: float = 0.1
    correction: str = "holm"
    drift_rule: str = "matters"
    share_threshold: float = 0.3
    drift_quantile: float = 0.75
    drift_margin: float = 1.5
    drift_importance_share: float = 0.1
    drift_exclude_calendar: bool = True
    drift_correlation: float = 0.7
    drift_exclude: tuple[str, ...] = ()
    auc_floor: float = 0.60
    relative_auc_floor: float = 0.95
    min_labelled_rows: int = 200
    estimated_relative_auc_floor: float = 0.95
    estimated_auc_floor: float = 0.60
    estimated_min_rows: int = 200
    concept_detector: str = "adwin"
    concept_delta: float = 0.002
    concept_ph_delta: float = 0.01
    concept_ph_threshold: float = 50.0
    cooldown_hours: float = 24.0
    schedule_cooldown_hours: float = 72.0
    cron: str = "0 3 * * 1"


DEFAULT_TRIGGERS = TriggerPolicy()
CONFIG_ENV = "RETRAINING_CONFIG"


def config_file() -> Path:
    """The optional project configuration file: ``$RETRAINING_CONFIG`` or ``retraining.yaml``."""
    value = os.environ.get(CONFIG_ENV)
    return Path(value).resolve() if value else project_root() / "retraining.yaml"


def load_config(path: Path | None = None) -> dict:
    """The project configuration file as a dict (empty when there is none)."""
    import yaml

    path = path or config_file()
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def load_trigger_policy(path: Path | None = None) -> TriggerPolicy:
    """Defaults overridden by the ``triggers:`` section of the configuration file, if any.

    Raises:
        ValueError: on an unknown key, naming it and the file.
    """
    import dataclasses

    path = path or config_file()
    section = load_config(path).get("triggers") or {}
    known = {f.name for f in dataclasses.fields(TriggerPolicy)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"{path}: unknown trigger settings {unknown}; known: {sorted(known)}")
    # YAML gives lists; the policy is frozen and hashable.
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
    return dataclasses.replace(DEFAULT_TRIGGERS, **values)
