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
"""

from __future__ import annotations

import sqlalchemy as db
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_select
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from dagster._utils.concurrency import ConcurrencySlotStatus


class ClaimSafeSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log whose pool-slot claim is one atomic statement."""

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


class SqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (runs, event logs, schedules) with the safe slot claim."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data=inst_data)
        # The parent opened Dagster's event log on the same folder; the same files, safer claim.
        self._event_log_storage = ClaimSafeSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData, config_value: dict[str, str]
    ) -> SqliteStorage:
        """Build from ``dagster.yaml``'s ``config`` (``base_dir``), as Dagster's class does."""
        return cls.from_local(inst_data=inst_data, **config_value)
