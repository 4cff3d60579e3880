"""``retraining`` command: prepare the demo data, run the demo cycle, check the installation."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from retraining_assets import settings

if TYPE_CHECKING:
    import dagster as dg

    from retraining_assets.core.registry import ProductionRecord, ProductionStore
    from retraining_assets.core.versioning import DvcStore
    from retraining_assets.defs.resources import MlflowResource


def _dagster_home() -> Path:
    """``$DAGSTER_HOME``, defaulting to ``<state>/dagster`` (set for this process if unset)."""
    home = os.environ.get("DAGSTER_HOME") or str(settings.state_dir() / "dagster")
    os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    yaml_file = Path(home) / "dagster.yaml"
    if not yaml_file.exists():
        # The project's instance settings (one retraining at a time, run monitoring that fails
        # dead runs), not Dagster's bare defaults.
        template = settings.project_root() / "var" / "dagster" / "dagster.yaml"
        if template.is_file():
            yaml_file.write_bytes(template.read_bytes())
        else:
            yaml_file.write_text("telemetry:\n  enabled: false\n")
    return Path(home)


def _dataset_config(path: str | None):
    """The dataset configuration from ``path``, else from the project configuration file.

    ``None`` for the built-in flights demo (no ``dataset:`` mapping configured).
    """
    from retraining_assets.core.dataset import (
        dataset_config_from_section,
        load_dataset_config,
    )

    if path:
        return load_dataset_config(Path(path).resolve())
    config_path = settings.config_file()
    value = settings.load_config().get("dataset")
    if value is None or value in ("flights", "synthetic"):
        return None
    return dataset_config_from_section(value, base_dir=config_path.parent, origin=str(config_path))


def cmd_build_batches(args: argparse.Namespace) -> int:
    """Write the batch files: the flights demo (the DVC stage's command) or a configured dataset.

    For a configured dataset the resolved schema is written beside the configuration file
    (``<stem>.schema.json``), never into the batch folder.
    """
    from retraining_assets.core.dataset import (
        DatasetConfigError,
        build_batches,
        schema_file_for,
    )
    from retraining_assets.core.demo_data import build_flight_batches

    problem = _check_out_folder(args.out)
    if problem is None and args.max_weeks is not None and args.max_weeks < 1:
        problem = f"--max-weeks must be at least 1, got {args.max_weeks}"
    if problem is None and args.dataset is not None and not args.dataset.strip():
        problem = "--dataset: empty path; give a dataset configuration YAML file"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    schema_note = ""
    try:
        config = _dataset_config(args.dataset)
        notes: list[str] = []
        if config is None:
            paths = build_flight_batches(Path(args.out), max_weeks=args.max_weeks)
        else:
            paths = build_batches(config, Path(args.out), max_batches=args.max_weeks, notes=notes)
            schema_note = f"; schema in {schema_file_for(config)}"
    except (DatasetConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}")
    print(
        f"wrote {len(paths)} batches to {args.out} in {time.perf_counter() - started:.1f}s"
        + schema_note
    )
    return 0


def _check_out_folder(out: str) -> str | None:
    """Why ``out`` cannot be a batch folder to write into, or None."""
    if not out or not out.strip():
        return "--out: empty path; give the folder to write the batches into"
    path = Path(out)
    if path.exists() and not path.is_dir():
        return f"--out: {out} exists and is not a folder"
    if path.is_symlink():
        return f"--out: {out} is a symbolic link; give the real folder"
    return None


def prepare_data() -> list[str]:
    """Reproduce the DVC stage that builds the demo batches and push them to the local remote.

    Returns:
        The batch ids now in the batch folder.
    """
    from retraining_assets.core.batches import list_batches
    from retraining_assets.core.versioning import dvc_repo_class

    root = settings.project_root()
    # The stage's command runs in a shell: make sure it finds this environment's Python.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    (settings.state_dir() / "dvc-remote").mkdir(parents=True, exist_ok=True)
    repo = dvc_repo_class()(str(root))
    try:
        stages = repo.reproduce("prepare_flights")
        repo.push()
    finally:
        repo.close()
    ran = "rebuilt" if stages else "up to date"
    batches = list_batches(root / "data" / "batches")
    print(f"demo batches {ran}: {len(batches)} weekly files in data/batches (DVC-tracked)")
    return batches


def cmd_prepare_data(args: argparse.Namespace) -> int:
    """``dvc repro`` the demo batches."""
    prepare_data()
    return 0


# The demo prints its own summary; Dagster's step-by-step log stays in the UI (Runs page).
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the retraining loop headless on the flights demo: a first model, then a retrain."""
    import warnings

    import dagster as dg

    from retraining_assets.definitions import defs

    warnings.filterwarnings("ignore", category=dg.BetaWarning)

    started = time.perf_counter()
    _dagster_home()
    batches = prepare_data() if not args.skip_prepare else None
    if batches is None:
        from retraining_assets.core.batches import list_batches

        batches = list_batches(settings.batches_dir())
    first, later = args.first_weeks, args.later_week
    if len(batches) <= max(first, later):
        print(f"need more than {max(first, later)} batches, found {len(batches)}", file=sys.stderr)
        return 2
    instance = dg.DagsterInstance.get()
    _demo_ingest(defs, instance, batches[: later + 1])
    job = defs.resolve_job_def("retraining_job")
    for label, as_of in (("cycle 1", batches[first]), ("cycle 2 (later)", batches[later])):
        _demo_cycle(job, instance, label, as_of)
    _print_where_things_are()
    if later + 1 < len(batches):
        # Left empty, as_of_batch means the newest batch file: months past what the demo ingested.
        print(
            f"   next week: in the UI launch retraining_job with training_dataset config"
            f" as_of_batch: {batches[later + 1]!r} (empty = the newest file, {batches[-1]})"
        )
    print(f"   demo wall time {time.perf_counter() - started:.1f}s")
    return 0


def _demo_ingest(defs: dg.Definitions, instance: dg.DagsterInstance, wanted: list[str]) -> None:
    """Register and ingest the demo's batches (those not ingested by an earlier demo)."""
    import dagster as dg

    instance.add_dynamic_partitions("batches", wanted)
    ingest = defs.resolve_job_def("ingest_job")
    done = instance.get_materialized_partitions(dg.AssetKey("raw_batches"))
    for batch_id in wanted:
        if batch_id in done:
            continue
        result = ingest.execute_in_process(
            instance=instance, partition_key=batch_id, raise_on_error=False, run_config=_QUIET
        )
        print(f"ingest {batch_id}: {'ok' if result.success else 'REJECTED'}")


def _demo_cycle(
    job: dg.JobDefinition, instance: dg.DagsterInstance, label: str, as_of: str
) -> None:
    """Run one retraining cycle as of batch ``as_of`` and print its test and gate verdict."""
    run_config = {
        "ops": {"training_dataset": {"config": {"as_of_batch": as_of}}},
        **_QUIET,
    }
    t0 = time.perf_counter()
    result = job.execute_in_process(instance=instance, run_config=run_config)
    report = result.output_for_node("evaluation_report")
    cand = report.candidate["metrics"]
    prod = (report.production or {}).get("metrics", {})
    print(
        f"\n== {label}: test on {', '.join(report.test_batches)} "
        f"({time.perf_counter() - t0:.1f}s, run {result.run_id[:8]})\n"
        f"   candidate AUC {cand['auc']:.4f}"
        + (f" vs production AUC {prod['auc']:.4f}" if prod else " vs constant baseline")
        + f", p95 latency {report.candidate['latency']['p95_ms']:.2f} ms\n"
        f"   gate: {'PROMOTED' if report.promote else 'rejected'}: " + "; ".join(report.reasons)
    )


def _print_where_things_are() -> None:
    """The serving model's files and runs, the MLflow store and the Dagster home."""
    from retraining_assets.defs.resources import MlflowResource, ProductionResource

    store = ProductionResource().store()
    current = store.current()
    print("\n== where things are")
    if current:
        print(
            f"   production model v{current.version}: {store.model_location(current)}\n"
            f"     version object {store.version_location(current)}; model md5 "
            f"{current.model_md5}; data md5 {current.dataset_md5}\n"
            f"     MLflow run {current.mlflow_run_id}; model {current.mlflow_model_uri}"
        )
    print(
        f"   MLflow store: {MlflowResource().uri()}"
        f"  (UI: make mlflow-ui -> {settings.DEFAULT_MLFLOW_UI})"
    )
    print(
        f"   Dagster home: {os.environ['DAGSTER_HOME']}"
        f"  (UI: make dev -> {settings.DEFAULT_DAGSTER_UI})"
    )


def cmd_rollback(args: argparse.Namespace) -> int:
    """Serve an earlier production version again, recorded in Dagster as ``rollback_job``."""
    import warnings

    import dagster as dg

    from retraining_assets.definitions import defs

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    _dagster_home()
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("rollback_job").execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={
                "ops": {
                    "rollback_production": {
                        "config": {"to_version": args.to, "reason": args.reason}
                    }
                },
                **_QUIET,
            },
        )
    if not result.success:
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        data = failure.step_failure_data
        why = data.user_failure_data.description if data.user_failure_data else data.error
        print(f"rollback failed: {why}", file=sys.stderr)
        return 1
    from retraining_assets.defs.resources import ProductionResource

    record = ProductionResource().store().current()
    assert record is not None
    print(
        f"production is now v{record.version}: the model of v{record.extra['restores_version']} "
        f"(md5 {record.model_md5}), rolled back from v{record.extra['rolled_back_from']}; "
        f"Dagster run {result.run_id[:8]}"
    )
    return 0


def lineage_text(version: int | None) -> str:
    """Everything known about one production version, and how to restore its training data."""
    from retraining_assets.defs.resources import (
        DvcResource,
        MlflowResource,
        ProductionResource,
    )

    store = ProductionResource().store()
    record = store.record(version) if version is not None else store.current()
    if record is None:
        return "nothing is in production yet"
    lines = _record_lines(store, record)
    if record.mlflow_run_id:
        lines += _mlflow_lines(MlflowResource(), record, record.mlflow_run_id)
    lines += _data_lines(DvcResource().store(), record.dataset_md5)
    return "\n".join(lines)


def _record_lines(store: ProductionStore, record: ProductionRecord) -> list[str]:
    """The version record: action, reason, files, rollback, strategy, batches, runs, code."""
    current = store.current()
    lines = [
        f"production v{record.version} ({record.action} at {record.created_at})"
        + ("  <- serving" if current and current.version == record.version else ""),
        f"  reason:        {record.reason}",
        f"  model:         {store.model_location(record)}  (md5 {record.model_md5})",
        f"  version:       {store.version_location(record)}"
        + (f"  (by run {record.changed_by})" if record.changed_by else ""),
    ]
    if record.action == "rollback":
        lines.append(
            f"  rollback:      restores v{record.extra['restores_version']}, "
            f"from v{record.extra['rolled_back_from']}"
        )
    extra = record.extra
    lines += [
        f"  strategy:      {extra.get('strategy', '?')}",
        f"  train batches: {', '.join(extra.get('train_batches', [])) or '?'}",
        f"  test batches:  {', '.join(extra.get('test_batches', [])) or '?'}",
        f"  dagster run:   {extra.get('dagster_run_id', '?')}",
        # Versions promoted before code versions were recorded show "not recorded".
        f"  code commit:   {extra.get('code_commit', 'not recorded')}",
        "  code versions: "
        + (
            ", ".join(f"{k} {v}" for k, v in sorted(extra["code_versions"].items()))
            if extra.get("code_versions")
            else "not recorded"
        ),
    ]
    if extra.get("init_from_version") is not None:
        lines.append(f"  continued from production v{extra['init_from_version']} (init_model)")
    return lines


def _mlflow_lines(mlflow: MlflowResource, record: ProductionRecord, run_id: str) -> list[str]:
    """The version's MLflow run ``run_id``, registered model, headline metrics, data version."""
    run = mlflow.client().get_run(run_id)
    metrics = ", ".join(
        f"{k} {v:.4f}" for k, v in sorted(run.data.metrics.items()) if k in _SHOWN_METRICS
    )
    return [
        f"  mlflow run:    {run_id}  ({mlflow.run_url(run_id)})",
        f"  mlflow model:  {record.mlflow_model_uri}  "
        f"({mlflow.registered_model_name} v{record.registered_version})",
        f"  metrics:       {metrics}",
        f"  data version:  {run.data.params.get('data_version')}",
    ]


def _data_lines(dvc: DvcStore, md5: str | None) -> list[str]:
    """Where the training data is (DVC cache or remote) and how to restore it."""
    return [
        f"  training data: DVC md5 {md5}",
        f"    in cache:    {dvc.cache_path(md5) if md5 else '-'}"
        + ("" if md5 and dvc.cache_path(md5).exists() else "  (not in cache: fetched from remote)"),
        f"    restore:     retraining restore-data {md5} --out training_dataset.parquet",
    ]


_SHOWN_METRICS = {
    "test_auc",
    "production_auc",
    "baseline_auc",
    "p95_latency_ms",
    "training_seconds",
}


def cmd_show_lineage(args: argparse.Namespace) -> int:
    """Print the lineage of a production version."""
    from retraining_assets.core.registry import RegistryError
    from retraining_assets.storage import StoreError

    try:
        print(lineage_text(args.version))
    except (RegistryError, StoreError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


def cmd_restore_data(args: argparse.Namespace) -> int:
    """Restore the exact bytes of a dataset version from DVC (cache, else remote)."""
    import re

    from retraining_assets.core.versioning import VersioningError
    from retraining_assets.defs.resources import DvcResource

    md5 = (args.md5 or "").strip().lower()
    problem = None
    if not re.fullmatch(r"[0-9a-f]{32}", md5):
        problem = (
            f"{args.md5!r} is not a dataset version: expected the 32 hex digits of a DVC md5 "
            "(see `retraining show-lineage`)"
        )
    elif not args.out or not args.out.strip():
        problem = "--out: empty path; give the file to restore the dataset into"
    elif Path(args.out).is_dir():
        problem = f"--out: {args.out} is a folder; give a file path such as dataset.parquet"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        path = DvcResource().store().restore(md5, Path(args.out).resolve())
    except (VersioningError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"restored {md5} to {path}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay a dataset's history under one or all retraining policies."""
    from retraining_assets.replay import POLICIES, parse_policies, run_replay

    policies = parse_policies(args.policy)
    if any(p not in POLICIES for p in policies):
        print(
            f"unknown policy {args.policy!r}; choose from {', '.join([*POLICIES, 'all'])}",
            file=sys.stderr,
        )
        return 2
    from retraining_assets.core.dataset import (
        DatasetConfigError,
        build_batches,
        schema_file_for,
    )

    config: dict = {}
    schema_file: Path | None = None
    source = Path(args.source).resolve() if args.source else None
    out = Path(args.out).resolve()
    try:
        dataset = _dataset_config(args.config)
        if args.config:
            raw = settings.load_config(Path(args.config).resolve())
            config = {"triggers": raw.get("triggers") or {}}
            if raw.get("dataset") in ("flights", "synthetic"):
                # A built-in schema named in the file: the replay's batches follow it.
                config["dataset"] = raw["dataset"]
        if dataset is not None:
            schema_file = schema_file_for(dataset)
        if source is None and dataset is not None:
            # Any dataset by configuration: batches built for the replay, the resolved schema
            # beside the configuration file (never among the batches).
            source = out / "batches"
            notes: list[str] = []
            paths = build_batches(dataset, source, notes=notes, schema_file=schema_file)
            for note in notes:
                print(f"note: {note}")
            print(f"built {len(paths)} {dataset.frequency} batches of {dataset.name} in {source}")
    except DatasetConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if source is None:
        source = settings.project_root() / "data" / "batches"
        if not any(source.glob("*.parquet")):
            prepare_data()
    report = run_replay(
        source,
        policies,
        out,
        initial=args.initial,
        window_batches=args.window,
        config=config,
        subsample=args.subsample,
        max_periods=args.periods,
        keep_state=args.keep_state,
        schema_file=schema_file,
        jobs=args.jobs,
        training_cache=Path(args.training_cache).resolve() if args.training_cache else None,
    )
    print(f"\n{(Path(args.out) / 'summary.md').read_text()}")
    print(f"wrote {args.out}/replay.json, replay.png, summary.md in {report['wall_seconds']:.0f}s")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """Estimate when the model began to deteriorate, from a replay's output folder."""
    from retraining_assets.replay import analyze_replay

    try:
        data = analyze_replay(Path(args.out).resolve(), args.policy)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"[{data['policy']}] {data['summary']}")
    print(f"wrote {args.out}/analysis.json and analysis.png")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print versions and paths, check the known dependency traps, and check every backend.

    One line per resource says which backend it uses (local folder, s3 URL, postgres URL with the
    password masked) and whether it answers; the exit code is 1 when anything is unreachable.
    """
    from importlib.metadata import version

    ok = True
    for pkg in (
        "dagster",
        "dagster-webserver",
        "dagster-mlflow",
        "great-expectations",
        "dvc",
        "lightgbm",
        "mlflow",
        "pandas",
        "antlr4-python3-runtime",
    ):
        print(f"{pkg:24} {version(pkg)}")
    if not version("antlr4-python3-runtime").startswith("4.13"):
        print("!! antlr4-python3-runtime must be 4.13.x (install with -c constraints.txt)")
        ok = False
    print(f"state dir      {settings.state_dir()}")
    print(f"batches dir    {settings.batches_dir()}")

    from retraining_assets.definitions import defs
    from retraining_assets.doctor import backend_report

    print("backends")
    for line in backend_report(defs.resources or {}, os.environ):
        print(line.render())
        ok = ok and line.ok
    return 0 if ok else 1


def _version_arg(text: str) -> int:
    """A production version number from the command line: a whole number from 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: production versions are numbered from 1")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``retraining`` console command."""
    parser = argparse.ArgumentParser(prog="retraining", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data_commands(sub)
    _add_model_commands(sub)
    _add_replay_command(sub)
    _add_analysis_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def _add_data_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``build-batches`` and ``prepare-data``."""
    p = sub.add_parser(
        "build-batches", help="write batch files: flights demo (dvc repro) or --dataset CONFIG"
    )
    p.add_argument("--out", default="data/batches")
    p.add_argument("--dataset", default=None, help="dataset configuration YAML")
    p.add_argument("--max-weeks", type=int, default=None, help="at most this many batches")
    p.set_defaults(func=cmd_build_batches)

    p = sub.add_parser("prepare-data", help="dvc repro + push the demo batches")
    p.set_defaults(func=cmd_prepare_data)


def _add_model_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``demo``, ``rollback``, ``show-lineage`` and ``restore-data``."""
    p = sub.add_parser("demo", help="prepare data, train a first model, then retrain later")
    p.add_argument("--first-weeks", type=int, default=8, help="training batches of model one")
    p.add_argument("--later-week", type=int, default=20, help="index of the retrain test batch")
    p.add_argument("--skip-prepare", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("rollback", help="serve an earlier production version again")
    p.add_argument(
        "--to", type=_version_arg, default=None, help="version to restore (default: previous)"
    )
    p.add_argument("--reason", default="manual rollback")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("show-lineage", help="lineage of a production version")
    p.add_argument("version", type=_version_arg, nargs="?", default=None, help="default: serving")
    p.set_defaults(func=cmd_show_lineage)

    p = sub.add_parser("restore-data", help="restore a dataset version by its DVC md5")
    p.add_argument("md5")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_restore_data)


def _add_replay_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``replay``."""
    p = sub.add_parser("replay", help="replay history under retraining policies")
    p.add_argument("--config", help="project/dataset configuration YAML (dataset:, triggers:)")
    p.add_argument("--source", help="folder of batch files (default: the demo's data/batches)")
    p.add_argument(
        "--policy",
        default="combined",
        help="never|weekly|drift|performance|combined|estimated|all (all: every one but"
        " estimated), or a comma list (weekly,drift; all,estimated)",
    )
    p.add_argument("--out", default="replay_out")
    p.add_argument("--initial", type=int, default=9, help="batches before the first model")
    p.add_argument("--window", type=int, default=8, help="rolling window of each retraining")
    p.add_argument("--subsample", type=float, default=None, help="share of rows per batch")
    p.add_argument("--periods", type=int, default=None, help="replay at most this many periods")
    p.add_argument(
        "--keep-state",
        action="store_true",
        help="keep each policy's state in OUT, its Dagster runs in SQLite files for the UI"
        " (default: the instance is in memory, ~15x faster per event)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="policies replayed at once, each in its own process (default: one per core)",
    )
    p.add_argument(
        "--training-cache",
        default=None,
        help="folder of trained boosters by their inputs, kept across replays of the same data"
        " (default: one for this replay only)",
    )
    p.set_defaults(func=cmd_replay)


def _add_analysis_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``analyze`` and ``doctor``."""
    p = sub.add_parser("analyze", help="when did the model begin to degrade (replay output)")
    p.add_argument("out", help="a replay's output folder (with replay.json)")
    p.add_argument("--policy", default=None, help="which policy's history (default: never)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("doctor", help="versions, paths, dependency traps, backends reachable")
    p.set_defaults(func=cmd_doctor)


if __name__ == "__main__":
    raise SystemExit(main())
