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

import contextlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

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
}
ALL = ("never", "weekly", "drift", "performance", "combined")


def parse_policies(value: str) -> list[str]:
    """``all``, one policy, or a comma list (``weekly,drift``), in the order given, no repeats."""
    names = list(ALL) if value.strip() == "all" else [v.strip() for v in value.split(",")]
    return list(dict.fromkeys(n for n in names if n))


_QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


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


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


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
) -> PolicyResult:
    """Replay the batches of ``source_dir`` under one retraining policy.

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
    """
    import dagster as dg

    from retraining_assets.core.batches import list_batches
    from retraining_assets.core.verdicts import DriftVerdict, PerformanceVerdict, read_verdict
    from retraining_assets.defs.resources import TriggerPolicyResource
    from retraining_assets.defs.sensors import CLOCK_TAG, TRIGGER_TAG

    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose from {', '.join([*ALL, 'all'])}")
    batch_ids = list_batches(source_dir)
    if len(batch_ids) <= initial:
        raise ValueError(
            f"need more than {initial} batches in {source_dir}, found {len(batch_ids)}"
        )
    home = work_dir / "var"
    incoming = work_dir / "batches"
    incoming.mkdir(parents=True, exist_ok=True)
    (home / "mlflow").mkdir(parents=True, exist_ok=True)
    if mlflow_template is not None:
        shutil.copyfile(mlflow_template, home / "mlflow" / "mlflow.db")
    config_path = work_dir / "retraining.yaml"
    import yaml

    replay_config = {**(config or {})}
    # The replay's clock moves a period per step: cooldowns are in simulated hours.
    triggers = {"cooldown_hours": 0.0, "schedule_cooldown_hours": 0.0}
    triggers.update(replay_config.get("triggers") or {})
    replay_config["triggers"] = triggers
    config_path.write_text(yaml.safe_dump(replay_config))

    def arrive(batch_id: str) -> None:
        frame = pd.read_parquet(source_dir / f"{batch_id}.parquet")
        if subsample:
            frame = frame.sample(frac=subsample, random_state=0).sort_index()
        frame.to_parquet(incoming / f"{batch_id}.parquet", index=False)

    env = {
        "RETRAINING_HOME": str(home),
        # The replay's own state, even when the caller's points at a shared bucket.
        "RETRAINING_STATE_URL": str(home),
        "RETRAINING_BATCHES_DIR": str(incoming),
        "RETRAINING_CONFIG": str(config_path),
        **({"RETRAINING_SCHEMA": str(schema_file)} if schema_file is not None else {}),
    }
    from retraining_assets.core.cadence import batch_start, parse_cadence
    from retraining_assets.defs.schedules import build_weekly_schedule

    frequency = replay_cadence(batch_ids, schema_file)
    cadence = parse_cadence(frequency)
    periods: list[PeriodRecord] = []
    retrainings = promotions = 0
    compute = 0.0
    with _environment(env), dg.instance_for_test() as instance:
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        from retraining_assets.definitions import defs

        resources = dict(defs.resources or {})
        monitoring = defs.resolve_job_def("monitoring_job")
        retraining = defs.resolve_job_def("retraining_job")
        # The schedule of this replay's cadence: ``defs`` was built once per process, maybe for
        # another dataset.
        cron = (config or {}).get("triggers", {}).get("cron")
        schedule = build_weekly_schedule(str(cron) if cron else None, frequency)
        cursors: dict[str, str | None] = {}

        def clock(batch_id: str) -> float:
            # A batch is complete, and so arrives, at the end of its period.
            start = batch_start(batch_id)
            if start is None:
                raise ValueError(f"batch id {batch_id!r} does not start with its period's date")
            return cadence.next(start).timestamp()

        def observe(batch_id: str) -> None:
            """The real new_batch_sensor sees the file; monitoring_job runs on the partition."""
            nonlocal compute
            sensor = defs.resolve_sensor_def("new_batch_sensor")
            context = dg.build_sensor_context(
                instance=instance,
                cursor=cursors.get("new_batch_sensor"),
                resources=resources,
                definitions=defs,
            )
            result = sensor(context)
            if not isinstance(result, dg.SensorResult):
                return
            cursors["new_batch_sensor"] = result.cursor
            for request in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions("batches", list(request.partition_keys or []))
            for run in result.run_requests or []:
                started = time.perf_counter()
                monitoring.execute_in_process(
                    instance=instance,
                    partition_key=run.partition_key,
                    run_config=_QUIET,
                    raise_on_error=False,
                )
                compute += time.perf_counter() - started

        def retrain(cause: str, tags: dict[str, str], now: float) -> dict[str, Any]:
            nonlocal compute, retrainings, promotions
            started = time.perf_counter()
            before = _current_version(home)
            result = retraining.execute_in_process(
                instance=instance,
                run_config={
                    "ops": {
                        "training_dataset": {"config": {"window_batches": window_batches}},
                        "evaluation_report": {"config": {"latency_calls": 100}},
                    },
                    **_QUIET,
                },
                tags={**tags, CLOCK_TAG: str(now)},
                raise_on_error=False,
            )
            seconds = time.perf_counter() - started
            compute += seconds
            retrainings += 1
            after = _current_version(home)
            promoted = after != before
            promotions += int(promoted)
            return {
                "cause": cause,
                "success": result.success,
                "promoted": promoted,
                "version": after,
                "seconds": round(seconds, 2),
                "detail": tags.get("retraining/cause", ""),
            }

        # The first model: the initial batches, then one retraining as of the last of them.
        for batch_id in batch_ids[:initial]:
            arrive(batch_id)
        observe(batch_ids[initial - 1])
        first = retrain("initial", {TRIGGER_TAG: "initial"}, clock(batch_ids[initial - 1]))
        progress(
            f"[{policy}] initial model on {batch_ids[0]}..{batch_ids[initial - 1]}: "
            f"v{first['version']} ({first['seconds']:.0f}s)"
        )
        # Advance the trigger cursors past the initial history: the policy acts on what follows.
        for name in POLICIES[policy]:
            if name != "schedule":
                cursors[name] = _settle(defs, name, instance, resources, None)
        last_tick = clock(batch_ids[initial - 1])

        replayed = batch_ids[initial:]
        if max_periods is not None:
            replayed = replayed[:max_periods]
        for batch_id in replayed:
            step = time.perf_counter()
            now = clock(batch_id)
            served = _current_version(home)
            arrive(batch_id)
            observe(batch_id)
            perf = read_verdict(
                _metadata(instance, "batch_performance", batch_id), PerformanceVerdict
            )
            drift = read_verdict(_metadata(instance, "batch_drift", batch_id), DriftVerdict)
            record = PeriodRecord(
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
            tick_resources = {
                **resources,
                "triggers": TriggerPolicyResource(simulated_now=now),
            }
            requests: list[tuple[str, dict[str, str]]] = []
            for name in POLICIES[policy]:
                if name == "schedule":
                    for tick in _cron_ticks(str(schedule.cron_schedule), last_tick, now):
                        schedule_context = dg.build_schedule_context(
                            instance=instance,
                            scheduled_execution_time=tick,
                            resources=tick_resources,
                        )
                        ticked = schedule.evaluate_tick(schedule_context)
                        for run in ticked.run_requests or []:
                            requests.append(("weekly", dict(run.tags)))
                    continue
                sensor = defs.resolve_sensor_def(name)
                sensor_context = dg.build_sensor_context(
                    instance=instance,
                    cursor=cursors.get(name),
                    resources=tick_resources,
                    definitions=defs,
                )
                data = sensor.evaluate_tick(sensor_context)
                cursors[name] = data.cursor
                for run in data.run_requests or []:
                    requests.append((name.removesuffix("_sensor"), dict(run.tags)))
            last_tick = now
            if requests:
                # At most one retraining per period, whatever number of triggers fired: the
                # instance allows one at a time, and the cooldown holds the rest back.
                cause, tags = requests[0]
                event = retrain(cause, tags, now)
                event["also_fired"] = [c for c, _ in requests[1:]]
                record.events.append(event)
            record.seconds = round(time.perf_counter() - step, 2)
            periods.append(record)
            mark = ""
            if record.events:
                event = record.events[0]
                outcome = f"promoted v{event['version']}" if event["promoted"] else "rejected"
                mark = f" -> retrain ({event['cause']}): {outcome}"
            auc_text = f"{record.auc:.4f}" if record.auc is not None else "n/a"
            progress(
                f"[{policy}] {batch_id}: served v{served} AUC {auc_text}, "
                f"drift {record.drift}{mark} ({record.seconds:.1f}s)"
            )
    aucs = [p.auc for p in periods if p.auc is not None and p.auc == p.auc]
    return PolicyResult(
        policy=policy,
        periods=periods,
        retrainings=retrainings - 1,  # the initial model is not a re-training
        promotions=promotions - 1 if promotions else 0,
        mean_auc=sum(aucs) / len(aucs) if aucs else None,
        compute_seconds=round(compute, 1),
        initial_batches=batch_ids[:initial],
    )


def _settle(defs: Any, name: str, instance: Any, resources: dict, cursor: str | None) -> str | None:
    import dagster as dg

    sensor = defs.resolve_sensor_def(name)
    for _ in range(100):
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources, definitions=defs
        )
        data = sensor.evaluate_tick(context)
        if data.cursor == cursor:
            break
        cursor = data.cursor
    return cursor


def _cron_ticks(cron: str, after: float, until: float) -> list[Any]:
    """Schedule ticks in (after, until]."""
    from dagster._utils.schedules import cron_string_iterator

    ticks = []
    for tick in cron_string_iterator(after, cron, "UTC"):
        if tick.timestamp() > until:
            break
        if tick.timestamp() > after:
            ticks.append(tick)
    return ticks


def _current_version(home: Path) -> int | None:
    from retraining_assets.core.registry import ProductionStore

    current = ProductionStore(home / "production").current()
    return current.version if current else None


def make_mlflow_template(directory: Path) -> Path:
    """Create a migrated, empty MLflow SQLite store once (migration takes seconds)."""
    from mlflow import MlflowClient

    db = directory / "mlflow-template.db"
    if not db.exists():
        MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


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
) -> dict[str, Any]:
    """Replay each policy and write ``replay.json``, ``replay.png`` and ``summary.md``.

    ``schema_file`` is the resolved schema of a configured dataset (see ``replay_policy``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: list[PolicyResult] = []
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        template = make_mlflow_template(Path(tmp))
        for policy in policies:
            work = (out_dir / "state" / policy) if keep_state else Path(tmp) / policy
            if work.exists():
                shutil.rmtree(work)
            work.mkdir(parents=True)
            t0 = time.perf_counter()
            result = replay_policy(
                source_dir,
                policy,
                work_dir=work,
                mlflow_template=template,
                initial=initial,
                window_batches=window_batches,
                config=config,
                subsample=subsample,
                max_periods=max_periods,
                progress=progress,
                schema_file=schema_file,
            )
            progress(
                f"[{policy}] done in {time.perf_counter() - t0:.0f}s: mean AUC "
                f"{result.mean_auc:.4f}, {result.retrainings} retrainings"
                if result.mean_auc is not None
                else f"[{policy}] done"
            )
            results.append(result)
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
    return "\n".join(lines) + "\n"


def plot_replay(results: list[PolicyResult], path: Path) -> Path:
    """AUC of the served model per period for each policy, retrainings marked."""
    import matplotlib

    matplotlib.use("Agg")
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
