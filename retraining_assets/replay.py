"""Replay a dataset's history through the real definitions with a simulated clock.

For each policy, a fresh, temporary project state (Dagster instance, MLflow store, DVC repository,
production store) is created. The first ``initial`` batches train the first model. Then batch
after batch "arrives" (its file is copied into the watched folder at the end of its period): the
real ``new_batch_sensor`` registers it and ``monitoring_job`` validates it, measures its drift and
scores it with the model in production at that moment; then the policy's real sensors and the
real weekly schedule are evaluated at the simulated time, and any run they request is executed
(``retraining_job``: training window, GE validation, LightGBM, evaluation, gate, promotion).

This module drives Dagster, so it lives beside ``cli.py`` rather than in the Dagster-free core.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from retraining_assets.libraries import preload

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

POLICIES: dict[str, tuple[str, ...]] = {
    "never": (),
    "weekly": ("schedule",),
    "drift": ("data_drift_sensor",),
    "performance": ("performance_drift_sensor", "concept_drift_sensor"),
    "combined": (
        "data_drift_sensor",
        "performance_drift_sensor",
        "concept_drift_sensor",
        "schedule",
    ),
    # The label-free early warning (CBPE estimate of the served model's AUC); by name only,
    # not part of ``all``.
    "estimated": ("estimated_performance_sensor",),
}
ALL = ("never", "weekly", "drift", "performance", "combined")


def parse_policies(value: str) -> list[str]:
    """The policies named by ``--policy``, in the order given, no repeats.

    ``all``, one policy, or a comma list (``weekly,drift``, ``all,estimated``); ``all`` stands for
    every policy but ``estimated``.
    """
    names: list[str] = []
    for name in (v.strip() for v in value.split(",")):
        names.extend(ALL if name == "all" else [name])
    return list(dict.fromkeys(n for n in names if n))


_QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
#: Monitoring assets that draw a chart (``ChartConfig``); a replay turns the charts off.
_CHARTED = ("batch_drift", "batch_estimated_performance")


@dataclass
class PeriodRecord:
    """One replayed period: the served model's quality on it and what the automation did."""

    period: str
    start: str
    rows: int
    served_version: int | None
    auc: float | None
    log_loss: float | None
    drift: str | None
    max_psi: float | None
    psi: dict[str, float | None] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class PolicyResult:
    """A policy's whole replay."""

    policy: str
    periods: list[PeriodRecord]
    retrainings: int
    promotions: int
    mean_auc: float | None
    compute_seconds: float
    initial_batches: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""
        return _clean(asdict(self))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def replay_cadence(batch_ids: list[str], schema_file: Path | None = None) -> str:
    """The batches' cadence: the schema file's ``frequency``, else read from the batch ids.

    Ids are period starts (``2024-01-08``); a gap of a year, a quarter or a month names that
    calendar cadence, whole weeks a week anchored on the first batch's weekday, else the gap.
    """
    from retraining_assets.core.cadence import batch_start
    from retraining_assets.core.dataset import load_schema_file

    if schema_file is not None and Path(schema_file).is_file():
        return load_schema_file(Path(schema_file))[1]
    starts = [s for s in (batch_start(b) for b in batch_ids[:3]) if s is not None]
    if len(starts) < 2:
        return "weekly"
    first, second = starts[0], starts[1]
    months = (second.year - first.year) * 12 + second.month - first.month
    if first.day == second.day == 1 and first.hour == second.hour == 0 and months in (1, 3, 12):
        name = {1: "MS", 3: "QS", 12: "YS"}[months]
        if months > 1:
            return f"{name}-{first.strftime('%b').upper()}"
        return name
    gap = second - first
    if gap % pd.Timedelta(days=7) == pd.Timedelta(0):
        last = (first - pd.Timedelta(days=1)).strftime("%a").upper()
        return f"{gap // pd.Timedelta(days=7)}W-{last}"
    return f"{int(gap / pd.Timedelta(minutes=1))}min"


@dataclass
class ReplayOptions:
    """How a replay walks the history (see :func:`replay_policy` for each field)."""

    initial: int = 9
    window_batches: int = 8
    config: dict[str, Any] | None = None
    subsample: float | None = None
    max_periods: int | None = None
    schema_file: Path | None = None
    mlflow_template: Path | None = None
    training_cache: Path | None = None
    keep_state: bool = False


class ReplayHarness:
    """One policy's replay: the project's definitions on a fresh state, driven by a simulated clock.

    The harness owns a Dagster instance and the resources of this replay, built from
    the resources of ``definitions`` (so a setting made there, such as the experiment name,
    reaches the replay) with every path pointed into ``work_dir``. It never reads or writes the
    process environment and uses only Dagster's public API, so replays in one process (or in
    parallel processes) are independent. The instance is in memory (an event costs ~5 ms there
    against 60-120 ms in SQLite files, and a retraining writes ~80) unless ``options.keep_state``
    asks for SQLite files in ``work_dir/dagster``, readable afterwards in the Dagster UI.
    """

    def __init__(
        self,
        source_dir: Path,
        policy: str,
        work_dir: Path,
        options: ReplayOptions | None = None,
        *,
        definitions: Any = None,
        progress: Callable[[str], None] = print,
    ) -> None:
        """Check the policy and the batches and lay out ``work_dir`` (nothing runs yet)."""
        from retraining_assets.core.batches import list_batches
        from retraining_assets.core.cadence import parse_cadence

        if policy not in POLICIES:
            known = ", ".join([*POLICIES, "all"])
            raise ValueError(f"unknown policy {policy!r}; choose from {known}")
        self.options = options or ReplayOptions()
        self.source_dir, self.policy, self.progress = source_dir, policy, progress
        self.batch_ids = list_batches(source_dir)
        if len(self.batch_ids) <= self.options.initial:
            raise ValueError(
                f"need more than {self.options.initial} batches in {source_dir}, "
                f"found {len(self.batch_ids)}"
            )
        self.home = work_dir / "var"
        self.incoming = work_dir / "batches"
        self.config_path = work_dir / "retraining.yaml"
        self.dagster_dir = work_dir / "dagster"
        self.frequency = replay_cadence(self.batch_ids, self.options.schema_file)
        self.cadence = parse_cadence(self.frequency)
        self._prepare_state()
        if definitions is None:
            from retraining_assets.definitions import defs as definitions
        self.definitions = self._replay_definitions(definitions)
        self.resources = dict(self.definitions.resources or {})
        self.cursors: dict[str, str | None] = {}
        self.compute = 0.0
        self.retrainings = self.promotions = 0
        self.instance: Any = None

    # --- set-up ---------------------------------------------------------------------------

    def _prepare_state(self) -> None:
        """Folders, the copied MLflow store and the replay's configuration file."""
        import yaml

        self.incoming.mkdir(parents=True, exist_ok=True)
        self.dagster_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "mlflow").mkdir(parents=True, exist_ok=True)
        if self.options.mlflow_template is not None:
            shutil.copyfile(self.options.mlflow_template, self.home / "mlflow" / "mlflow.db")
        config = {**(self.options.config or {})}
        # The replay's clock moves a period per step: cooldowns are in simulated hours.
        triggers = {"cooldown_hours": 0.0, "schedule_cooldown_hours": 0.0}
        triggers.update(config.get("triggers") or {})
        config["triggers"] = triggers
        self.config_path.write_text(yaml.safe_dump(config))

    def _resources(self, configured: dict[str, Any]) -> dict[str, Any]:
        """The configured resources with every location moved into this replay's state."""
        home = str(self.home)
        dataset = (self.options.config or {}).get("dataset")
        builtin = dataset if isinstance(dataset, str) else "flights"
        places: dict[str, dict[str, Any]] = {
            "batch_source": {
                "directory": str(self.incoming),
                **(
                    {"schema_file": str(self.options.schema_file)}
                    if self.options.schema_file is not None
                    else {"dataset": configured["batch_source"].dataset or builtin}
                ),
            },
            # Nothing reads the replay's remote back (every read finds the bytes in the DVC
            # cache), so artifacts are not pushed to it.
            "dvc": {
                "repo_dir": str(self.home / "store"),
                "remote_url": str(self.home / "dvc-remote"),
                "push": False,
            },
            "io_manager": {"url": home},
            # Runs, registration and version numbers as configured; the MLflow model flavour
            # only for a kept state (nothing in the replay loads a model from MLflow, a user
            # looking at the kept registry afterwards may).
            "mlflow": {
                "tracking_uri": f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}",
                "artifact_location": (self.home / "mlflow" / "artifacts").as_uri(),
                "model_flavor": self.options.keep_state,
            },
            "production": {"root": str(self.home / "production")},
            "triggers": {"config_file": str(self.config_path)},
            "monitoring_store": {"url": home, **self._shared_monitoring()},
            "alerts": {"state_url": home},
        }
        return {
            key: _with_fields(resource, places[key]) if key in places else resource
            for key, resource in configured.items()
        }

    def _shared_monitoring(self) -> dict[str, Any]:
        """Where the policies keep what a served model's monitoring derives from it alone.

        Policies that promote the same booster (the training cache makes a window's booster the
        same for every policy) need the same reference profile, PSI thresholds and score
        calibrator, and score each batch alike; the first to build them (or to score a batch)
        leaves them for the others. By the monitoring code's version, as the cache folder may
        outlive this code (a scores key also holds the scoring code's version).
        """
        from retraining_assets.code_version import asset_code_version

        cache = self.options.training_cache
        if not cache:
            return {}
        version = "-".join(
            asset_code_version(a) for a in ("batch_drift", "batch_estimated_performance")
        )
        return {"shared_url": str(cache / "monitoring" / version)}

    def _replay_definitions(self, definitions: Any) -> Any:
        """``definitions`` with this replay's resources and the schedule of its cadence."""
        import dagster as dg

        from retraining_assets.defs.schedules import build_weekly_schedule

        cron = ((self.options.config or {}).get("triggers") or {}).get("cron")
        # ``defs`` was built once per process, maybe for another dataset: the schedule follows
        # this replay's cadence.
        self.schedule = build_weekly_schedule(str(cron) if cron else None, self.frequency)
        return dg.Definitions(
            assets=definitions.assets,
            asset_checks=definitions.asset_checks,
            jobs=definitions.jobs,
            sensors=definitions.sensors,
            schedules=[self.schedule],
            resources=self._resources(dict(definitions.resources or {})),
            executor=definitions.executor,
            loggers=definitions.loggers,
        )

    # --- the clock and the world ----------------------------------------------------------

    def clock(self, batch_id: str) -> float:
        """When a batch is complete, and so arrives: the end of its period (epoch seconds)."""
        from retraining_assets.core.cadence import batch_start

        start = batch_start(batch_id)
        if start is None:
            raise ValueError(f"batch id {batch_id!r} does not start with its period's date")
        return self.cadence.next(start).timestamp()

    def arrive(self, batch_id: str) -> None:
        """Copy a batch (subsampled if asked) into the watched folder."""
        frame = pd.read_parquet(self.source_dir / f"{batch_id}.parquet")
        if self.options.subsample:
            frame = frame.sample(frac=self.options.subsample, random_state=0).sort_index()
        frame.to_parquet(self.incoming / f"{batch_id}.parquet", index=False)

    def served_version(self) -> int | None:
        """The version in production now, through the production resource."""
        current = self.resources["production"].store().current()
        return current.version if current else None

    def _context(self, sensor: Any, cursor: str | None, resources: dict[str, Any]) -> Any:
        """A tick's context for ``sensor`` with the resources it declares, as the daemon gives."""
        import dagster as dg

        return dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            resources=_required(resources, sensor.required_resource_keys),
            definitions=self.definitions,
        )

    # --- what the daemon would do ---------------------------------------------------------

    def observe(self) -> None:
        """The real new_batch_sensor sees new files; monitoring_job runs on each partition."""
        import dagster as dg

        sensor = self.definitions.resolve_sensor_def("new_batch_sensor")
        context = self._context(sensor, self.cursors.get("new_batch_sensor"), self.resources)
        result = sensor(context)
        if not isinstance(result, dg.SensorResult):
            return
        self.cursors["new_batch_sensor"] = result.cursor
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions("batches", list(request.partition_keys or []))
        monitoring = self.definitions.resolve_job_def("monitoring_job")
        # No charts: the replay reads the verdicts only (a chart costs 0.2-0.3 s a batch).
        ops = {
            name: {"config": {"chart": False}}
            for name in _CHARTED
            if monitoring.graph.has_node_named(name)
        }
        ops.update(self._batch_cache_config().get("ops", {}))
        run_config = {"ops": ops, **_QUIET}
        for run in result.run_requests or []:
            started = time.perf_counter()
            monitoring.execute_in_process(
                instance=self.instance,
                partition_key=run.partition_key,
                run_config=run_config,
                raise_on_error=False,
            )
            self.compute += time.perf_counter() - started

    def retrain(self, cause: str, tags: dict[str, str], now: float) -> dict[str, Any]:
        """Run retraining_job as of ``now``; what it did (promoted, version, seconds)."""
        from retraining_assets.defs.sensors import CLOCK_TAG

        started = time.perf_counter()
        before = self.served_version()
        result = self.definitions.resolve_job_def("retraining_job").execute_in_process(
            instance=self.instance,
            run_config={
                "ops": {
                    "training_dataset": {"config": {"window_batches": self.options.window_batches}},
                    # The gate reads only the candidate's latency, and nobody the ROC plot, in a
                    # replay.
                    "evaluation_report": {
                        "config": {
                            "latency_calls": 100,
                            "champion_latency": False,
                            "roc_plot": False,
                        }
                    },
                    **self._training_cache_config(),
                },
                **_QUIET,
            },
            tags={**tags, CLOCK_TAG: str(now)},
            raise_on_error=False,
        )
        seconds = time.perf_counter() - started
        self.compute += seconds
        self.retrainings += 1
        after = self.served_version()
        promoted = after != before
        self.promotions += int(promoted)
        return {
            "cause": cause,
            "success": result.success,
            "promoted": promoted,
            "version": after,
            "seconds": round(seconds, 2),
            "detail": tags.get("retraining/cause", ""),
            "gate": _gate_summary(result),
        }

    def _training_cache_config(self) -> dict[str, Any]:
        # Policies retraining on the same window reuse its validation and its booster (same
        # inputs, same results).
        cache = self.options.training_cache
        if not cache:
            return {}
        return {
            "candidate_model": {"config": {"training_cache": str(cache)}},
            "validated_dataset": {"config": {"validation_cache": str(cache / "validation")}},
        }

    def _batch_cache_config(self) -> dict[str, Any]:
        # Every policy ingests a byte-identical copy of each batch (``arrive``): the first to
        # validate it keeps the passing suite result for the others.
        cache = self.options.training_cache
        if not cache:
            return {}
        return {"ops": {"raw_batches": {"config": {"validation_cache": str(cache / "validation")}}}}

    def settle(self, name: str) -> None:
        """Advance a sensor's cursor past the history so far: the policy acts on what follows."""
        sensor = self.definitions.resolve_sensor_def(name)
        cursor = self.cursors.get(name)
        for _ in range(100):
            data = sensor.evaluate_tick(self._context(sensor, cursor, self.resources))
            if data.cursor == cursor:
                break
            cursor = data.cursor
        self.cursors[name] = cursor

    def requests(self, last_tick: float, now: float) -> list[tuple[str, dict[str, str]]]:
        """The runs the policy's sensors and schedule ask for at the simulated time ``now``."""
        from retraining_assets.defs.resources import TriggerPolicyResource

        triggers = self.resources["triggers"]
        resources = {
            **self.resources,
            "triggers": TriggerPolicyResource(config_file=triggers.config_file, simulated_now=now),
        }
        found: list[tuple[str, dict[str, str]]] = []
        for name in POLICIES[self.policy]:
            if name == "schedule":
                found += self._schedule_requests(resources, last_tick, now)
                continue
            sensor = self.definitions.resolve_sensor_def(name)
            data = sensor.evaluate_tick(self._context(sensor, self.cursors.get(name), resources))
            self.cursors[name] = data.cursor
            found += [(name.removesuffix("_sensor"), dict(r.tags)) for r in data.run_requests or []]
        return found

    def _schedule_requests(
        self, resources: dict[str, Any], last_tick: float, now: float
    ) -> list[tuple[str, dict[str, str]]]:
        import datetime as dt

        import dagster as dg

        from retraining_assets.core.cron import cron_ticks

        found = []
        utc = dt.UTC
        span = (dt.datetime.fromtimestamp(last_tick, utc), dt.datetime.fromtimestamp(now, utc))
        for tick in cron_ticks(str(self.schedule.cron_schedule), *span):
            context = dg.build_schedule_context(
                instance=self.instance,
                scheduled_execution_time=tick,
                resources=_required(resources, self.schedule.required_resource_keys),
            )
            if not self.instance.is_persistent:
                context = _schedule_context_on()(self.instance, context)
            ticked = self.schedule.evaluate_tick(context)
            found += [("weekly", dict(run.tags)) for run in ticked.run_requests or []]
        return found

    # --- the walk -------------------------------------------------------------------------

    def run(self) -> PolicyResult:
        """Train the first model, then replay period after period; the policy's whole result."""
        import dagster as dg

        with warnings.catch_warnings(), self._new_instance() as inst:
            warnings.filterwarnings("ignore", category=dg.BetaWarning)
            self.instance = inst
            try:
                last_tick = self._first_model()
                periods = []
                for batch_id in self._replayed():
                    record = self.step(batch_id, last_tick)
                    last_tick = self.clock(batch_id)
                    periods.append(record)
            finally:
                self.instance = None
        return self._result(periods)

    def _new_instance(self) -> Any:
        """This replay's Dagster instance: SQLite files when the state is kept, else in memory.

        The walk reads everything back through the instance API (sensors, the verdicts in
        ``_record``), so where the events are kept changes no result. Neither instance sets a
        pool limit (runs execute one after another), so the ``retraining`` pool claims no slot
        in either.
        """
        import dagster as dg

        if self.options.keep_state:
            return dg.instance_for_test(set_dagster_home=False, temp_dir=str(self.dagster_dir))
        return dg.DagsterInstance.ephemeral(tempdir=str(self.dagster_dir))

    def _first_model(self) -> float:
        """The initial batches arrive, one retraining as of the last of them; its clock time."""
        from retraining_assets.defs.sensors import TRIGGER_TAG

        initial = self.batch_ids[: self.options.initial]
        for batch_id in initial:
            self.arrive(batch_id)
        self.observe()
        now = self.clock(initial[-1])
        first = self.retrain("initial", {TRIGGER_TAG: "initial"}, now)
        self.progress(
            f"[{self.policy}] initial model on {initial[0]}..{initial[-1]}: "
            f"v{first['version']} ({first['seconds']:.0f}s)"
        )
        for name in POLICIES[self.policy]:
            if name != "schedule":
                self.settle(name)
        return now

    def _replayed(self) -> list[str]:
        replayed = self.batch_ids[self.options.initial :]
        if self.options.max_periods is not None:
            replayed = replayed[: self.options.max_periods]
        return replayed

    def step(self, batch_id: str, last_tick: float) -> PeriodRecord:
        """One period: the batch arrives and is scored, then the policy may retrain."""
        started = time.perf_counter()
        now = self.clock(batch_id)
        served = self.served_version()
        self.arrive(batch_id)
        self.observe()
        record = self._record(batch_id, served)
        requests = self.requests(last_tick, now)
        if requests:
            # At most one retraining per period, whatever number of triggers fired: the
            # instance allows one at a time, and the cooldown holds the rest back.
            cause, tags = requests[0]
            event = self.retrain(cause, tags, now)
            event["also_fired"] = [c for c, _ in requests[1:]]
            record.events.append(event)
        record.seconds = round(time.perf_counter() - started, 2)
        self.progress(_progress_line(self.policy, record))
        return record

    def _record(self, batch_id: str, served: int | None) -> PeriodRecord:
        """The served model's quality on the batch and its drift, from the monitoring assets."""
        from retraining_assets.core.verdicts import DriftVerdict, PerformanceVerdict, read_verdict

        perf = read_verdict(
            _metadata(self.instance, "batch_performance", batch_id), PerformanceVerdict
        )
        drift = read_verdict(_metadata(self.instance, "batch_drift", batch_id), DriftVerdict)
        return PeriodRecord(
            period=batch_id,
            start=batch_id,
            rows=perf.rows if perf else 0,
            served_version=served,
            auc=perf.auc if perf else None,
            log_loss=perf.log_loss if perf else None,
            drift=drift.status if drift else None,
            max_psi=drift.max_psi if drift and drift.measured else None,
            psi=dict(drift.psi) if drift else {},
        )

    def _result(self, periods: list[PeriodRecord]) -> PolicyResult:
        aucs = [p.auc for p in periods if p.auc is not None and p.auc == p.auc]
        return PolicyResult(
            policy=self.policy,
            periods=periods,
            retrainings=self.retrainings - 1,  # the initial model is not a re-training
            promotions=self.promotions - 1 if self.promotions else 0,
            mean_auc=sum(aucs) / len(aucs) if aucs else None,
            compute_seconds=round(self.compute, 1),
            initial_batches=self.batch_ids[: self.options.initial],
        )


def _gate_summary(result: Any) -> dict[str, Any] | None:
    """What the gate decided on a retraining run and why, from ``evaluation_report``'s metadata.

    The gate reads the candidate's p95 latency beside its AUC, and latency depends on the
    machine's load: a rejection for latency is then visible in ``replay.json``, not only in
    the run's event log. ``None`` when the run failed before the gate.
    """
    found = result.asset_materializations_for_node("evaluation_report")
    if not found:
        return None
    meta = {k: v.value for k, v in found[-1].metadata.items()}
    reasons = [line.removeprefix("- ") for line in str(meta.get("reasons", "")).splitlines()]
    return {
        "verdict": meta.get("verdict"),
        "reasons": [r for r in reasons if r],
        "auc": meta.get("auc"),
        "champion_auc": meta.get("production_auc"),  # NaN (None in JSON) for a first model
        "p95_latency_ms": meta.get("p95_latency_ms"),
    }


@functools.cache
def _schedule_context_on() -> type:
    """The class of :class:`ScheduleContextOn` (built on first use: Dagster loads lazily here)."""
    import dagster as dg

    class ScheduleContextOn(dg.ScheduleEvaluationContext):
        """A schedule's evaluation context on a given instance, an in-memory one included.

        ``build_schedule_context`` keeps only a reference to a persistent instance and reopens
        it on use; an in-memory instance has no reference, so the schedule (which reads the
        last retraining's time from the instance) would fail on it.
        """

        def __init__(self, instance: dg.DagsterInstance, built: dg.ScheduleEvaluationContext):
            super().__init__(
                instance_ref=None,
                scheduled_execution_time=built.scheduled_execution_time,
                resources=built.resource_defs,
            )
            self._on = instance
            # Also the instance its resources are built with: without one, ``build_resources``
            # makes an ephemeral instance on every tick (~0.1 s, ten times the tick itself).
            self._instance = instance  # type: ignore[assignment]  # Dagster types it as None

        @property
        def instance(self) -> dg.DagsterInstance:
            """The instance given, whether persistent or not."""
            return self._on

    return ScheduleContextOn


def _required(resources: dict[str, Any], keys: Any) -> dict[str, Any]:
    """The resources a sensor or schedule declares, as the daemon builds them for a tick.

    A test context builds every resource it is given, on every tick: with all nine, the
    ``combined`` policy's four ticks a period cost 3.9 s over 10 periods, with these 1.8 s.
    """
    return {key: resources[key] for key in keys}


def _with_fields(resource: Any, fields: dict[str, Any]) -> Any:
    """A copy of a configurable resource with some fields replaced (the others as configured)."""
    current = {name: getattr(resource, name) for name in type(resource).model_fields}
    return type(resource)(**{**current, **fields})


def _progress_line(policy: str, record: PeriodRecord) -> str:
    mark = ""
    if record.events:
        event = record.events[0]
        outcome = f"promoted v{event['version']}" if event["promoted"] else "rejected"
        mark = f" -> retrain ({event['cause']}): {outcome}"
    auc_text = f"{record.auc:.4f}" if record.auc is not None else "n/a"
    return (
        f"[{policy}] {record.period}: served v{record.served_version} AUC {auc_text}, "
        f"drift {record.drift}{mark} ({record.seconds:.1f}s)"
    )


def _metadata(instance: Any, key: str, partition: str) -> dict[str, Any]:
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def replay_policy(
    source_dir: Path,
    policy: str,
    *,
    work_dir: Path,
    mlflow_template: Path | None = None,
    initial: int = 9,
    window_batches: int = 8,
    config: dict[str, Any] | None = None,
    subsample: float | None = None,
    max_periods: int | None = None,
    progress: Callable[[str], None] = print,
    schema_file: Path | None = None,
    definitions: Any = None,
    training_cache: Path | None = None,
    keep_state: bool = False,
) -> PolicyResult:
    """Replay the batches of ``source_dir`` under one retraining policy (a :class:`ReplayHarness`).

    Args:
        source_dir: Folder of batch files (``<id>.parquet``), e.g. ``data/batches``.
        policy: One of ``POLICIES``.
        work_dir: Empty folder for this replay's state.
        mlflow_template: A migrated MLflow SQLite file to copy (saves the ~10 s migration).
        initial: Batches available before the first model (the last one is its test set).
        window_batches: Rolling window of every retraining.
        config: Extra project configuration (``dataset``, ``triggers``) for the replay.
        subsample: Keep this share of each batch's rows (seeded), to replay faster.
        max_periods: Replay at most this many periods after the initial ones.
        progress: Called with one line per period.
        schema_file: The resolved schema of a configured dataset (written by build-batches
            beside its configuration); batch folders never hold one.
        definitions: The ``dg.Definitions`` to drive (default: the project's); its resources'
            settings are kept, their locations moved into ``work_dir``.
        training_cache: Folder of trained boosters by their inputs (see
            ``core/training_cache.py``), shared by the policies of a replay; ``None``: none.
        keep_state: Keep the Dagster instance in SQLite files in ``work_dir`` (for the Dagster
            UI afterwards); by default it is in memory and gone with the replay.
    """
    options = ReplayOptions(
        initial=initial,
        window_batches=window_batches,
        config=config,
        subsample=subsample,
        max_periods=max_periods,
        schema_file=schema_file,
        mlflow_template=mlflow_template,
        training_cache=training_cache,
        keep_state=keep_state,
    )
    harness = ReplayHarness(
        source_dir, policy, work_dir, options, definitions=definitions, progress=progress
    )
    return harness.run()


def make_mlflow_template(directory: Path) -> Path:
    """Create a migrated, empty MLflow SQLite store once (migration takes seconds)."""
    preload("mlflow")
    from mlflow import MlflowClient

    db = directory / "mlflow-template.db"
    if not db.exists():
        MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def default_jobs(policies: int) -> int:
    """Parallel replay processes: one per policy, at most one per core."""
    return max(1, min(policies, os.cpu_count() or 1))


def _replay_in_worker(kwargs: dict[str, Any]) -> PolicyResult:
    """One policy's replay in a worker process (LightGBM and BLAS kept to one thread each)."""
    # This worker's own environment, read by OpenMP when LightGBM loads: one thread per process,
    # so parallel policies do not oversubscribe the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return replay_policy(**kwargs)


def run_replay(
    source_dir: Path,
    policies: list[str],
    out_dir: Path,
    *,
    initial: int = 9,
    window_batches: int = 8,
    config: dict[str, Any] | None = None,
    subsample: float | None = None,
    max_periods: int | None = None,
    keep_state: bool = False,
    progress: Callable[[str], None] = print,
    schema_file: Path | None = None,
    jobs: int | None = None,
    training_cache: Path | None = None,
) -> dict[str, Any]:
    """Replay each policy and write ``replay.json``, ``replay.png`` and ``summary.md``.

    ``schema_file`` is the resolved schema of a configured dataset (see ``replay_policy``).
    ``jobs``: policies replayed at once, each in its own process (default: one per core);
    1 replays them one after another in this process. The result does not depend on it.
    ``training_cache``: where trained boosters are kept by their inputs, so a retraining on a
    window another policy (or an earlier replay using the same folder) already trained on
    reuses that model (and the reference profile, PSI thresholds and score calibrator built for
    it by the monitoring, and its scores of each batch, under ``monitoring/``); default a folder
    of this replay only.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs = default_jobs(len(policies)) if jobs is None else max(1, jobs)
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        template = make_mlflow_template(Path(tmp))
        cache = training_cache or Path(tmp) / "training-cache"
        calls = []
        for policy in policies:
            work = (out_dir / "state" / policy) if keep_state else Path(tmp) / policy
            if work.exists():
                shutil.rmtree(work)
            work.mkdir(parents=True)
            calls.append(
                {
                    "source_dir": source_dir,
                    "policy": policy,
                    "work_dir": work,
                    "mlflow_template": template,
                    "initial": initial,
                    "window_batches": window_batches,
                    "config": config,
                    "subsample": subsample,
                    "max_periods": max_periods,
                    "schema_file": schema_file,
                    "training_cache": cache,
                    "keep_state": keep_state,
                }
            )
        results = _replay_all(calls, jobs, progress)
    wall = round(time.perf_counter() - started, 1)
    report: dict[str, Any] = {
        "source": str(source_dir),
        "initial_batches": initial,
        "window_batches": window_batches,
        "subsample": subsample,
        "wall_seconds": wall,
        "policies": {r.policy: {k: v for k, v in r.to_dict().items()} for r in results},
        "trigger_quality": _clean(trigger_quality(results)),
    }
    (out_dir / "replay.json").write_text(json.dumps(report, indent=2))
    plot_replay(results, out_dir / "replay.png")
    (out_dir / "summary.md").write_text(summary_markdown(results, wall))
    return report


def _done_line(result: PolicyResult, seconds: float) -> str:
    if result.mean_auc is None:
        return f"[{result.policy}] done"
    return (
        f"[{result.policy}] done in {seconds:.0f}s: mean AUC {result.mean_auc:.4f}, "
        f"{result.retrainings} retrainings"
    )


#: The order parallel workers start policies in (names not listed follow, in the order given).
#: Longest first, so no long policy starts last; but never two that retrain every period
#: (``weekly``, ``combined``) side by side from the start: the first to reach a training window
#: trains and the other waits for the cache, so together they cost two workers the time of one
#: ``weekly`` each. ``drift`` runs beside ``weekly`` instead (it retrains on a subset of the same
#: windows and runs ahead, so ``weekly`` hits what it trained), and ``combined`` starts when
#: ``drift`` ends, behind ``weekly``, hitting the windows ``weekly`` trained. The rest longest
#: first: on full flights (44 periods) ``performance`` computes ~70 s and ``never`` ~25 s, both
#: warm by then; ``never`` before ``performance`` left one worker weekly + never + performance
#: (~300 s) and the other drift + combined (~240 s), the other way round ~280 s and ~265 s.
LAUNCH_ORDER = ("weekly", "drift", "combined", "performance", "never", "estimated")


def launch_order(policies: list[str]) -> list[int]:
    """Indices into ``policies`` in the order parallel workers should start them.

    See :data:`LAUNCH_ORDER`; the results of a replay do not depend on it.
    """
    rank = {name: i for i, name in enumerate(LAUNCH_ORDER)}
    return sorted(range(len(policies)), key=lambda i: (rank.get(policies[i], len(rank)), i))


def _replay_all(
    calls: list[dict[str, Any]], jobs: int, progress: Callable[[str], None]
) -> list[PolicyResult]:
    """The policies' results in the order given: in this process, or in ``jobs`` workers.

    Workers start the policies in :func:`launch_order`. If a worker process dies (killed from
    outside), the policies not finished yet are replayed once more from a fresh state.
    """
    if jobs == 1 or len(calls) == 1:
        results = []
        for call in calls:
            t0 = time.perf_counter()
            results.append(replay_policy(**call, progress=progress))
            progress(_done_line(results[-1], time.perf_counter() - t0))
        return results
    from concurrent.futures.process import BrokenProcessPool

    done: dict[int, PolicyResult] = {}
    t0 = time.perf_counter()
    for attempt in (1, 2):
        try:
            _replay_in_pool(
                calls,
                [i for i in range(len(calls)) if i not in done],
                jobs,
                done,
                lambda r: progress(_done_line(r, time.perf_counter() - t0)),
            )
            break
        except BrokenProcessPool as exc:
            left = [i for i in range(len(calls)) if i not in done]
            names = ", ".join(calls[i]["policy"] for i in left)
            if attempt == 2:
                raise RuntimeError(
                    f"a replay worker process died twice (killed from outside, or out of "
                    f"memory); unfinished policies: {names}"
                ) from exc
            # A worker killed from outside (the OOM killer, a signal) breaks the whole pool.
            # The policies it took down start again from a fresh state; what the others
            # finished is kept, and the shared caches hold only complete entries (written
            # atomically, their locks released with the dead process).
            progress(f"a replay worker process died ({exc}); replaying {names} again")
            for i in left:
                shutil.rmtree(calls[i]["work_dir"], ignore_errors=True)
                Path(calls[i]["work_dir"]).mkdir(parents=True)
    return [done[i] for i in range(len(calls))]


def worker_pool(jobs: int) -> ProcessPoolExecutor:
    """The pool the policies are replayed in: ``jobs`` fresh interpreters that end with this one.

    Workers print their own progress lines (stdout is shared); each is a fresh interpreter
    ("spawn"), so nothing of this process's Dagster or MLflow state is inherited.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )


def exit_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` (its parent) does (Linux; elsewhere nothing).

    A replay stopped from outside (``kill``, a scheduler's timeout) would otherwise leave its
    workers replaying into folders nobody reads, holding cores for minutes (seen: five workers
    of a killed ``--jobs 5`` replay kept running, and ignored SIGTERM). ``PR_SET_PDEATHSIG``
    has the kernel send SIGKILL when the parent dies; locks on the shared caches are ``flock``
    locks, released with the process, and cache entries are written atomically.
    """
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def _replay_in_pool(
    calls: list[dict[str, Any]],
    indices: list[int],
    jobs: int,
    done: dict[int, PolicyResult],
    finished: Callable[[PolicyResult], None],
) -> None:
    """Replay ``calls[i]`` for each index in ``jobs`` worker processes; results into ``done``.

    Raises:
        BrokenProcessPool: a worker died; ``done`` holds every result that arrived before.
    """
    from concurrent.futures import as_completed

    order = launch_order([calls[i]["policy"] for i in indices])
    with worker_pool(jobs) as pool:
        # The pool starts submitted calls in submission order as workers become free.
        futures = {pool.submit(_replay_in_worker, calls[indices[k]]): indices[k] for k in order}
        try:
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                finished(done[futures[future]])
        finally:
            # Results that completed but were not yet taken when the pool broke.
            for future, i in futures.items():
                taken = i in done or not future.done() or future.cancelled()
                if not taken and future.exception() is None:
                    done[i] = future.result()
                    finished(done[i])


def trigger_quality(results: list[PolicyResult]) -> dict[str, dict[str, float | None]]:
    """How well each policy spends its retrainings, measured against ``never`` and ``weekly``.

    Per policy: ``gain`` (mean AUC minus ``never``'s), ``share_of_weekly_gain`` (``gain`` over
    ``weekly``'s gain: 1.0 keeps all of what retraining every week buys) and
    ``retrainings_per_0.01_auc`` (retrainings per 0.01 of mean AUC gained; lower is better,
    ``None`` when the policy gained nothing). Quantities needing ``never`` or ``weekly`` are
    ``None`` when that policy was not replayed.
    """
    by_name = {r.policy: r for r in results}
    never = by_name.get("never")
    weekly = by_name.get("weekly")
    base = never.mean_auc if never is not None else None
    weekly_gain = (
        weekly.mean_auc - base
        if weekly is not None and weekly.mean_auc is not None and base is not None
        else None
    )
    quality: dict[str, dict[str, float | None]] = {}
    for r in results:
        gain = r.mean_auc - base if r.mean_auc is not None and base is not None else None
        share = gain / weekly_gain if gain is not None and weekly_gain else None
        per = r.retrainings / (gain / 0.01) if gain is not None and gain > 0 else None
        quality[r.policy] = {
            "gain": gain,
            "share_of_weekly_gain": share,
            "retrainings_per_0.01_auc": per,
        }
    return quality


def _rank_key(item: tuple[PolicyResult, dict[str, float | None]]) -> tuple[float, float]:
    # Fewest retrainings per 0.01 AUC first; policies with no gain (never, or a loss) last,
    # by mean AUC.
    result, q = item
    per = q["retrainings_per_0.01_auc"]
    return (per if per is not None else float("inf"), -(result.mean_auc or 0.0))


def summary_markdown(results: list[PolicyResult], wall_seconds: float) -> str:
    """A markdown table per policy, ranked by retrainings per 0.01 AUC gained over ``never``."""
    quality = trigger_quality(results)

    def fmt(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    lines = [
        "# Replay summary",
        "",
        "| policy | mean AUC | retrainings | promotions | gain over never | share of weekly's"
        " gain | retrainings per 0.01 AUC | compute s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r, q in sorted(((r, quality[r.policy]) for r in results), key=_rank_key):
        share = q["share_of_weekly_gain"]
        lines.append(
            f"| {r.policy} | {fmt(r.mean_auc, '.4f')} | {r.retrainings} | {r.promotions} | "
            f"{fmt(q['gain'], '+.4f')} | {fmt(None if share is None else 100 * share, '.0f')}"
            f"{'%' if share is not None else ''} | {fmt(q['retrainings_per_0.01_auc'], '.1f')} | "
            f"{r.compute_seconds:.0f} |"
        )
    if results:
        n = len(results[0].periods)
        lines += [
            "",
            f"{n} periods after the first {len(results[0].initial_batches)} batches; each batch is"
            " scored by the model in production when it arrived. Ranked by retrainings per 0.01"
            " of mean AUC gained over `never` (fewest first). Wall time "
            f"{wall_seconds:.0f}s.",
        ]
    lines += _failure_lines(results)
    return "\n".join(lines) + "\n"


def _failure_lines(results: list[PolicyResult]) -> list[str]:
    """Retraining runs that failed, and periods served by no model, named per policy.

    A replay goes on after a failed run (a bad window is part of a history), so the table alone
    would show a failure only as a lower mean AUC.
    """
    lines = []
    for r in results:
        failed = [p.period for p in r.periods for e in p.events if e.get("success") is False]
        unserved = [p.period for p in r.periods if p.served_version is None]
        if failed:
            lines.append(
                f"- `{r.policy}`: {len(failed)} retraining run(s) failed: {', '.join(failed)}"
            )
        if unserved:
            lines.append(
                f"- `{r.policy}`: no model served {len(unserved)} period(s), from {unserved[0]}"
            )
    if not lines:
        return []
    return [
        "",
        "**Failures** (rerun with `--keep-state` and read the runs in the Dagster UI):",
        *lines,
    ]


def plot_replay(results: list[PolicyResult], path: Path) -> Path:
    """AUC of the served model per period for each policy, retrainings marked."""
    import matplotlib

    matplotlib.use("Agg")
    preload("matplotlib.pyplot")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5), dpi=100)
    labels: list[str] = []
    for r in results:
        labels = [p.period for p in r.periods]
        x = list(range(len(r.periods)))
        y = [p.auc if p.auc is not None else float("nan") for p in r.periods]
        mean = f"{r.mean_auc:.3f}" if r.mean_auc is not None else "n/a"
        (line,) = ax.plot(x, y, label=f"{r.policy} (mean {mean}, {r.retrainings} retrains)")
        promoted = [i for i, p in enumerate(r.periods) if p.events and p.events[0]["promoted"]]
        rejected = [i for i, p in enumerate(r.periods) if p.events and not p.events[0]["promoted"]]
        ax.scatter(promoted, [y[i] for i in promoted], marker="^", color=line.get_color(), s=36)
        ax.scatter(rejected, [y[i] for i in rejected], marker="x", color=line.get_color(), s=30)
    step = max(1, len(labels) // 13)
    ax.set_xticks(range(0, len(labels), step))
    ax.set_xticklabels(labels[::step], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("AUC of the served model on the period")
    ax.set_title("Replay: served-model AUC per period (^ retrained and promoted, x rejected)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def analyze_replay(out_dir: Path, policy: str | None = None) -> dict[str, Any]:
    """Find when the served model began to deteriorate in a replay's output.

    Uses the ``never`` policy when present (one model, never retrained: its decline is the
    clearest), else the given or first policy. Writes ``analysis.json`` and ``analysis.png``.
    """
    from retraining_assets.core.analysis import (
        PeriodPerformance,
        analyze_degradation,
        plot_degradation,
    )

    report = json.loads((out_dir / "replay.json").read_text())
    policies = report["policies"]
    chosen = policy or ("never" if "never" in policies else next(iter(policies)))
    if chosen not in policies:
        raise ValueError(f"policy {chosen!r} not in {out_dir / 'replay.json'}: {list(policies)}")
    periods = policies[chosen]["periods"]
    history = [
        PeriodPerformance(
            period=p["period"],
            auc=float("nan") if p["auc"] is None else float(p["auc"]),
            n_rows=int(p["rows"]),
            log_loss=p["log_loss"],
            model_version=p["served_version"],
        )
        for p in periods
    ]
    drift = {
        p["period"]: {k: float(v) for k, v in (p.get("psi") or {}).items() if v is not None}
        for p in periods
    }
    result = analyze_degradation(history, drift)
    events = [
        (p["period"], f"retrain ({p['events'][0]['cause']})")
        for p in periods
        if p["events"] and p["events"][0]["promoted"]
    ]
    plot_degradation(
        history,
        result,
        out_dir / "analysis.png",
        title=f"Replay '{chosen}': served-model AUC and the onset of degradation",
        events=events,
    )
    data = {"policy": chosen, **result.to_dict()}
    (out_dir / "analysis.json").write_text(json.dumps(data, indent=2))
    return data
