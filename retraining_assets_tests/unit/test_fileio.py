"""Atomic writes and the file lock: a failed write leaves the old file, the lock excludes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from retraining_assets.fileio import atomic_path, file_lock, single_flight, write_atomic


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_atomic_creates_folders_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.json"
    assert write_atomic(path, b"old") == path
    write_atomic(path, "new \N{MINUS SIGN}")
    assert path.read_text(encoding="utf-8") == "new \N{MINUS SIGN}"
    assert _names(path.parent) == ["x.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_intact(tmp_path: Path) -> None:
    path = write_atomic(tmp_path / "x.bin", b"old bytes")
    with pytest.raises(RuntimeError, match="writer died"), atomic_path(path) as tmp:
        tmp.write_bytes(b"half of the new")
        assert tmp.parent == path.parent and tmp.name.startswith(".x.bin.")
        raise RuntimeError("writer died")
    assert path.read_bytes() == b"old bytes"
    assert _names(tmp_path) == ["x.bin"]


def test_a_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_exclusive_write_refuses_an_existing_name(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    with atomic_path(path, exclusive=True) as tmp:
        tmp.write_bytes(b"first")
    with pytest.raises(FileExistsError), atomic_path(path, exclusive=True) as tmp:
        tmp.write_bytes(b"second")
    assert path.read_bytes() == b"first"
    assert _names(tmp_path) == ["x.bin"]


def test_file_lock_excludes_a_second_holder_until_released(tmp_path: Path) -> None:
    lock = tmp_path / "sub" / ".lock"
    events: list[str] = []

    def second() -> None:
        with file_lock(lock):  # its own open file: flock excludes it like another process
            events.append("second")

    with file_lock(lock):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        events.append("first done")
    thread.join(timeout=5)
    assert events == ["first done", "second"]
    with file_lock(lock):  # released: taken again at once
        pass


def test_single_flight_computes_once_while_a_second_caller_waits(
    tmp_path: Path, await_lock_waiter
) -> None:
    lock, entry = tmp_path / ".entry.lock", tmp_path / "entry"
    computed: list[str] = []
    second: list[str] = []

    def lookup() -> str | None:
        return entry.read_text() if entry.exists() else None

    def compute() -> str:
        computed.append("x")
        thread.start()
        await_lock_waiter(lock)  # the second caller missed too and waits for this one
        entry.write_text("value")
        return "value"

    thread = threading.Thread(target=lambda: second.append(single_flight(lock, lookup, compute)))
    assert single_flight(lock, lookup, compute) == "value"
    thread.join(timeout=5)
    assert second == ["value"] and computed == ["x"]


def test_single_flight_computes_itself_when_the_holder_fails_or_dies(
    tmp_path: Path, await_lock_waiter
) -> None:
    lock = tmp_path / ".entry.lock"

    def failing() -> str:
        raise RuntimeError("holder failed")

    with pytest.raises(RuntimeError):
        single_flight(lock, lambda: None, failing)
    assert single_flight(lock, lambda: None, lambda: "mine") == "mine"  # released on failure

    # A holder killed while computing: the kernel releases its lock.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from retraining_assets.fileio import file_lock\n"
            f"with file_lock({str(lock)!r}):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        got: list[str] = []
        waiter = threading.Thread(
            target=lambda: got.append(single_flight(lock, lambda: None, lambda: "mine"))
        )
        waiter.start()
        await_lock_waiter(lock)
        holder.kill()
        waiter.join(timeout=5)
        assert got == ["mine"]
    finally:
        holder.kill()
        holder.wait()
