"""``retraining doctor``'s backend report: which backend each resource uses, and does it answer.

A resource takes part by offering ``describe() -> str`` (where its state lives, secrets masked) and
``check() -> None`` (raises :class:`~retraining_assets.services.ServiceUnreachable` with one line);
resources without them are described from ``path()``, from ``store()`` when that is an
:class:`~retraining_assets.storage.ObjectStore` (its ``location`` and ``check()``), or from
``store().root``. The Dagster instance
(``$DAGSTER_HOME/dagster.yaml``), ``$RETRAINING_STATE_URL`` and ``$RETRAINING_DASK_SCHEDULER`` are
checked too. Nothing is created: a local folder that does not exist yet is reported as such.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retraining_assets.services import (
    ServiceUnreachable,
    check_dask,
    check_postgres,
    check_s3,
    first_line,
    mask_url,
)


@dataclass(frozen=True)
class BackendLine:
    """One line of the report."""

    name: str
    backend: str
    ok: bool
    detail: str = ""

    def render(self) -> str:
        """``name  backend  ok`` or ``!! name  backend  UNREACHABLE: why``."""
        if self.ok:
            suffix = f"  ok ({self.detail})" if self.detail else "  ok"
            return f"   {self.name:14} {self.backend}{suffix}"
        return f"!! {self.name:14} {self.backend}  UNREACHABLE: {self.detail}"


def _probe(name: str, backend: str, check: Callable[[], object], detail: str = "") -> BackendLine:
    try:
        check()
    except ServiceUnreachable as exc:
        return BackendLine(name, backend, False, str(exc))
    except RuntimeError as exc:
        # The state store's StoreError (and the like) already say what failed in one line.
        return BackendLine(name, backend, False, first_line(exc))
    except Exception as exc:  # any client error is a failed check, said in one line
        return BackendLine(name, backend, False, f"{type(exc).__name__}: {first_line(exc)}")
    return BackendLine(name, backend, True, detail)


def _folder(name: str, path: Path) -> BackendLine:
    """A local folder: fine when it exists, or when it can be created (first run)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return BackendLine(name, f"local folder {path}", False, f"{probe} is not writable")
    return BackendLine(
        name, f"local folder {path}", True, "exists" if path.exists() else "created on first use"
    )


def resource_line(name: str, resource: Any) -> BackendLine:
    """Describe and check one (initialized) resource."""
    describe = getattr(resource, "describe", None)
    check = getattr(resource, "check", None)
    if callable(describe):
        backend = str(describe())
        if callable(check):
            return _probe(name, backend, check)
        return BackendLine(name, backend, True, "not checked")
    if callable(getattr(resource, "path", None)):
        return _folder(name, Path(resource.path()))
    if callable(getattr(resource, "store", None)):
        store = resource.store()
        if callable(getattr(store, "describe", None)):
            backend = str(store.describe())
            check = getattr(store, "check", None)
            if callable(check):
                return _probe(name, backend, check)
            return BackendLine(name, backend, True, "not checked")
        location = getattr(store, "location", None)
        if location is not None and callable(getattr(store, "check", None)):
            # An ObjectStore (retraining_assets.storage): a folder or an s3:// location.
            kind = "s3" if str(location).startswith("s3://") else "local folder"
            return _probe(name, f"{kind} {location}", store.check)
        root = getattr(store, "root", None)
        if root is not None:
            return _folder(name, Path(root))
    return BackendLine(name, type(resource).__name__, True, "no backend to check")


def dagster_instance_line(dagster_home: str | None) -> BackendLine:
    """The Dagster instance's storage: SQLite under DAGSTER_HOME, or Postgres (connect)."""
    if not dagster_home:
        return BackendLine("dagster", "DAGSTER_HOME unset (ephemeral instance)", True)
    config_file = Path(dagster_home) / "dagster.yaml"
    if not config_file.exists():
        return BackendLine("dagster", f"sqlite under {dagster_home}", True, "no dagster.yaml")
    import yaml

    raw = yaml.safe_load(config_file.read_text()) or {}
    postgres = (raw.get("storage") or {}).get("postgres")
    if postgres is None:
        return _folder("dagster", Path(dagster_home))
    try:
        url = _postgres_url(postgres)
    except Exception as exc:  # an unset {env: ...} is a configuration failure, said in one line
        return BackendLine("dagster", f"postgres ({config_file})", False, first_line(exc))
    return _probe("dagster", f"postgres {mask_url(url)}", lambda: check_postgres(url))


def _postgres_url(section: Mapping[str, Any]) -> str:
    """The connection URL of a ``storage.postgres`` section, its ``{env: X}`` sources resolved."""
    from dagster._config import process_config
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import get_conn_string

    result = process_config(DagsterPostgresStorage.config_type(), dict(section))
    if not result.success:
        raise ValueError("; ".join(error.message for error in result.errors or []))
    value = result.value or {}
    if value.get("postgres_url"):
        return str(value["postgres_url"])
    return get_conn_string(**value["postgres_db"])


def environment_lines(environ: Mapping[str, str]) -> list[BackendLine]:
    """Backends named only by the environment: the shared state URL and the Dask scheduler."""
    lines = []
    state = environ.get("RETRAINING_STATE_URL")
    if state and state.startswith("s3://"):
        endpoint = environ.get("AWS_ENDPOINT_URL") or "AWS S3"
        lines.append(
            _probe("state", f"s3 {state} at {endpoint}", lambda: check_s3(state, endpoint))
        )
    elif state:
        lines.append(_folder("state", Path(state.removeprefix("file://"))))
    scheduler = environ.get("RETRAINING_DASK_SCHEDULER")
    if scheduler:
        lines.append(_probe("dask", f"scheduler {scheduler}", lambda: check_dask(scheduler)))
    return lines


def backend_report(resources: Mapping[str, Any], environ: Mapping[str, str]) -> list[BackendLine]:
    """Every line of the report, resources first (in the order given)."""
    lines = []
    for name, resource in resources.items():
        try:
            initialized = resource.process_config_and_initialize()
        except Exception as exc:  # e.g. a dg.EnvVar whose variable is unset
            lines.append(BackendLine(name, type(resource).__name__, False, first_line(exc)))
            continue
        lines.append(resource_line(name, initialized))
    lines.append(dagster_instance_line(environ.get("DAGSTER_HOME")))
    lines.extend(environment_lines(environ))
    return lines
