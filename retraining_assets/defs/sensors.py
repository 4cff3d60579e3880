"""Sensors that start retraining by themselves, and the one that notices new batch files.

Each returns a ``dg.SkipReason`` with the numbers when it does not fire, keeps a cursor (a storage
id or a small JSON document), and derives ``run_key``s from the cause, so that one cause gives one
run however many ticks see it. Tick cost does not grow with history: each tick reads only the
events after its cursor (at most ``_PAGE`` of them) and the latest retraining run.
"""

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from retraining_assets.core.triggers import (
    Decision,
    Skip,
    decide_concept_drift,
    decide_data_drift,
    decide_performance,
    track_concept_drift,
)
from retraining_assets.core.verdicts import (
    DriftVerdict,
    PerformanceVerdict,
    V,
    read_verdict,
)
from retraining_assets.defs.jobs import monitoring_job, performance_job, retraining_job
from retraining_assets.defs.monitoring import batch_drift, batch_performance
from retraining_assets.defs.partitions import BATCH_PARTITIONS, batch_partitions
from retraining_assets.defs.resources import (
    BatchSourceResource,
    ProductionResource,
    TriggerPolicyResource,
)
from retraining_assets.defs.state import MonitoringStoreResource
from retraining_assets.monitoring_store import MonitoringStore
from retraining_assets.settings import DEFAULT_POLICY, TriggerPolicy
from retraining_assets.storage import KeyNotFound

if TYPE_CHECKING:
    import numpy as np

    from retraining_assets.core.batch_watch import BatchRunPlan

TRIGGER_TAG = "retraining/trigger"
#: Replays stamp each run with its simulated start time (epoch seconds); cooldowns use it.
CLOCK_TAG = "retraining/simulated_time"
_PAGE = 200
# A failed or cancelled retraining does not hold back the next trigger.
_COUNTED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.SUCCESS,
]


def hours_since_last_retraining(
    instance: dg.DagsterInstance, now: float | None = None
) -> float | None:
    """Hours since the newest retraining run that is pending, running or succeeded."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=retraining_job.name, statuses=_COUNTED), limit=1
    )
    if not records:
        return None
    record = records[0]
    simulated = record.dagster_run.tags.get(CLOCK_TAG)
    created = float(simulated) if simulated else record.create_timestamp.timestamp()
    return ((now if now is not None else time.time()) - created) / 3600.0


@dataclass
class _Event:
    storage_id: int
    partition: str
    metadata: dict


def _new_events(
    context: dg.SensorEvaluationContext, asset_key: dg.AssetKey, after: int | None
) -> list[_Event]:
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, after_storage_id=after),
        limit=_PAGE,
        ascending=True,
    )
    events = []
    for record in result.records:
        mat = record.asset_materialization
        if mat is None:
            continue
        events.append(
            _Event(
                storage_id=record.storage_id,
                partition=mat.partition or "",
                metadata={k: v.value for k, v in mat.metadata.items()},
            )
        )
    return events


# Run-key prefixes stay short and stable: they are how one cause maps to one run.
_RUN_KEY_PREFIX = {
    "data_drift": "data_drift",
    "performance_drift": "performance",
    "concept_drift": "concept",
    "estimated_performance": "estimated_performance",
}


def _result(decision: Decision, cursor: str) -> dg.SensorResult:
    """A decide function's answer as a sensor result.

    A ``Fire`` becomes one retraining request keyed by the batch and the production version
    (one cause, one run, however many ticks see it); a ``Skip`` keeps its reason.
    """
    if isinstance(decision, Skip):
        return dg.SensorResult(skip_reason=decision.reason, cursor=cursor)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=(
                    f"{_RUN_KEY_PREFIX[decision.trigger]}:{decision.partition}:v{decision.version}"
                ),
                tags={
                    TRIGGER_TAG: decision.trigger,
                    "retraining/cause_batch": decision.partition,
                    **{f"retraining/{k}": str(v)[:200] for k, v in decision.evidence.items()},
                },
            )
        ],
        cursor=cursor,
    )


@dg.sensor(
    jobs=[monitoring_job, performance_job],
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def new_batch_sensor(
    context: dg.SensorEvaluationContext, batch_source: BatchSourceResource
) -> dg.SensorResult | dg.SkipReason:
    """New batch files become partitions and are monitored; new feedback files are measured.

    A new file ``<id>.parquet`` (or ``.csv``) in the batch folder adds partition ``<id>`` and runs
    ``monitoring_job`` on it (validation, drift, quality if labelled). A file put back under the
    name of a known batch (after its quarantine) or replaced in place is validated again: the
    cursor keeps each file's size and modification time. A new or rewritten feedback file (its
    size, time or S3 ETag changed) runs ``performance_job`` for its batch, on a folder or S3 alike.
    Symbolic links and names that are not safe batch ids are never partitions; the skip reason
    names them.
    """
    from retraining_assets.core.batch_watch import plan_batch_runs
    from retraining_assets.core.batches import FEEDBACK_DIR, scan_batches

    store = batch_source.store()
    listing = scan_batches(store)
    known = context.instance.get_dynamic_partitions(BATCH_PARTITIONS)
    plan = plan_batch_runs(
        listing,
        scan_batches(store, FEEDBACK_DIR),
        known,
        json.loads(context.cursor) if context.cursor else {},
        store.location,
    )
    cursor = json.dumps(plan.cursor)
    if plan.skip_reason:
        return dg.SensorResult(skip_reason=plan.skip_reason, cursor=cursor)
    return dg.SensorResult(
        run_requests=_batch_run_requests(plan),
        dynamic_partitions_requests=[batch_partitions.build_add_request(plan.new)]
        if plan.new
        else [],
        cursor=cursor,
    )


def _batch_run_requests(plan: "BatchRunPlan") -> list[dg.RunRequest]:
    """Monitor new batches, validate replaced ones again, measure batches with new labels.

    Run keys carry the file's signature, so a file replaced twice is validated twice, and the
    same file seen by two ticks once.
    """
    requests = [
        dg.RunRequest(job_name=monitoring_job.name, partition_key=b, run_key=f"batch:{b}")
        for b in plan.new
    ]
    requests += [
        dg.RunRequest(
            job_name=monitoring_job.name,
            partition_key=b,
            run_key=f"batch:{b}:{signature}",
            tags={"retraining/revalidate": b},
        )
        for b, signature in plan.replaced.items()
    ]
    requests += [
        dg.RunRequest(
            job_name=performance_job.name,
            partition_key=b,
            run_key=f"feedback:{b}:{signature}",
            tags={"retraining/feedback": b},
        )
        for b, signature in plan.feedback
    ]
    return requests


def _verdicts(events: list[_Event], cls: type[V]) -> list[tuple[str, V | None]]:
    """Each event's typed verdict (the one reader; a wrong schema fails the tick loudly)."""
    return [(e.partition, read_verdict(e.metadata, cls)) for e in events]


def _verdict_sensor(
    name: str,
    asset_key: dg.AssetKey,
    cls: type[V],
    decide: Callable[[list[tuple[str, V | None]], TriggerPolicy, float | None], Decision],
    description: str,
) -> dg.SensorDefinition:
    """A sensor that reads the new verdicts of one monitoring asset and asks ``decide``.

    The cursor is the storage id of the last materialization seen; each tick reads at most
    ``_PAGE`` newer ones.
    """

    @dg.sensor(
        name=name,
        job=retraining_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=description,
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        triggers: TriggerPolicyResource,
    ) -> dg.SensorResult | dg.SkipReason:
        policy = triggers.policy()
        events = _new_events(context, asset_key, int(context.cursor) if context.cursor else None)
        decision = decide(
            _verdicts(events, cls),
            policy,
            hours_since_last_retraining(context.instance, now=triggers.now()),
        )
        if not events:
            assert isinstance(decision, Skip)
            return dg.SkipReason(decision.reason)
        return _result(decision, str(events[-1].storage_id))

    return _sensor


data_drift_sensor = _verdict_sensor(
    "data_drift_sensor",
    batch_drift.key,
    DriftVerdict,
    decide_data_drift,
    "Retrain when a new batch's drift verdict (batch_drift) is positive under the configured "
    "drift rule; the run is tagged with the cause and the drifted features.",
)

performance_drift_sensor = _verdict_sensor(
    "performance_drift_sensor",
    batch_performance.key,
    PerformanceVerdict,
    decide_performance,
    "Retrain when the production model's AUC on labelled feedback falls below its floors "
    "(absolute, and relative to its AUC at promotion); batch_performance computes the verdict.",
)


@dg.sensor(
    job=retraining_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def concept_drift_sensor(
    context: dg.SensorEvaluationContext,
    triggers: TriggerPolicyResource,
    production: ProductionResource,
    monitoring_store: MonitoringStoreResource,
) -> dg.SensorResult | dg.SkipReason:
    """Retrain when the production model's errors rise while the features have not drifted.

    Feeds the per-row squared error of each newly labelled batch, in time order, to an error-stream
    change detector (ADWIN by default) whose state lives in the cursor and restarts with each new
    production version. Only a rise counts (ADWIN also signals falls, which mean an improving
    model): a rise on batches whose feature drift verdict is negative means P(y|x) moved. The
    streams are read from the monitoring store (``errors_key`` of each ``batch_performance``
    verdict), wherever the run that wrote them ran.
    """
    policy = triggers.policy()
    state = json.loads(context.cursor) if context.cursor else {}
    events = _new_events(context, batch_performance.key, state.get("storage_id"))
    if not events:
        return dg.SkipReason("no new labelled batches measured")
    current = production.store().current()
    watch = track_concept_drift(
        state,
        _verdicts(events, PerformanceVerdict),
        current.version if current else None,
        policy,
        functools.partial(_error_stream, monitoring_store.open()),
    )
    cursor = json.dumps({"storage_id": events[-1].storage_id, **watch.state})
    change = watch.change
    drift = _drift_verdict(context.instance, change.partition) if change.rising else None
    decision = decide_concept_drift(
        change,
        drift,
        policy,
        hours_since_last_retraining(context.instance, now=triggers.now()),
    )
    return _result(decision, cursor)


def _error_stream(
    monitoring: MonitoringStore, partition: str, verdict: PerformanceVerdict, version: int
) -> "np.ndarray":
    """The error stream behind one ``batch_performance`` verdict, read from the monitoring store.

    A missing stream is an error, not a skip: it means this sensor does not see the store the run
    wrote to (for example the daemon and the run worker were given different state URLs).
    """
    key = verdict.errors_key or MonitoringStore.errors_key(partition, version)
    try:
        return monitoring.errors_at(key)
    except KeyNotFound:
        raise KeyNotFound(
            f"error stream of batch {partition} (v{version}) not found at "
            f"{monitoring.location_of(key)}: the sensor must read the state store the run wrote "
            "to (same RETRAINING_STATE_URL for daemon and run workers)"
        ) from None


def _drift_verdict(instance: dg.DagsterInstance, partition: str) -> DriftVerdict | None:
    """The latest ``batch_drift`` verdict of one batch, if it was measured."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=batch_drift.key, asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    metadata = {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
    return read_verdict(metadata, DriftVerdict)


@dg.sensor(
    job_name="shadow_decision_job",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def shadow_sensor(
    context: dg.SensorEvaluationContext,
    production: ProductionResource,
    monitoring_store: MonitoringStoreResource,
) -> dg.RunRequest | dg.SkipReason:
    """Ask for a decision on the challenger once it was scored on enough live labelled batches.

    Counts the batches whose shadow scores ``batch_performance`` left in the monitoring store.
    """
    challenger = production.store().challenger()
    if challenger is None:
        return dg.SkipReason("no challenger in the shadow")
    wanted = int(challenger.extra.get("shadow_batches", DEFAULT_POLICY.shadow_batches))
    seen = monitoring_store.open().shadow_batches(challenger.model_md5)
    if len(seen) < wanted:
        return dg.SkipReason(
            f"challenger {challenger.model_md5[:10]} scored on {len(seen)} of {wanted} live batches"
        )
    return dg.RunRequest(
        run_key=f"shadow:{challenger.model_md5}",
        tags={TRIGGER_TAG: "shadow_decision", "retraining/shadow_batches": ",".join(seen)[:200]},
    )
