"""Production changes outside the retraining chain.

Rollback, the decision on a challenger after its shadow period, and the metadata every
production change records (shared with ``production_model``).
"""

import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from retraining_assets.core.promotion import (
    Candidate,
    ChangeResult,
    Lineage,
    ProductionChange,
    change_production,
    shadow_verdict,
)
from retraining_assets.core.registry import (
    ProductionRecord,
    ProductionStore,
    RegistryError,
    reconcile_champion_alias,
)
from retraining_assets.defs.alerts import AlertResource
from retraining_assets.defs.executor import local_in_process_executor
from retraining_assets.defs.resources import MlflowResource, ProductionResource
from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.settings import DEFAULT_POLICY
from retraining_assets.storage import StoreError

PRODUCTION_KEY = dg.AssetKey("production_model")


def history_table(store: ProductionStore) -> str:
    """Markdown table of every production change, newest first."""
    rows = [
        f"| {r.version} | {r.action} | `{r.model_md5[:10]}` | `{(r.dataset_md5 or '')[:10]}` | "
        f"{r.extra.get('strategy', '')} | {r.metrics.get('auc', float('nan')):.4f} | "
        f"{r.created_at} | {r.reason[:80]} |"
        for r in reversed(store.history())
    ]
    header = "| version | action | model md5 | data md5 | strategy | AUC | at | reason |\n"
    return header + "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)


def production_metadata(
    store: ProductionStore, record: ProductionRecord, mlflow: MlflowResource
) -> dict[str, Any]:
    """Lineage of one production version, as Dagster metadata."""
    lineage = Lineage.from_extra(record.extra)
    metadata: dict[str, Any] = {
        "model_version": dg.MetadataValue.int(record.version),
        "action": record.action,
        "reason": record.reason,
        "dvc/md5": record.model_md5,
        "dvc/dataset_md5": record.dataset_md5 or "",
        "mlflow/run_id": record.mlflow_run_id or "",
        "mlflow/model_uri": record.mlflow_model_uri or "",
        "mlflow/registered_version": (
            f"{mlflow.registered_model_name} v{record.registered_version} (alias champion)"
        ),
        "lineage/strategy": str(lineage.strategy),
        "lineage/train_batches": ", ".join(lineage.train_batches),
        "lineage/test_batches": ", ".join(lineage.test_batches),
        "lineage/dagster_run_id": str(lineage.dagster_run_id),
        "lineage/restore_data": f"retraining restore-data {record.dataset_md5} --out data.parquet",
        "auc": dg.MetadataValue.float(float(record.metrics.get("auc", float("nan")))),
        "pointer": dg.MetadataValue.path(store.version_location(record)),
        "model_path": dg.MetadataValue.path(store.model_location(record)),
        "history": dg.MetadataValue.md(history_table(store)),
    }
    if lineage.init_from_version is not None:
        metadata["lineage/continued_from_version"] = int(lineage.init_from_version)
    if record.mlflow_run_id:
        metadata["mlflow/run_url"] = dg.MetadataValue.url(mlflow.run_url(record.mlflow_run_id))
    if record.action == "rollback":
        metadata["rollback/restores_version"] = int(lineage.restores_version or 0)
        metadata["rollback/rolled_back_from"] = int(lineage.rolled_back_from or 0)
    return metadata


@contextlib.contextmanager
def refused_as_failure(prefix: str = "") -> Iterator[None]:
    """Turn the production store's refusal (or unreachability) into a one-line ``dg.Failure``."""
    try:
        yield
    except (RegistryError, StoreError) as exc:
        raise dg.Failure(description=f"{prefix}: {exc}" if prefix else str(exc)) from None


def apply_change(
    store: ProductionStore, change: ProductionChange, mlflow: MlflowResource, refused: str
) -> ChangeResult:
    """:func:`~retraining_assets.core.promotion.change_production`, the alias moved in MLflow.

    Raises:
        dg.Failure: ``refused: <why>`` if the store refused the change; nothing changed then.
    """
    with refused_as_failure(refused):
        return change_production(store, change, lambda record: move_champion_alias(mlflow, record))


def production_event(
    store: ProductionStore, result: ChangeResult, mlflow: MlflowResource, description: str
) -> dg.AssetMaterialization:
    """The materialization of ``production_model`` that records a change made outside the chain."""
    record = result.record
    return dg.AssetMaterialization(
        asset_key=PRODUCTION_KEY,
        description=description,
        metadata={
            **production_metadata(store, record, mlflow),
            "mlflow/champion_alias": result.champion_alias,
        },
        tags={"dagster/data_version": record.model_md5},
    )


def move_champion_alias(mlflow: MlflowResource, record: ProductionRecord) -> str:
    """Point MLflow's ``champion`` alias at the registered version of ``record``, after the commit.

    The version object already serves, so a failure here does not fail the change: the alias is
    derived state, repaired by :func:`reconcile_alias` at the start of the next run.

    Returns:
        What happened, for the ``mlflow/champion_alias`` metadata.
    """
    if not record.registered_version:
        return "no registered version"
    try:
        mlflow.client().set_registered_model_alias(
            mlflow.registered_model_name, "champion", record.registered_version
        )
    except Exception as exc:  # MLflow down: production already changed, the next run repairs it
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        return f"NOT moved ({first_line}); repaired by the next production run"
    return f"moved to v{record.registered_version}"


def reconcile_alias(
    production: ProductionResource, mlflow: MlflowResource, log: Any = None
) -> str | None:
    """Move MLflow's ``champion`` alias to the serving version if an interrupted change left it.

    Runs at the start of ``production_model``, the rollback and the shadow decision; callable
    from the CLI (``retraining doctor``) as ``reconcile_alias(ProductionResource(),
    MlflowResource())``.

    Returns:
        The repair made, or ``None`` if the alias was right.

    Raises:
        dg.Failure: if the production store or MLflow cannot be read, with one clear line.
    """
    try:
        message = reconcile_champion_alias(
            production.store(), mlflow.client(), mlflow.registered_model_name
        )
    except RegistryError as exc:
        raise dg.Failure(description=str(exc)) from None
    except Exception as exc:  # MLflow or the store unreachable: one line naming it
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise dg.Failure(
            description=f"cannot reconcile the MLflow alias 'champion' ({mlflow.uri()}): "
            f"{first_line}"
        ) from None
    if message and log is not None:
        log.warning(message)
    return message


class RollbackConfig(dg.Config):
    """Which version to serve again, and why."""

    to_version: int | None = Field(
        default=None, description="Version to restore (from 1); empty: the one before."
    )
    reason: str = Field(default="manual rollback", description="Recorded in the history.")


@dg.op
def rollback_production(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    production: ProductionResource,
    mlflow: MlflowResource,
    alerts: AlertResource,
) -> None:
    """Serve an earlier production version again, in one atomic step, as a new version.

    Recorded as a materialization of ``production_model`` with the reason, moves the MLflow alias
    ``champion`` back, and keeps the history (MLflow has no alias history).
    """
    reconcile_alias(production, mlflow, context.log)
    store = production.store()
    change = ProductionChange(
        "rollback", config.reason, changed_by=context.run_id, to_version=config.to_version
    )
    result = apply_change(store, change, mlflow, "rollback refused")
    record = result.record
    restores = int(Lineage.from_extra(record.extra).restores_version or 0)
    context.log_event(
        production_event(store, result, mlflow, f"rollback to v{restores}: {record.reason}")
    )
    alerts.rollback(context, record.version, restores, record.reason)


@dg.job(
    executor_def=local_in_process_executor,
    description="Move production back to an earlier version (launchpad: to_version, reason).",
    tags={"retraining": "true"},
)
def rollback_job() -> None:
    """Roll production back; shares the one-retraining-at-a-time limit with retraining runs."""
    rollback_production()


class ShadowDecisionConfig(dg.Config):
    """The rule a challenger must meet on live batches."""

    min_relative_auc: float = Field(
        default=DEFAULT_POLICY.min_relative_auc,
        description="Challenger AUC must be >= this x champion AUC on the shadow rows.",
    )
    min_positives: int = Field(
        default=DEFAULT_POLICY.shadow_min_positives,
        description="Fewer positives (or negatives): retire.",
    )


@dg.op
def decide_challenger(
    context: dg.OpExecutionContext,
    config: ShadowDecisionConfig,
    production: ProductionResource,
    mlflow: MlflowResource,
    monitoring_store: MonitoringStoreResource,
) -> None:
    """Promote the challenger if it held up on its shadow batches, else retire it with a reason.

    The shadow scores come from the monitoring store, where ``batch_performance`` left them.
    Production changes only on promotion (a new version, materialization of
    ``production_model``); a retired challenger leaves production untouched and is recorded as an
    observation.
    """
    import numpy as np

    reconcile_alias(production, mlflow, context.log)
    store = production.store()
    with refused_as_failure():
        challenger, current = store.challenger(), store.current()
    if challenger is None or current is None:
        raise dg.Failure(description="no challenger to decide on")
    parts = monitoring_store.open().all_shadow(challenger.model_md5)
    if not parts:
        raise dg.Failure(description="the challenger has not been scored on any live batch yet")
    seen = [p.batch_id for p in parts]
    promote, reason = shadow_verdict(
        challenger,
        current,
        seen,
        *(np.concatenate([getattr(p, side) for p in parts]) for side in SHADOW_SIDES),
        min_relative_auc=config.min_relative_auc,
        min_positives=config.min_positives,
    )
    if promote:
        _promote_challenger(context, store, mlflow, challenger, seen, reason)
    else:
        store.clear_challenger()
        context.log_event(_retired(challenger, current, reason))
    _close_shadow(context, mlflow, challenger, promote, reason)


def _promote_challenger(
    context: dg.OpExecutionContext,
    store: ProductionStore,
    mlflow: MlflowResource,
    challenger: ProductionRecord,
    seen: list[str],
    reason: str,
) -> None:
    """Make the challenger the serving version and record it on ``production_model``."""
    with refused_as_failure("challenger not promoted"):
        # Compare-and-set against the version the challenger shadowed: if production moved
        # meanwhile, nothing changes and the challenger stays to be retired next time.
        change = ProductionChange(
            "promote_challenger",
            reason,
            changed_by=context.run_id,
            expected_current=challenger.version,
            candidate=Candidate.of_challenger(store, challenger, shadowed_on=seen),
        )
    result = apply_change(store, change, mlflow, "challenger not promoted")
    if result.warning:
        context.log.warning(result.warning)
    context.log_event(
        production_event(store, result, mlflow, f"challenger promoted after shadow: {reason}")
    )


#: The scores of the shadow rows, in the order ``shadow_verdict`` takes them.
SHADOW_SIDES = ("y", "champion", "challenger")


def _retired(
    challenger: ProductionRecord, current: ProductionRecord, reason: str
) -> dg.AssetObservation:
    """The observation of ``production_model`` that records a retired challenger."""
    return dg.AssetObservation(
        asset_key=PRODUCTION_KEY,
        description="challenger retired",
        metadata={
            "verdict": "challenger retired",
            "reason": reason,
            "challenger/md5": challenger.model_md5,
            "serving_version": dg.MetadataValue.int(current.version),
        },
    )


def _close_shadow(
    context: dg.OpExecutionContext,
    mlflow: MlflowResource,
    challenger: ProductionRecord,
    promoted: bool,
    reason: str,
) -> None:
    """Record the outcome on the challenger's MLflow run and drop the ``challenger`` alias."""
    if challenger.mlflow_run_id:
        mlflow.log_to_run(
            challenger.mlflow_run_id,
            {},
            {
                "promotion": "promoted after shadow" if promoted else "retired in shadow",
                "shadow/reason": reason[:500],
            },
        )
    if challenger.registered_version and not mlflow.remove_challenger_alias():
        context.log.warning("could not remove the MLflow alias 'challenger'")


@dg.job(
    executor_def=local_in_process_executor,
    description="Promote or retire the challenger after its shadow period.",
    tags={"retraining": "true"},
)
def shadow_decision_job() -> None:
    """Decide on the challenger; shares the one-retraining-at-a-time limit."""
    decide_challenger()
