"""A user's first session in the Dagster UI, in headless Chromium against a real ``dagster dev``.

The asset graph of the retraining chain, "Materialize all" on it, the served model's code version,
DVC md5 and MLflow link on ``production_model``, and a sensor started from Automation. Debian's
``chromium`` is driven by Playwright (Playwright's own browser download cannot work here).

The test skips (with the reason) when chromium or Playwright is missing, except when
``RETRAINING_BROWSER_REQUIRED=1`` (``.ci/run`` sets it): then it fails. Screenshots of each step
go to the test's tmp folder; on failure they, the failing page and the ``dagster dev`` log are
copied to ``test-artifacts/browser/`` (or ``$RETRAINING_BROWSER_ARTIFACTS``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import pytest

from retraining_assets.settings import project_root

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("RETRAINING_CHROMIUM", "/usr/bin/chromium"))
#: Flags for a headless browser that talks only to 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCATION = "retraining_assets.definitions"
SENSOR = "new_batch_sensor"
#: The chain "Materialize all" launches: training_dataset and everything downstream of it.
CHAIN_SELECTION = "key:training_dataset+"
#: Port range tried first (then any free port).
PORTS = range(3100, 3200)
#: Generous: a cold run on a loaded 2-core CI machine (~30 s when idle).
RUN_TIMEOUT_S = 300
MLFLOW_UI = "http://mlflow.example.test:5000"


def _missing_browser() -> str | None:
    """Why the browser test cannot run here, or ``None`` when it can."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed"
    if not CHROMIUM.exists():
        return f"Debian's chromium is not installed ({CHROMIUM}; apt-get install chromium)"
    return None


_REQUIRED = os.environ.get("RETRAINING_BROWSER_REQUIRED") == "1"
_MISSING = _missing_browser()
# Skipped before any fixture runs (a skip costs nothing), unless CI requires the test.
pytestmark.append(pytest.mark.skipif(_MISSING is not None and not _REQUIRED, reason=str(_MISSING)))


@pytest.fixture(autouse=True)
def _require_browser() -> None:
    """With ``RETRAINING_BROWSER_REQUIRED=1``, a missing browser fails the test."""
    if _MISSING is not None:
        pytest.fail(f"RETRAINING_BROWSER_REQUIRED=1 but {_MISSING}")


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST one GraphQL query to the webserver; its ``data`` (errors raise)."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{base}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert not payload.get("errors"), payload["errors"]
    return payload["data"]


def sensor_status(base: str, name: str) -> str:
    """The sensor's state (``RUNNING``, ``STOPPED``) as the webserver reads it."""
    data = graphql(
        base,
        """query ($selector: SensorSelector!) {
             sensorOrError(sensorSelector: $selector) {
               __typename
               ... on Sensor { sensorState { status } }
             }
           }""",
        {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": "__repository__",
                "sensorName": name,
            }
        },
    )
    sensor = data["sensorOrError"]
    assert sensor["__typename"] == "Sensor", sensor
    return str(sensor["sensorState"]["status"])


def _wait_ready(base: str, server: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Until the webserver answers and the code location is loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"dagster dev exited; see {log}"
        try:
            data = graphql(
                base,
                "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }",
            )
        except OSError:
            time.sleep(1)
            continue
        entries = data["workspaceOrError"]["locationEntries"]
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            return
        time.sleep(1)
    raise AssertionError(f"dagster dev not ready in {timeout:.0f} s; see {log}")


@dataclass
class DagsterUI:
    """A running ``dagster dev`` and where its log goes."""

    base: str
    log: Path


@pytest.fixture
def dagster_ui(project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterUI]:
    """``dagster dev`` on 127.0.0.1 over an isolated project with five ingested batches."""
    from retraining_assets_tests.dagster.helpers import ingest, write_batches

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(project_root() / "var" / "dagster" / "dagster.yaml", home / "dagster.yaml")
    config = project.home / "retraining.yaml"
    config.write_text("dataset: synthetic\n")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("RETRAINING_CONFIG", str(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("RETRAINING_MLFLOW_UI_URL", MLFLOW_UI)
    monkeypatch.setenv("RETRAINING_DAGSTER_UI_URL", base)
    monkeypatch.delenv("RETRAINING_ALERT_WEBHOOK", raising=False)
    batch_ids = write_batches(project, n_batches=5, rows=600)
    # Create (migrate) the instance's SQLite stores before dagster dev starts: two processes
    # creating a new store at once race in alembic ("more than one head present").
    with dg.DagsterInstance.get() as instance:
        instance.get_runs(limit=1)
    log = tmp_path / "dagster_dev.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster"),
                "dev",
                "-m",
                LOCATION,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = time.monotonic()
    try:
        # Ingest while the webserver and daemon start (both take tens of seconds); the stores
        # exist already, so concurrent writers are fine.
        with dg.DagsterInstance.get() as instance:
            assert all(ingest(instance, batch_ids).values())
        print(f"ingested in {time.monotonic() - started:.1f} s")
        _wait_ready(base, server, log)
        print(f"dagster dev ready in {time.monotonic() - started:.1f} s")
        yield DagsterUI(base=base, log=log)
    finally:
        # Nothing to keep: a graceful stop of the webserver, daemon and code server took ~25 s.
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- The user's steps (also usable against any running ``dagster dev``) ---------------------


def prepare(page: Page) -> None:
    """Patient waits (the UI loads in parts) and Dagster's community dialog skipped when shown."""
    from playwright.sync_api import expect

    # A cold page on a loaded 2-core machine takes seconds per GraphQL query.
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    # The newsletter dialog covers the page once per browser profile, at an unknown moment.
    page.add_locator_handler(
        page.get_by_role("dialog").get_by_role("button", name="Skip"),
        lambda skip: skip.click(),
    )


def open_chain_graph(page: Page, base: str) -> None:
    """The global lineage graph, filtered to the retraining chain."""
    from playwright.sync_api import expect

    # The address "View in graph" links to: the lineage page with the selection in its path. (Typed
    # into the search field, keys are lost when the community dialog pops up mid-typing.)
    page.goto(f"{base}/asset-groups~{urllib.parse.quote(CHAIN_SELECTION)}")
    expect(page.get_by_role("textbox", name="Search and filter assets")).to_be_attached()
    expect(page.locator(".CodeMirror-line").first).to_have_text(CHAIN_SELECTION)
    for name in ("training_dataset", "candidate_model", "production_model"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    expect(page.get_by_text("raw_batches", exact=True)).to_have_count(0)


def materialize_all(page: Page) -> str:
    """Click "Materialize all…", follow the toast to the run; the run id."""
    from playwright.sync_api import expect

    page.get_by_role("button", name=re.compile(r"Materialize all")).click()
    toast = page.get_by_role("region", name=re.compile("Notifications"))
    toast.get_by_text(re.compile("Launched run")).wait_for()
    toast.get_by_role("link", name="View").or_(toast.get_by_text("View", exact=True)).first.click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    match = re.search(r"/runs/([0-9a-f-]{36})", page.url)
    assert match
    return match.group(1)


def wait_run(base: str, run_id: str, timeout: float = RUN_TIMEOUT_S) -> str:
    """The run's final status, read through GraphQL."""
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        data = graphql(
            base,
            "query ($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
            {"id": run_id},
        )
        status = data["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return str(status)
        time.sleep(1)
    raise AssertionError(f"run {run_id} still {status} after {timeout:.0f} s")


def open_production_model(page: Page, base: str, facts: dict[str, str]) -> str:
    """``production_model``'s page shows each of ``facts``' values; the MLflow link's href."""
    from playwright.sync_api import expect

    page.goto(f"{base}/assets/production_model")
    for value in facts.values():
        expect(page.get_by_text(value).first).to_be_visible()
    link = page.locator(f'a[href^="{MLFLOW_UI}"]').first
    expect(link).to_be_visible()
    # The page scrolls inside a panel (a full-page screenshot misses it): bring the rows of the
    # MLflow link and the code version (next to each other) into view, keys included.
    page.get_by_role("cell", name="code/version", exact=True).scroll_into_view_if_needed()
    return str(link.get_attribute("href"))


def start_sensor(page: Page, base: str, name: str) -> None:
    """Turn ``name`` on with its switch in the Automation list."""
    from playwright.sync_api import expect

    page.goto(f"{base}/automation")
    # One list item per sensor or schedule: a selection checkbox, then the on/off switch (a
    # checkbox in switch format, rendered once the sensor's state has loaded, disabled until then).
    item = page.locator("[data-index]").filter(has=page.locator(f'a[href$="/sensors/{name}"]'))
    switch = item.locator('label[class*="formatSwitch"] input[type="checkbox"]')
    expect(switch).to_be_enabled()
    expect(switch).not_to_be_checked()
    # The <input> itself is hidden; its <label> is the switch the user sees and clicks.
    switch.locator("xpath=..").click()
    expect(switch).to_be_checked()
    expect(switch).to_be_enabled()  # the change has been saved


# --- The test -------------------------------------------------------------------------------


def _artifacts_dir() -> Path:
    return Path(
        os.environ.get("RETRAINING_BROWSER_ARTIFACTS") or project_root() / "test-artifacts/browser"
    )


def test_user_materializes_the_chain_and_starts_a_sensor(
    dagster_ui: DagsterUI, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import sync_playwright

    from retraining_assets.definitions import defs
    from retraining_assets_tests.dagster.helpers import served

    base = dagster_ui.base
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        started = time.monotonic()

        def shot(name: str) -> None:
            page.screenshot(path=shots / f"{name}.png", full_page=True)
            print(f"{name} at {time.monotonic() - started:.1f} s")

        prepare(page)
        try:
            open_chain_graph(page, base)
            shot("1-chain-graph")

            run_id = materialize_all(page)
            assert wait_run(base, run_id) == "SUCCESS"
            page.reload()
            from playwright.sync_api import expect

            expect(page.get_by_text("Success", exact=True).first).to_be_visible()
            shot("2-run-success")
            with dg.DagsterInstance.get() as instance:
                run = instance.get_run_by_id(run_id)
            assert run is not None and run.tags.get("retraining/gate") == "promote", run

            record = served()
            assert record["extra"]["dagster_run_id"] == run_id
            code_version = (
                defs.resolve_asset_graph().get(dg.AssetKey("production_model")).code_version
            )
            assert code_version
            href = open_production_model(
                page,
                base,
                {"code/version": code_version, "dvc/md5": record["model_md5"]},
            )
            assert href.startswith(MLFLOW_UI) and href.endswith(
                f"/runs/{record['mlflow_run_id']}"
            ), href
            shot("3-production-model")

            assert sensor_status(base, SENSOR) == "STOPPED"
            start_sensor(page, base, SENSOR)
            shot("4-automation-sensor-started")
            assert sensor_status(base, SENSOR) == "RUNNING"
        except BaseException:
            artifacts = _artifacts_dir()
            artifacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=artifacts / f"{request.node.name}-failure.png", full_page=True)
            for png in shots.glob("*.png"):
                shutil.copy(png, artifacts / png.name)
            shutil.copy(dagster_ui.log, artifacts / "dagster_dev.log")
            raise
        finally:
            browser.close()
    if os.environ.get("RETRAINING_BROWSER_ARTIFACTS"):
        artifacts = _artifacts_dir()
        artifacts.mkdir(parents=True, exist_ok=True)
        for png in shots.glob("*.png"):
            shutil.copy(png, artifacts / png.name)
