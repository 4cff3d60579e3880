"""The retraining chain launched from the UI ("Materialize all") vs ``retraining_job`` from the CLI.

Both run on the same isolated project (a temporary ``RETRAINING_HOME``, batch folder and
``DAGSTER_HOME`` with the project's ``dagster.yaml``; synthetic batches ingested once) and the same
``dagster dev`` instance:

- ``ui``: what the UI's "Materialize all" on the chain sends, through the webserver: the GraphQL
  mutation ``launchPipelineExecution`` on the implicit asset job ``__ASSET_JOB`` with the five
  chain assets and their checks selected, tag ``dagster/from_ui``. The run then goes the way every
  UI run goes: the queued run coordinator, the daemon's dequeue loop, the run launcher, a new run
  worker process. Timed from the request to the run's ``RUN_SUCCESS`` event.
- ``job``: ``dagster job execute -j retraining_job`` in a new process (no queue, no daemon),
  timed from the process start to its exit.

One untimed ``job`` run first (the first model, the MLflow experiment, the DVC repository), then
the contenders alternate (ui, job, job, ui, ...). Each timed run trains and evaluates a new
candidate against the champion. Medians and the ratio ui / job are printed (target <= 1.2), and for
each run where the time went: before the run worker existed (queue + launch), worker start to
``RUN_START`` (imports, loading the definitions), the steps, and after the last step.

    .venv/bin/python benchmarks/ui_vs_job.py [--repeats 3] [--batches 6] [--rows 5000] [--port 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCATION = "retraining_assets.definitions"
DAGSTER = str(Path(sys.executable).parent / "dagster")
CHAIN = ("training_dataset", "validated_dataset", "candidate_model", "evaluation_report")
CHAIN += ("production_model",)

LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

CHECKS = """
query {
  assetNodes(assetKeys: [%s]) { assetKey { path } assetChecksOrError { ... on AssetChecks {
    checks { name } } } }
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """One GraphQL request to the webserver; its ``data``."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{base}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise RuntimeError(payload["errors"])
    return payload["data"]


def prepare(work: Path, batches: int, rows: int) -> dict[str, str]:
    """An isolated project under ``work`` with ``batches`` ingested synthetic batches; its env."""
    home, batch_dir, dagster_home = work / "var", work / "batches", work / "dagster_home"
    for folder in (home / "mlflow", batch_dir, dagster_home):
        folder.mkdir(parents=True)
    shutil.copyfile(ROOT / "var" / "dagster" / "dagster.yaml", dagster_home / "dagster.yaml")
    config = work / "retraining.yaml"
    config.write_text("dataset: synthetic\n")
    env = {
        "RETRAINING_HOME": str(home),
        "RETRAINING_BATCHES_DIR": str(batch_dir),
        "RETRAINING_CONFIG": str(config),
        "DAGSTER_HOME": str(dagster_home),
        "OMP_NUM_THREADS": "1",
    }
    os.environ.update(env)
    for name in ("RETRAINING_STATE_URL", "RETRAINING_ALERT_WEBHOOK"):
        os.environ.pop(name, None)

    import dagster as dg

    from retraining_assets.core import synthetic
    from retraining_assets.definitions import defs
    from retraining_assets.defs.assets import raw_batches
    from retraining_assets.defs.resources import BatchSourceResource

    history = synthetic.make_history(batches, rows, seed=3)
    synthetic.write_history(history, batch_dir)
    resources = {**(defs.resources or {}), "batch_source": BatchSourceResource(dataset="synthetic")}
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("batches", sorted(history))
        for batch_id in sorted(history):
            result = dg.materialize(
                [raw_batches],
                instance=instance,
                partition_key=batch_id,
                resources=resources,
                raise_on_error=False,
            )
            if not result.success:
                raise RuntimeError(f"batch {batch_id} was not ingested")
    return env


def start_dev(port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """``dagster dev`` (webserver + daemon) on 127.0.0.1:``port``, ready with the code loaded."""
    with log.open("w") as out:
        server = subprocess.Popen(
            [DAGSTER, "dev", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"dagster dev exited; see {log}")
        try:
            data = graphql(
                base, "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
            )
            entries = data["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return server
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"dagster dev not ready in 300 s; see {log}")


def stop(server: subprocess.Popen) -> None:
    """Stop ``dagster dev`` and everything it started."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def ui_params(base: str) -> dict[str, Any]:
    """The ``ExecutionParams`` the UI sends for "Materialize all" on the chain."""
    keys = ", ".join(f"{{path: [{json.dumps(k)}]}}" for k in CHAIN)
    nodes = graphql(base, CHECKS % keys)["assetNodes"]
    checks = [
        {"assetKey": {"path": node["assetKey"]["path"]}, "name": check["name"]}
        for node in nodes
        for check in node["assetChecksOrError"].get("checks", [])
    ]
    return {
        "mode": "default",
        "runConfigData": "{}",
        "executionMetadata": {"tags": [{"key": "dagster/from_ui", "value": "true"}]},
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": [k]} for k in CHAIN],
            "assetCheckSelection": checks,
        },
    }


def run_ui(base: str, params: dict[str, Any]) -> tuple[float, str]:
    """Launch through the webserver; (seconds from request to RUN_SUCCESS, run id)."""
    import dagster as dg

    started = time.time()
    result = graphql(base, LAUNCH, {"params": params})["launchPipelineExecution"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(result)
    run_id = result["run"]["runId"]
    with dg.DagsterInstance.get() as instance:
        while True:
            record = instance.get_run_record_by_id(run_id)
            assert record is not None
            if record.dagster_run.is_finished:
                break
            time.sleep(0.2)
        if record.dagster_run.status != dg.DagsterRunStatus.SUCCESS:
            raise RuntimeError(f"UI run {run_id} ended {record.dagster_run.status}")
        end = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)[-1].timestamp
    return end - started, run_id


def run_job(env: dict[str, str]) -> tuple[float, str]:
    """``dagster job execute -j retraining_job``; (seconds from process start to exit, run id)."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        before = {r.run_id for r in instance.get_runs(dg.RunsFilter(job_name="retraining_job"))}
    started = time.time()
    subprocess.run(
        [DAGSTER, "job", "execute", "-m", LOCATION, "-j", "retraining_job"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    seconds = time.time() - started
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="retraining_job"))
        new = [r for r in runs if r.run_id not in before]
        assert len(new) == 1 and new[0].status == dg.DagsterRunStatus.SUCCESS, new
    return seconds, new[0].run_id


def breakdown(run_id: str, started: float, seconds: float) -> dict[str, float]:
    """Where a run's time went, from its event log (seconds; ``started`` = request/process start).

    ``create``: request to ``PIPELINE_ENQUEUED`` (the webserver created the run; 0 for the CLI);
    ``queue``: to ``PIPELINE_STARTING`` (the daemon's dequeue loop took the run; 0 for the CLI);
    ``worker_up``: to the worker's "Started process for run" event (a new process, its imports
    and the definitions loaded; 0 for the CLI); ``to_run_start``: to ``RUN_START`` (for the CLI:
    its imports and definitions); ``to_first_step``: resources and the executor; ``steps``: first
    ``STEP_START`` to last ``STEP_SUCCESS``; ``after``: to ``RUN_SUCCESS``; ``exit``: from there
    to the end of the timing (the CLI process's exit; 0 for the UI).
    """
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        logs = instance.all_logs(run_id)
    by_type: dict[str, list[float]] = {}
    for entry in logs:
        if entry.dagster_event is not None:
            by_type.setdefault(entry.dagster_event.event_type_value, []).append(entry.timestamp)
    # The UI's run worker is a new process started by the launcher; the CLI's is the CLI itself.
    worker = min(
        (e.timestamp for e in logs if (e.message or "").startswith("Started process for run")),
        default=None,
    )
    start = by_type["PIPELINE_START"][0]
    # PIPELINE_STARTING: the daemon took the run off the queue and asked the launcher to start it.
    launched = by_type.get("PIPELINE_STARTING", [started])[0]
    worker = launched if worker is None else worker
    first_step = by_type["STEP_START"][0]
    last_step = by_type["STEP_SUCCESS"][-1]
    end = by_type["PIPELINE_SUCCESS"][-1]
    # PIPELINE_ENQUEUED: the webserver has created the run (and its planned-materialization events).
    enqueued = by_type.get("PIPELINE_ENQUEUED", [started])[0]
    return {
        "create": enqueued - started,
        "queue": launched - enqueued,
        "worker_up": worker - launched,
        "to_run_start": start - worker,
        "to_first_step": first_step - start,
        "steps": last_step - first_step,
        "after": end - last_step,
        # The CLI process exits after RUN_SUCCESS; the UI shows the run done at RUN_SUCCESS.
        "exit": started + seconds - end,
    }


def main() -> None:
    """Alternate UI and CLI launches of the chain and print both times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per contender")
    parser.add_argument("--batches", type=int, default=6, help="synthetic weekly batches")
    parser.add_argument("--rows", type=int, default=5000, help="rows per batch")
    parser.add_argument("--port", type=int, default=0, help="dagster dev port (0: any free)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ui-vs-job-"))
    print(f"work folder {work}; {args.batches} batches x {args.rows} rows; load {os.getloadavg()}")
    t0 = time.monotonic()
    env = prepare(work, args.batches, args.rows)
    print(f"ingested in {time.monotonic() - t0:.1f} s")
    server = start_dev(args.port or _free_port(), env, work / "dagster_dev.log")
    base = f"http://127.0.0.1:{server.args[server.args.index('-p') + 1]}"
    rows: list[tuple[str, float, dict[str, float]]] = []
    try:
        params = ui_params(base)
        seconds, _ = run_job(env)
        print(f"warm-up job run (first model): {seconds:.1f} s")
        order = []
        for i in range(args.repeats):
            order += ["ui", "job"] if i % 2 == 0 else ["job", "ui"]
        for contender in order:
            started = time.time()
            seconds, run_id = run_ui(base, params) if contender == "ui" else run_job(env)
            parts = breakdown(run_id, started, seconds)
            rows.append((contender, seconds, parts))
            detail = "  ".join(f"{k} {v:5.1f}" for k, v in parts.items())
            print(f"{contender:4s} {seconds:6.1f} s   {detail}   load {os.getloadavg()[0]:.1f}")
    finally:
        stop(server)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    ui = statistics.median(s for c, s, _ in rows if c == "ui")
    job = statistics.median(s for c, s, _ in rows if c == "job")
    print(f"\nmedian ui  {ui:.1f} s   (GraphQL launch -> queue -> daemon -> run worker)")
    print(f"median job {job:.1f} s   (dagster job execute -j retraining_job)")
    print(f"ratio ui / job {ui / job:.2f}  (target <= 1.2)")
    for part in rows[0][2]:
        med_ui = statistics.median(p[part] for c, _, p in rows if c == "ui")
        med_job = statistics.median(p[part] for c, _, p in rows if c == "job")
        print(f"  {part:14s} ui {med_ui:6.1f} s   job {med_job:6.1f} s")


if __name__ == "__main__":
    main()
