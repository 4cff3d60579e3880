"""A replay worker process killed from outside: the unfinished policies are replayed again from
a fresh state, and nothing of the killed attempt reaches the report."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from retraining_assets.replay import run_replay
from retraining_assets_tests.replay.daily import daily_batches

pytestmark = pytest.mark.slow


def test_a_killed_worker_is_replayed_again_from_a_fresh_state(tmp_path: Path, project) -> None:
    batches, schema_file = daily_batches(tmp_path, 7, 150, seed=5)
    options = dict(
        initial=4,
        window_batches=3,
        max_periods=1,
        config={"triggers": {"min_labelled_rows": 100}},
        schema_file=schema_file,
    )
    lines: list[str] = []
    outcome: dict[str, object] = {}

    def replay() -> None:
        try:
            outcome["report"] = run_replay(
                batches,
                ["never", "weekly"],
                tmp_path / "killed",
                jobs=2,
                keep_state=True,
                progress=lines.append,
                **options,
            )
        except BaseException as exc:  # handed to the test thread below
            outcome["error"] = exc

    # Only the replay's own workers are killed, not a process an earlier test left behind.
    before = {p.pid for p in multiprocessing.active_children()}
    thread = threading.Thread(target=replay)
    thread.start()
    # Killed once each policy has trained and registered its first model (version 1): a replay
    # that went on from that state would number its models from 2.
    trained = [
        tmp_path / "killed" / "state" / p / "var" / "store" / "artifacts" / "candidate_model.txt"
        for p in ("never", "weekly")
    ]
    deadline = time.monotonic() + 300
    while not all(t.is_file() for t in trained) and thread.is_alive():
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.05)
    workers = [p for p in multiprocessing.active_children() if p.pid not in before]
    assert workers
    for worker in workers:
        os.kill(worker.pid, signal.SIGKILL)
    thread.join(600)
    assert "error" not in outcome, outcome.get("error")
    assert any("worker process died" in line for line in lines), lines

    report = outcome["report"]
    assert isinstance(report, dict)
    policies = report["policies"]
    assert [p["served_version"] for p in policies["never"]["periods"]] == [1]
    (period,) = policies["weekly"]["periods"]
    assert period["served_version"] == 1
    (event,) = period["events"]
    assert (event["cause"], event["success"]) == ("weekly", True)
    assert event["version"] == (2 if event["promoted"] else 1)
    assert (policies["never"]["retrainings"], policies["weekly"]["retrainings"]) == (0, 1)
