"""The production pointer: which model serves, as an explicit, versioned, atomically changed file.

MLflow's ``champion`` alias mirrors it, but MLflow keeps no alias history, so the history of every
promotion (and later, rollback) is kept here as an append-only JSON-lines file. Model bytes are
stored content-addressed (``models/<md5>.txt``), so a promotion never rewrites a file a reader may
hold, and a rejected candidate cannot touch what is served.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retraining_assets.core.versioning import file_md5


class RegistryError(RuntimeError):
    """The production store is inconsistent or a requested version does not exist."""


@dataclass(frozen=True)
class ProductionRecord:
    """One production version: what serves, where it came from, and why it was put there."""

    version: int
    model_md5: str
    model_file: str  # relative to the store root
    action: str  # "promote" or "rollback"
    reason: str
    created_at: str
    mlflow_run_id: str | None = None
    mlflow_model_uri: str | None = None
    registered_version: str | None = None
    dataset_md5: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialize as one JSON line."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProductionRecord:
        """Build from a parsed JSON object."""
        return cls(**data)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ProductionStore:
    """Folder with ``current.json`` (the pointer), ``history.jsonl`` and ``models/<md5>.txt``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def pointer(self) -> Path:
        """The file naming the serving version."""
        return self.root / "current.json"

    @property
    def history_file(self) -> Path:
        """Append-only log of every production change."""
        return self.root / "history.jsonl"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def current(self) -> ProductionRecord | None:
        """The serving version, or ``None`` before the first promotion."""
        if not self.pointer.exists():
            return None
        return ProductionRecord.from_dict(json.loads(self.pointer.read_text()))

    def history(self) -> list[ProductionRecord]:
        """Every production change, oldest first."""
        if not self.history_file.exists():
            return []
        lines = self.history_file.read_text().splitlines()
        return [ProductionRecord.from_dict(json.loads(line)) for line in lines if line.strip()]

    def model_path(self, record: ProductionRecord) -> Path:
        """Absolute path of a record's model file."""
        return self.root / record.model_file

    def _store_model(self, model_file: Path) -> tuple[str, Path]:
        """Copy ``model_file`` into ``models/<md5>.txt`` (once), verified; return md5 and path."""
        md5 = file_md5(model_file)
        models = self.root / "models"
        models.mkdir(parents=True, exist_ok=True)
        target = models / f"{md5}.txt"
        if not target.exists():
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(model_file, tmp)
            if file_md5(tmp) != md5:
                tmp.unlink()
                raise RegistryError(f"copy of {model_file} changed while storing it")
            os.replace(tmp, target)
        return md5, target

    def _append(self, record: ProductionRecord) -> None:
        with self.history_file.open("a") as handle:
            handle.write(record.to_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        _write_atomic(self.pointer, record.to_json() + "\n")

    def record(self, version: int) -> ProductionRecord:
        """The history record of ``version``.

        Raises:
            RegistryError: if there is no such version.
        """
        for rec in self.history():
            if rec.version == version:
                return rec
        known = [r.version for r in self.history()]
        raise RegistryError(f"no production version {version}; known versions: {known}")

    def rollback(self, to_version: int | None = None, *, reason: str) -> ProductionRecord:
        """Serve an earlier version again, as a new version whose action is ``rollback``.

        Args:
            to_version: The version to restore; ``None`` means the one before the current.
            reason: Why, recorded in the history.

        Raises:
            RegistryError: with nothing to roll back to, an unknown version, the current version
                itself, or model bytes that no longer match their recorded md5.
        """
        with self._lock():
            current = self.current()
            if current is None:
                raise RegistryError("nothing is in production: nothing to roll back")
            if to_version is None:
                earlier = [r for r in self.history() if r.version < current.version]
                if not earlier:
                    raise RegistryError(f"v{current.version} is the first version: no earlier one")
                target = earlier[-1]
            else:
                target = self.record(to_version)
            if target.version == current.version:
                raise RegistryError(f"v{target.version} is already serving")
            model = self.model_path(target)
            if not model.exists() or file_md5(model) != target.model_md5:
                raise RegistryError(
                    f"model bytes of v{target.version} at {model} are missing or changed"
                )
            record = ProductionRecord(
                version=self.history()[-1].version + 1,
                model_md5=target.model_md5,
                model_file=target.model_file,
                action="rollback",
                reason=reason,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                mlflow_run_id=target.mlflow_run_id,
                mlflow_model_uri=target.mlflow_model_uri,
                registered_version=target.registered_version,
                dataset_md5=target.dataset_md5,
                metrics=dict(target.metrics),
                extra={
                    **target.extra,
                    "restores_version": target.version,
                    "rolled_back_from": current.version,
                },
            )
            self._append(record)
        return record

    # -- challenger (shadow evaluation) ---------------------------------------------------------

    @property
    def challenger_file(self) -> Path:
        """The pointer to the model being evaluated in the shadow, if any."""
        return self.root / "challenger.json"

    def challenger(self) -> ProductionRecord | None:
        """The challenger, or ``None``. Its ``version`` is the production version it challenges."""
        if not self.challenger_file.exists():
            return None
        return ProductionRecord.from_dict(json.loads(self.challenger_file.read_text()))

    def set_challenger(self, model_file: Path, *, reason: str, **fields: Any) -> ProductionRecord:
        """Hold ``model_file`` as the challenger (replacing any other); production untouched."""
        with self._lock():
            md5, target = self._store_model(model_file)
            current = self.current()
            record = ProductionRecord(
                version=current.version if current else 0,
                model_md5=md5,
                model_file=str(target.relative_to(self.root)),
                action="challenger",
                reason=reason,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                **fields,
            )
            _write_atomic(self.challenger_file, record.to_json() + "\n")
        return record

    def clear_challenger(self) -> None:
        """Forget the challenger (after it was promoted or retired)."""
        with self._lock():
            self.challenger_file.unlink(missing_ok=True)

    def promote(self, model_file: Path, *, reason: str, **fields: Any) -> ProductionRecord:
        """Make ``model_file`` the serving model as a new version.

        Order matters for crash safety: the bytes are copied and verified first, the history line
        is appended next, and the pointer is replaced last with an atomic rename, so a reader sees
        either the old version or the new one, never a mix.
        """
        with self._lock():
            md5, target = self._store_model(model_file)
            previous = self.history()
            record = ProductionRecord(
                version=(previous[-1].version + 1) if previous else 1,
                model_md5=md5,
                model_file=str(target.relative_to(self.root)),
                action=fields.pop("action", "promote"),
                reason=reason,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                **fields,
            )
            self._append(record)
        return record
