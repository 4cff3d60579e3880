"""Production changes outside the retraining chain.

Rollback, the decision on a challenger after its shadow period, and the metadata every
production change records (shared with ``production_model``).
"""

from typing import Any

import dagster as dg
from pydantic import Field

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
    extra = record.extra
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
        "lineage/strategy": str(extra.get("strategy", "")),
        "lineage/train_batches": ", ".join(extra.get("train_batches", [])),
        "lineage/test_batches": ", ".join(extra.get("test_batches", [])),
        "lineage/dagster_run_id": str(extra.get("dagster_run_id", "")),
        "lineage/restore_data": f"retraining restore-data {record.dataset_md5} --out data.parquet",
        "auc": dg.MetadataValue.float(float(record.metrics.get("auc", float("nan")))),
        "pointer": dg.MetadataValue.path(store.version_location(record)),
        "model_path": dg.MetadataValue.path(store.model_location(record)),
        "history": dg.MetadataValue.md(history_table(store)),
    }
    if extra.get("init_from_version") is not None:
        metadata["lineage/continued_from_version"] = int(extra["init_from_version"])
    if record.mlflow_run_id:
        metadata["mlflow/run_url"] = dg.MetadataValue.url(mlflow.run_url(record.mlflow_run_id))
    if record.action == "rollback":
        metadata["rollback/restores_version"] = int(extra["restores_version"])
        metadata["rollback/rolled_back_from"] = int(extra["rolled_back_from"])
    return metadata


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
    try:
        record = store.rollback(config.to_version, reason=config.reason, changed_by=context.run_id)
    except (RegistryError, StoreError) as exc:
        raise dg.Failure(description=f"rollback refused: {exc}") from None
    alias = move_champion_alias(mlflow, record)
    context.log_event(
        dg.AssetMaterialization(
            asset_key=PRODUCTION_KEY,
            description=f"rollback to v{record.extra['restores_version']}: {record.reason}",
            metadata={**production_metadata(store, record, mlflow), "mlflow/champion_alias": alias},
            tags={"dagster/data_version": record.model_md5},
        )
    )
    alerts.rollback(context, record.version, int(record.extra["restores_version"]), record.reason)


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

    from retraining_assets.core.promotion import decide_shadow

    reconcile_alias(production, mlflow, context.log)
    store = production.store()
    try:
        challenger = store.challenger()
        current = store.current()
    except (RegistryError, StoreError) as exc:
        raise dg.Failure(description=str(exc)) from None
    if challenger is None or current is None:
        raise dg.Failure(description="no challenger to decide on")
    parts = monitoring_store.open().all_shadow(challenger.model_md5)
    if not parts:
        raise dg.Failure(description="the challenger has not been scored on any live batch yet")
    seen = [p.batch_id for p in parts]
    decision = decide_shadow(
        np.concatenate([p.y for p in parts]),
        np.concatenate([p.champion for p in parts]),
        np.concatenate([p.challenger for p in parts]),
        min_relative_auc=config.min_relative_auc,
        min_positives=config.min_positives,
    )
    batches = ", ".join(seen)
    reason = f"shadow on {batches}: " + "; ".join(decision.reasons)
    if challenger.version != current.version:
        decision_promote = False
        reason = f"production moved to v{current.version} during the shadow period: retired"
    else:
        decision_promote = decision.promote
    if decision_promote:
        try:
            # Compare-and-set against the version the challenger shadowed: if production moved
            # meanwhile, nothing changes and the challenger stays to be retired next time.
            record = store.promote(
                store.model_bytes(challenger),
                expected_current=challenger.version,
                reason=reason,
                mlflow_run_id=challenger.mlflow_run_id,
                mlflow_model_uri=challenger.mlflow_model_uri,
                registered_version=challenger.registered_version,
                dataset_md5=challenger.dataset_md5,
                metrics=dict(challenger.metrics),
                extra={**challenger.extra, "shadow_batches_seen": seen},
                changed_by=context.run_id,
            )
        except (RegistryError, StoreError) as exc:
            raise dg.Failure(description=f"challenger not promoted: {exc}") from None
        store.clear_challenger()
        alias = move_champion_alias(mlflow, record)
        context.log_event(
            dg.AssetMaterialization(
                asset_key=PRODUCTION_KEY,
                description=f"challenger promoted after shadow: {reason}",
                metadata={
                    **production_metadata(store, record, mlflow),
                    "mlflow/champion_alias": alias,
                },
                tags={"dagster/data_version": record.model_md5},
            )
        )
    else:
        store.clear_challenger()
        context.log_event(
            dg.AssetObservation(
                asset_key=PRODUCTION_KEY,
                description="challenger retired",
                metadata={
                    "verdict": "challenger retired",
                    "reason": reason,
                    "challenger/md5": challenger.model_md5,
                    "serving_version": dg.MetadataValue.int(current.version),
                },
            )
        )
    if challenger.mlflow_run_id:
        mlflow.log_to_run(
            challenger.mlflow_run_id,
            {},
            {
                "promotion": "promoted after shadow" if decision_promote else "retired in shadow",
                "shadow/reason": reason[:500],
            },
        )
    if challenger.registered_version:
        client = mlflow.client()
        try:
            client.delete_registered_model_alias(mlflow.registered_model_name, "challenger")
        except Exception:  # the alias may already be gone; not worth failing the decision
            context.log.warning("could not remove the MLflow alias 'challenger'")


@dg.job(
    executor_def=local_in_process_executor,
    description="Promote or retire the challenger after its shadow period.",
    tags={"retraining": "true"},
)
def shadow_decision_job() -> None:
    """Decide on the challenger; shares the one-retraining-at-a-time limit."""
    decide_challenger()
