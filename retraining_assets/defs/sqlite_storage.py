"""Dagster's SQLite storage with a pool-slot claim that two processes cannot both win.

Every step of the retraining chain is in the pool ``retraining`` with one slot, so that two
retrainings never run (and never train LightGBM) at once. On the default SQLite instance that
promise did not hold: Dagster's ``SqlEventLogStorage._claim_concurrency_slot`` first SELECTs a
free slot and then UPDATEs it by id. SQLite (through Python's ``sqlite3``) begins the write
transaction only at the UPDATE, so two run workers that claim at the same moment both read the
same free slot and both write it; each is told CLAIMED, and both steps run. Measured with two
processes claiming the one slot at the same instant (``retraining_assets_tests/dagster/
test_sqlite_storage.py``): 60 of 100 rounds granted it twice with Dagster's class, 0 with this
one. It showed up in CI as two ``training_dataset`` steps overlapping in the pool test.

:class:`ClaimSafeSqliteEventLogStorage` claims with one conditional UPDATE (the slot is taken
only if it is still free when the write lock is held), and :class:`SqliteStorage` is Dagster's
``DagsterSqliteStorage`` with that event log. ``var/dagster/dagster.yaml`` selects it::

    storage:
      custom:
        module: retraining_assets.defs.sqlite_storage
        class: SqliteStorage
        config:
          base_dir: {env: DAGSTER_HOME}

Postgres needs none of this: there the SELECT ... FOR UPDATE SKIP LOCKED holds the row.

The same classes keep the instance's SQLite connections open instead of opening one per
statement. Dagster's SQLite storages build a new engine with ``NullPool`` for every use: each
event of a run (a retraining run writes ~76; asset and check events go to two databases)
opened the run's database, committed and closed it, and closing the last connection of a
database in WAL mode checkpoints the log into the file and deletes it (two more fsyncs and a
file deletion): 3-5 ms an event on an idle disk, 30+ ms while other processes wrote to the
disk. Here the event log's index, the run storage and the most recent run shards each have one
engine whose connection stays open, and a new run shard is put in WAL mode before its tables
are created (Dagster switches after ``create_all``, so its ~20 DDL statements each committed
through a rollback journal).

Durability is unchanged: WAL mode with ``synchronous=FULL`` (SQLite's default here), so every
commit is on disk when it returns, after a crash of the process or a power loss alike, and the
files are consistent at any point (``NORMAL`` would skip the fsync per commit and could lose the
last commits on a power loss; it measured no faster per cycle than ``FULL`` once connections
stay open, and the project's own stores fsync every write). Committed rows may sit in the WAL
until a checkpoint (automatic every 1,000 pages, and when the last connection closes); every
reader sees them. The UI's live run log watches the run's ``.db`` file, which a checkpoint no
longer rewrites after each event, so a write to a run shard sets the file's modification time.

Each run's events go to a new database (a run shard). Dagster makes it by loading its ~90
event-log migration scripts twice, to read the head revision and to stamp it: 55-100 ms of a
no-op run's ~340 ms (``benchmarks/run_overhead.py``). Here the scripts are read once per process,
and a new shard's tables and stamp are written in one transaction under the write lock: 12-20
ms, the same schema and revision.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator

import sqlalchemy as db
import sqlalchemy.exc as db_exc
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable, SqlEventLogStorageMetadata
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import get_alembic_config
from dagster._core.storage.sqlalchemy_compat import db_select
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils.concurrency import ConcurrencySlotStatus
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

#: Run shards whose connection stays open besides the index: the run being written and a few a
#: UI or daemon reads; older ones are closed (each open database holds file descriptors).
OPEN_RUN_SHARDS = 4


def _set_pragmas(dbapi_connection, _record) -> None:
    """Every new connection: WAL journal (a no-op once set) and fsync on every commit."""
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=FULL")


def pooled_engine(conn_string: str, busy_timeout: float | None = None) -> Engine:
    """An engine on one SQLite file that keeps one connection open between uses.

    More connections are opened when threads use it at once (and closed when returned); the
    kept one makes later uses cheap and spares each close the WAL checkpoint of a last
    connection.
    """
    connect_args = {"timeout": busy_timeout} if busy_timeout is not None else {}
    engine = db.create_engine(
        conn_string, poolclass=QueuePool, pool_size=1, max_overflow=-1, connect_args=connect_args
    )
    db.event.listen(engine, "connect", _set_pragmas)
    return engine


@functools.cache
def _event_log_migrations() -> ScriptDirectory:
    """Dagster's event-log migration scripts, read once per process.

    Dagster builds a new ``ScriptDirectory`` for every shard it opens first, which loads and
    executes all ~90 migration files twice (to read the head revision and to stamp it): 55-100 ms
    for each run, whose events go to a new database. One object keeps its revision map.
    """
    scripts = ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))
    # Build the revision map now: later users (any thread) only read it.
    scripts.as_revision_number("head")
    return scripts


class _Engines:
    """Pooled engines by connection string, the least recently used closed past ``limit``.

    Engines made in another process (this object reached a child through ``fork``) are set
    aside untouched: their connections belong to the parent, and SQLite forbids using (or
    closing) a connection in a forked child.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._kept: set[str] = set()
        self._inherited: list[Engine] = []  # referenced so that garbage collection never closes
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def get(
        self, conn_string: str, busy_timeout: float | None = None, keep: bool = False
    ) -> Engine:
        """The engine of ``conn_string``, made on first use (``keep``: never closed for space)."""
        with self._lock:
            if self._pid != os.getpid():
                self._inherited.extend(self._engines.values())
                self._engines.clear()
                self._pid = os.getpid()
            engine = self._engines.get(conn_string)
            if engine is not None:
                self._engines.move_to_end(conn_string)
                return engine
            engine = self._engines[conn_string] = pooled_engine(conn_string, busy_timeout)
            if keep:
                self._kept.add(conn_string)
            evictable = [key for key in self._engines if key not in self._kept]
            for key in evictable[: max(0, len(evictable) - self._limit)]:
                self._engines.pop(key).dispose()
            return engine

    def dispose(self) -> None:
        """Close every connection (a last close checkpoints the WAL into the database)."""
        with self._lock:
            engines = list(self._engines.values()) if self._pid == os.getpid() else []
            self._engines.clear()
        for engine in engines:
            engine.dispose()


class ClaimSafeSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log whose pool-slot claim is one atomic statement.

    Its databases (the index and the recent run shards) keep a connection open between writes.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines = _Engines(OPEN_RUN_SHARDS)
        super().__init__(base_dir, inst_data=inst_data)

    @contextlib.contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """A connection to ``shard`` in a transaction, as Dagster's, from the shard's pool.

        A transaction that changed rows of a run shard ends by setting the file's modification
        time: the UI's live log of a run watches that file.
        """
        with self._db_lock:
            engine = self._engines.get(
                self.conn_string_for_shard(shard),
                busy_timeout=SQLITE_BUSY_TIMEOUT_SECONDS,
                keep=shard == INDEX_SHARD_NAME,
            )
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                changes = raw.total_changes  # type: ignore[union-attr]
                with conn.begin():
                    yield conn
                wrote = raw.total_changes != changes  # type: ignore[union-attr]
            if wrote and shard != INDEX_SHARD_NAME:
                with contextlib.suppress(FileNotFoundError):
                    os.utime(self.path_for_shard(shard))

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        """Make ``engine``'s database the first time this process opens it, as Dagster does.

        A database that has an alembic revision is left alone (its migrations are ``dagster
        instance migrate``'s business, as in Dagster's class). A new one gets the event log's
        tables and the head revision, in one transaction, from the migration scripts read once
        per process. A new index, and any error (e.g. another process making the same database
        at the same moment), take Dagster's own path, which retries such races.
        """
        if for_index_shard:
            super()._initdb(engine, for_index_shard=True)
            return
        try:
            with engine.connect() as conn:
                if MigrationContext.configure(conn).get_current_revision() is not None:
                    return
                raw = conn.connection.dbapi_connection
                # Python's sqlite3 runs DDL outside a transaction (each CREATE its own commit):
                # one explicit transaction, holding the write lock, makes the tables and the
                # stamp appear together; a process that made them meanwhile is seen inside it.
                raw.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
                if MigrationContext.configure(conn).get_current_revision() is None:
                    SqlEventLogStorageMetadata.create_all(conn)
                    MigrationContext.configure(conn).stamp(_event_log_migrations(), "head")
                conn.commit()
        except (db_exc.DatabaseError, sqlite3.DatabaseError):
            super()._initdb(engine, for_index_shard=False)

    def wipe(self) -> None:
        """Close the open run shards first: wiping deletes their files."""
        self._engines.dispose()
        super().wipe()

    def dispose(self) -> None:
        """Stop the watchers and close every open database."""
        super().dispose()
        self._engines.dispose()

    def _claim_concurrency_slot(
        self, concurrency_key: str, run_id: str, step_key: str
    ) -> ConcurrencySlotStatus:
        """Take a free slot of ``concurrency_key`` for the step, or report BLOCKED.

        One UPDATE picks a free slot and takes it while holding SQLite's write lock: a slot
        another process took in between is no longer free, so only one claimer changes a row.
        """
        slots = ConcurrencySlotsTable
        free = (
            db_select([slots.c.id])
            .where(
                db.and_(
                    slots.c.concurrency_key == concurrency_key,
                    slots.c.step_key == None,  # noqa: E711  (SQL IS NULL)
                    slots.c.deleted == False,  # noqa: E712  (SQL = 0)
                )
            )
            .limit(1)
            .scalar_subquery()
        )
        with self.index_connection() as conn:
            taken = conn.execute(
                slots.update()
                .values(run_id=run_id, step_key=step_key)
                .where(db.and_(slots.c.id == free, slots.c.step_key == None))  # noqa: E711
            ).rowcount
        return ConcurrencySlotStatus.CLAIMED if taken else ConcurrencySlotStatus.BLOCKED


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage, its connection kept open between uses."""

    _engines: _Engines | None = None

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection in a transaction, as Dagster's, from the pool."""
        if self._engines is None:
            self._engines = _Engines(1)
        with self._engines.get(self._conn_string, keep=True).connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        """Close the open connection."""
        super().dispose()
        if self._engines is not None:
            self._engines.dispose()


class SqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (runs, event logs, schedules) with the safe slot claim.

    Its run and event log storages keep their SQLite connections open (see the module's
    docstring). The schedule storage is Dagster's: sensor and schedule ticks are seconds apart,
    and ``DagsterInstance.dispose`` never disposes it, so a kept connection would stay open.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # DagsterSqliteStorage.__init__ with the classes above: the same files and folders. Not
        # through it: it would open (and check the migrations of) Dagster's three storages first,
        # 0.2 s more for every process that opens the instance.
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = ClaimSafeSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData, config_value: dict[str, str]
    ) -> SqliteStorage:
        """Build from ``dagster.yaml``'s ``config`` (``base_dir``), as Dagster's class does."""
        return cls.from_local(inst_data=inst_data, **config_value)
