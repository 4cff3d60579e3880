"""Files other processes read while we write them: atomic replacement and an exclusive lock.

Every file the project writes for another process to read (batches, store objects, schema
files, restored DVC versions) is written through :func:`atomic_path` or :func:`write_atomic`:
the bytes go to a temporary file beside the target (``.<name>.<random>.tmp``: store listings
and batch scans skip names starting with ``.``), are flushed to disk, and only then take the
target's name. A reader sees the old file or the new one, never a torn one; a write that fails
or is killed leaves the old file as it was.

:func:`file_lock` serialises work across processes that share a folder (DVC operations, the
first migration of a SQLite store); :func:`single_flight` builds on it so that processes
sharing a cache folder compute an entry once. This module has no Dagster import.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, exclusive: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` that becomes ``path`` when the block ends without error.

    Write the new content to the yielded path (with any writer: ``to_parquet``, ``copyfile``...).
    On a clean exit it is fsynced and renamed over ``path``; on an exception it is deleted and
    ``path`` keeps its old content. Parent folders are created.

    Args:
        path: The file to write.
        exclusive: Install the file with a hard link instead of a rename: it fails with
            ``FileExistsError`` (leaving the existing file alone) when ``path`` exists, so of
            two writers racing for one name exactly one wins.

    Yields:
        The temporary path to write to.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())  # the bytes are on disk before the name points at them
        if exclusive:
            os.link(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Replace the content of ``path`` with ``data`` (text is written as UTF-8), atomically.

    See :func:`atomic_path`: readers never see a half-written file, and a failed write leaves
    the old file intact.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    raw = data.encode() if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
    return Path(path)


@contextlib.contextmanager
def file_lock(lock_file: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if missing) for the block.

    Waits while another process (or another open of the same file) holds it. The lock is
    released when the block ends, and by the kernel if the process dies. Not reentrant.
    """
    path = Path(lock_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def single_flight(
    lock_file: str | os.PathLike[str], lookup: Callable[[], _T | None], compute: Callable[[], _T]
) -> _T:
    """``lookup()`` if it finds the entry, else ``compute()`` by one process at a time.

    For a cache shared by processes: ``compute`` computes the entry *and stores it* where
    ``lookup`` finds it. Two processes missing the same entry at once would both compute it;
    here the second waits on ``lock_file`` (one per entry) while the first computes, then looks
    again and finds it. The lock is a :func:`file_lock`: a holder that fails releases it when
    its block ends, and one that dies, when the kernel closes its file; the waiter then looks
    again and computes the entry itself.

    Args:
        lock_file: The entry's lock (created if missing, left in place: removing a lock file
            that another process may be waiting on would let a third one in).
        lookup: The stored entry, or ``None`` on a miss.
        compute: Computes and stores the entry, and returns it.
    """
    found = lookup()
    if found is not None:  # the common case takes no lock
        return found
    with file_lock(lock_file):
        found = lookup()
        return found if found is not None else compute()
