"""The production registry: which model serves, as immutable, exclusively created version objects.

Layout in the ``production`` area of the state store (a local folder or an S3 prefix)::

    versions/000001.json    one object per production version (promotion or rollback); the
    versions/000002.json    highest one serves, all of them are the history
    models/<md5>.txt        LightGBM text model bytes, content-addressed
    challenger.json         the model being evaluated in the shadow, if any

Pointer and history are one thing: a new version is one object created with the store's exclusive
create (S3 ``If-None-Match: *``, a hard link locally), so there is no moment where history and
pointer disagree, no torn file, and of two runs promoting at once exactly one wins; the other gets
:class:`PromotionConflict` and production is as the winner left it. Promotion is a
compare-and-set: the caller says which version it judged against (``expected_current``), and the
new version is that one plus one.

Every read of model bytes checks their md5 against the record, so a model edited or corrupted in
the store gives a clear :class:`RegistryError` instead of being scored by the gate or crashing
LightGBM.

MLflow's ``champion`` alias is derived state: the version object is the commit point and
:func:`reconcile_champion_alias` moves the alias to match it (runs at the start of every
production-changing run). MLflow keeps no alias history; this registry does.

The earlier layout (``current.json`` + ``history.jsonl``) is imported into ``versions/`` the first
time a store is read, and the old files are kept under ``legacy/``.

No Dagster import here; the ``production`` resource builds the store from the state URL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retraining_assets.libraries import preload
from retraining_assets.storage import KeyNotFound, LocalStore, ObjectStore, open_store

if TYPE_CHECKING:
    import lightgbm as lgb

log = logging.getLogger(__name__)

VERSIONS = "versions"
MODELS = "models"
CHALLENGER = "challenger.json"
LEGACY_POINTER = "current.json"
LEGACY_HISTORY = "history.jsonl"
LEGACY_DIR = "legacy"
_VERSION_KEY = re.compile(r"^versions/(\d+)\.json$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")


class RegistryError(RuntimeError):
    """The production store is inconsistent, corrupt, or a requested version does not exist."""


class PromotionConflict(RegistryError):
    """Production moved after the caller read it: the change was not made.

    Attributes:
        expected: The version the caller judged against (``None``: no production model).
        actual: The version that serves now.
    """

    def __init__(self, message: str, *, expected: int | None, actual: int | None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class ProductionRecord:
    """One production version: what serves, where it came from, and why it was put there."""

    version: int
    model_md5: str
    model_file: str  # key relative to the production store: models/<md5>.txt
    action: str  # "promote", "rollback" or "challenger"
    reason: str
    created_at: str
    mlflow_run_id: str | None = None
    mlflow_model_uri: str | None = None
    registered_version: str | None = None
    dataset_md5: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: Who made this change (a Dagster run id, ``cli``); named in conflict messages.
    changed_by: str | None = None

    def to_json(self) -> str:
        """Serialize as one JSON line (keys sorted: the same record gives the same bytes)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProductionRecord:
        """Build from a parsed JSON object (unknown fields raise ``TypeError``)."""
        return cls(**data)


def md5_hex(data: bytes) -> str:
    """MD5 of ``data``: the hash DVC records, and the name of the model object."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def version_key(version: int) -> str:
    """Key of a version object: ``versions/<zero-padded N>.json``."""
    return f"{VERSIONS}/{version:06d}.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _parse(data: bytes | str, where: str) -> ProductionRecord:
    """One record from JSON, or a :class:`RegistryError` naming ``where`` (never a raw error)."""
    try:
        obj = json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise RegistryError(
            f"{where} cannot be parsed ({exc}): the object is corrupt or truncated"
        ) from None
    if not isinstance(obj, dict):
        raise RegistryError(f"{where} is not a production record (a JSON {type(obj).__name__})")
    try:
        record = ProductionRecord.from_dict(obj)
    except TypeError as exc:
        raise RegistryError(f"{where} is not a production record: {exc}") from None
    if not isinstance(record.version, int) or isinstance(record.version, bool):
        raise RegistryError(f"{where}: version {record.version!r} is not an integer")
    if not isinstance(record.model_md5, str) or not _MD5.fullmatch(record.model_md5):
        raise RegistryError(f"{where}: model_md5 {record.model_md5!r} is not an md5")
    return record


def _check_version_number(version: object) -> int:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RegistryError(
            f"invalid production version {version!r}: versions are whole numbers from 1"
        )
    return version


def _describe(version: int | None) -> str:
    return f"v{version}" if version is not None else "no production model"


class ProductionStore:
    """Production versions, content-addressed model bytes and the challenger in an object store.

    Args:
        store: The ``production`` area of the state store, or a local folder / ``s3://`` URL.
    """

    def __init__(self, store: ObjectStore | Path | str) -> None:
        self.store = store if isinstance(store, ObjectStore) else open_store(store)
        self._records: dict[int, ProductionRecord] = {}  # version objects are immutable
        self._legacy_checked = False

    @property
    def location(self) -> str:
        """Where the store is (folder path or ``s3://`` URL), for messages."""
        return self.store.location

    @property
    def root(self) -> Path:
        """TEMPORARY: the local folder of the store, for ``defs/monitoring.py``'s profile cache.

        Profiles belong in the monitoring store; this goes once they are moved there.

        Raises:
            RegistryError: on an S3 store (there is no folder).
        """
        # A local store (or a prefixed view of one) is located by its absolute folder path.
        if isinstance(self.store, LocalStore):
            return self.store.root
        if "://" in self.location or not Path(self.location).is_absolute():
            raise RegistryError(f"the production store {self.location} is not a local folder")
        return Path(self.location)

    def check(self) -> None:
        """Raise with one clear line if the store is unreachable or its serving version unreadable.

        Used by ``retraining doctor`` (through the ``production`` resource's ``store()``).
        """
        self.store.check()
        self.current()

    def where(self, key: str) -> str:
        """Location of one key, ``<folder or s3 URL>/<key>`` (the S3 endpoint left out)."""
        return f"{self.location.partition(' at ')[0].rstrip('/')}/{key}"

    # -- reading ---------------------------------------------------------------------------------

    def _version_numbers(self) -> list[int]:
        self._import_legacy()
        numbers = []
        for key in self.store.list(VERSIONS):
            match = _VERSION_KEY.fullmatch(key)
            if match:
                numbers.append(int(match.group(1)))
        return sorted(numbers)

    def _read(self, version: int) -> ProductionRecord:
        if version in self._records:
            return self._records[version]
        key = version_key(version)
        record = _parse(self.store.get(key), self.where(key))
        if record.version != version:
            raise RegistryError(
                f"{self.where(key)} holds version {record.version}, not {version}: the object was"
                " copied or renamed by hand"
            )
        self._records[version] = record
        return record

    def current(self) -> ProductionRecord | None:
        """The serving version (the highest version object), or ``None`` before the first one.

        A newest version object that cannot be parsed is an error, not skipped: objects are
        created whole and never rewritten, so an unreadable one was damaged in the store, and
        serving the version below it would let the gate judge against a model production does
        not claim, while every later promotion would conflict on the damaged number anyway.

        Raises:
            RegistryError: naming the object, if the newest version object is corrupt.
        """
        numbers = self._version_numbers()
        return self._read(numbers[-1]) if numbers else None

    def history(self) -> list[ProductionRecord]:
        """Every production version, oldest first.

        Raises:
            RegistryError: naming the object, if any version object is corrupt.
        """
        return [self._read(n) for n in self._version_numbers()]

    def record(self, version: int) -> ProductionRecord:
        """The record of ``version``.

        Raises:
            RegistryError: if ``version`` is not a positive integer or there is no such version.
        """
        _check_version_number(version)
        self._import_legacy()
        try:
            return self._read(version)
        except KeyNotFound:
            numbers = self._version_numbers()
            known = f"1..{numbers[-1]}" if numbers else "none"
            raise RegistryError(
                f"no production version {version}; known versions: {known}"
            ) from None

    def version_location(self, record: ProductionRecord) -> str:
        """Where the version object of ``record`` is (for metadata and messages)."""
        return self.where(version_key(record.version))

    def model_location(self, record: ProductionRecord) -> str:
        """Where the model bytes of ``record`` are (for metadata and messages)."""
        return self.where(_model_key(record.model_md5))

    # -- model bytes -----------------------------------------------------------------------------

    def model_bytes(self, record: ProductionRecord) -> bytes:
        """The model bytes of ``record``, verified against its md5.

        Raises:
            RegistryError: if the bytes are missing or their md5 differs from the record's.
        """
        what = "the challenger" if record.action == "challenger" else f"v{record.version}"
        key = _model_key(record.model_md5)
        try:
            data = self.store.get(key)
        except KeyNotFound:
            raise RegistryError(
                f"model bytes of {what} are missing or changed: {self.where(key)} does not exist"
            ) from None
        actual = md5_hex(data)
        if actual != record.model_md5:
            raise RegistryError(
                f"model bytes of {what} are missing or changed: {self.where(key)} has md5 "
                f"{actual}, the record says {record.model_md5}; refusing to use them"
            )
        return data

    def model_text(self, record: ProductionRecord) -> str:
        """The LightGBM text model of ``record``, verified (see :meth:`model_bytes`)."""
        data = self.model_bytes(record)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise RegistryError(
                f"model of v{record.version} is not a LightGBM text model"
            ) from None

    def booster(self, record: ProductionRecord) -> lgb.Booster:
        """The LightGBM booster of ``record``, loaded from verified bytes (never from a path).

        Raises:
            RegistryError: if the bytes fail verification or LightGBM cannot parse them.
        """
        preload("lightgbm")
        import lightgbm as lgb

        text = self.model_text(record)
        try:
            return lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise RegistryError(
                f"model of v{record.version} cannot be loaded by LightGBM: {exc}"
            ) from None

    def model_path(self, record: ProductionRecord) -> Path:
        """TEMPORARY alias for callers not yet moved to :meth:`booster` / :meth:`model_text`.

        Verifies the md5, then returns the local file. Works only on a local store (an S3 store
        has no file to point at) and leaves a window between the check and the caller's read:
        use :meth:`booster` instead. Kept for ``defs/monitoring.py`` until it is moved.

        Raises:
            RegistryError: on an S3 store, or if the bytes fail verification.
        """
        try:
            root = self.root
        except RegistryError:
            raise RegistryError(
                f"model_path() needs a local production store, not {self.location}: "
                "use ProductionStore.booster() or model_text()"
            ) from None
        self.model_bytes(record)
        return root / _model_key(record.model_md5)

    def _store_model(self, data: bytes) -> str:
        """Write ``data`` as ``models/<md5>.txt`` (once; a damaged copy is replaced); its md5."""
        md5 = md5_hex(data)
        key = _model_key(md5)
        if not self.store.create(key, data):
            existing = self.store.get_or_none(key)
            if existing is None or md5_hex(existing) != md5:
                # Content-addressed: the right bytes for this name are known, so a damaged copy
                # is repaired rather than served.
                log.warning("replacing damaged model object %s", self.where(key))
                self.store.put(key, data)
        return md5

    # -- changing production (compare-and-set) ---------------------------------------------------

    def _conflict(self, expected: int | None, what: str) -> PromotionConflict:
        self._records.clear()
        current = self.current()
        actual = current.version if current else None
        by = f" (run {current.changed_by})" if current and current.changed_by else ""
        return PromotionConflict(
            f"production moved to {_describe(actual)}{by} while this {what} "
            f"{_describe(expected)}: production unchanged by this run; re-evaluate",
            expected=expected,
            actual=actual,
        )

    def _expect(self, expected: int | None, what: str) -> ProductionRecord | None:
        if expected is not None:
            _check_version_number(expected)
        current = self.current()
        if (current.version if current else None) != expected:
            raise self._conflict(expected, what)
        return current

    def _commit(self, record: ProductionRecord, expected: int | None, what: str) -> None:
        key = version_key(record.version)
        if not self.store.create(key, (record.to_json() + "\n").encode()):
            raise self._conflict(expected, what)
        self._records[record.version] = record

    def promote(
        self,
        model_bytes: bytes,
        *,
        expected_current: int | None,
        reason: str,
        action: str = "promote",
        **fields: Any,
    ) -> ProductionRecord:
        """Make ``model_bytes`` the serving model as version ``expected_current + 1``.

        The bytes are written (content-addressed) first, then the version object is created
        exclusively: that create is the commit.

        Args:
            model_bytes: The LightGBM text model.
            expected_current: The version the candidate was judged against (``None``: there was
                no production model).
            reason: Why, recorded in the version.
            action: Recorded action (``promote``).
            **fields: Other :class:`ProductionRecord` fields (lineage, ``changed_by``).

        Raises:
            PromotionConflict: if production is no longer ``expected_current`` (another run
                promoted or rolled back first); nothing is changed.
            TypeError: on an unknown field (before anything is written).
        """
        if not isinstance(model_bytes, bytes):
            raise TypeError(f"model_bytes must be bytes, not {type(model_bytes).__name__}")
        md5 = md5_hex(model_bytes)
        record = ProductionRecord(
            version=(expected_current or 0) + 1,
            model_md5=md5,
            model_file=_model_key(md5),
            action=action,
            reason=reason,
            created_at=_now(),
            **fields,
        )
        self._expect(expected_current, "run evaluated against")
        self._store_model(model_bytes)
        self._commit(record, expected_current, "run evaluated against")
        return record

    def rollback(
        self,
        to_version: int | None = None,
        *,
        reason: str,
        expected_current: int | None = None,
        changed_by: str | None = None,
    ) -> ProductionRecord:
        """Serve an earlier version's exact bytes again, as a new version with action ``rollback``.

        Args:
            to_version: The version to restore (from 1); ``None`` means the one before the
                current version.
            reason: Why, recorded in the version.
            expected_current: If given, refuse unless this version serves; by default the
                version read at the start (compare-and-set either way).
            changed_by: Who asks (a Dagster run id, ``cli``).

        Raises:
            RegistryError: nothing in production, an invalid or unknown version, the version
                already serving (or the same bytes), or model bytes that fail their md5.
            PromotionConflict: if production moved during the rollback; nothing is changed.
        """
        if to_version is not None:
            _check_version_number(to_version)
        current = self.current()
        if current is None:
            raise RegistryError("nothing is in production: nothing to roll back")
        if expected_current is not None and expected_current != current.version:
            raise self._conflict(expected_current, "rollback read")
        target = self._rollback_target(current, to_version)
        self.model_bytes(target)  # verified before anything changes
        record = ProductionRecord(
            version=current.version + 1,
            model_md5=target.model_md5,
            model_file=_model_key(target.model_md5),
            action="rollback",
            reason=reason,
            created_at=_now(),
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
            changed_by=changed_by,
        )
        self._commit(record, current.version, "rollback read")
        return record

    def _rollback_target(
        self, current: ProductionRecord, to_version: int | None
    ) -> ProductionRecord:
        """The version a rollback restores; RegistryError if it cannot restore it."""
        if to_version is None:
            if current.version == 1:
                raise RegistryError("v1 is the first version: no earlier one to roll back to")
            target = self.record(current.version - 1)
        elif to_version > current.version:
            raise RegistryError(
                f"no production version {to_version}; known versions: 1..{current.version}"
            )
        else:
            target = self.record(to_version)
        if target.version == current.version:
            raise RegistryError(f"v{target.version} is already serving")
        if target.model_md5 == current.model_md5:
            raise RegistryError(
                f"v{target.version} has the same model bytes as the serving v{current.version}"
                f" (md5 {current.model_md5}): nothing to roll back"
            )
        return target

    # -- challenger (shadow evaluation) ----------------------------------------------------------

    def challenger(self) -> ProductionRecord | None:
        """The challenger, or ``None``. Its ``version`` is the production version it challenges.

        Raises:
            RegistryError: naming the object, if it cannot be parsed.
        """
        data = self.store.get_or_none(CHALLENGER)
        return None if data is None else _parse(data, self.where(CHALLENGER))

    def set_challenger(
        self, model_bytes: bytes, *, expected_current: int | None, reason: str, **fields: Any
    ) -> ProductionRecord:
        """Hold ``model_bytes`` as the challenger of ``expected_current`` (replacing any other).

        Production is untouched. The shadow decision retires a challenger whose version no
        longer serves, so a replaced or stale challenger never gets promoted.

        Raises:
            PromotionConflict: if ``expected_current`` no longer serves.
        """
        if expected_current is None:
            raise RegistryError("a challenger needs a production model to challenge")
        md5 = md5_hex(model_bytes)
        record = ProductionRecord(
            version=expected_current,
            model_md5=md5,
            model_file=_model_key(md5),
            action="challenger",
            reason=reason,
            created_at=_now(),
            **fields,
        )
        self._expect(expected_current, "run evaluated against")
        self._store_model(model_bytes)
        self.store.put(CHALLENGER, (record.to_json() + "\n").encode())
        return record

    def clear_challenger(self) -> None:
        """Forget the challenger (after it was promoted or retired)."""
        self.store.delete(CHALLENGER)

    # -- the earlier layout ----------------------------------------------------------------------

    def _import_legacy(self) -> None:
        """Turn ``current.json`` + ``history.jsonl`` into version objects, once.

        ``current.json`` was the truth: history lines past its version never served (a run was
        killed between the history line and the pointer) and are left out; a torn last history
        line is skipped with a warning. Idempotent (creates are exclusive and the records
        serialize to the same bytes), so a crash midway is finished by the next reader. The old
        files are kept under ``legacy/``.
        """
        if self._legacy_checked:
            return
        raw_pointer = self.store.get_or_none(LEGACY_POINTER)
        if raw_pointer is None:
            self._legacy_checked = True
            return
        pointer = _parse(raw_pointer, self.where(LEGACY_POINTER))
        records = {}
        raw_history = self.store.get_or_none(LEGACY_HISTORY)
        lines = (raw_history or b"").decode("utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = _parse(line, f"{self.where(LEGACY_HISTORY)} line {number}")
            except RegistryError as exc:
                if number == len(lines):
                    log.warning("skipping the torn last line of the old history: %s", exc)
                    continue
                raise
            if record.version > pointer.version:
                log.warning(
                    "old history line %d (v%d) never served (current.json is v%d): left out",
                    number,
                    record.version,
                    pointer.version,
                )
                continue
            records[record.version] = record
        records[pointer.version] = pointer
        for version in sorted(records):
            data = (records[version].to_json() + "\n").encode()
            key = version_key(version)
            if not self.store.create(key, data) and self.store.get(key) != data:
                log.warning("%s exists with other content: kept it", self.where(key))
        if raw_history is not None:
            self.store.put(f"{LEGACY_DIR}/{LEGACY_HISTORY}", raw_history)
        self.store.put(f"{LEGACY_DIR}/{LEGACY_POINTER}", raw_pointer)
        self.store.delete(LEGACY_HISTORY)
        self.store.delete(LEGACY_POINTER)  # last: until it is gone, the next reader re-imports
        log.warning(
            "imported %d production versions from the old layout into %s/",
            len(records),
            self.where(VERSIONS),
        )
        self._legacy_checked = True


def _model_key(md5: str) -> str:
    if not _MD5.fullmatch(md5):
        raise RegistryError(f"{md5!r} is not an md5")
    return f"{MODELS}/{md5}.txt"


def reconcile_champion_alias(
    store: ProductionStore, client: Any, model_name: str, alias: str = "champion"
) -> str | None:
    """Point MLflow's ``alias`` at the registered version of the serving production version.

    The version object is the commit point of a production change; the alias is set after it.
    A run killed in between leaves the alias on the old model: this moves it. Nothing to do
    before the first promotion or for a version without a registered MLflow version.

    Args:
        store: The production store.
        client: An ``mlflow.MlflowClient`` bound to the registry.
        model_name: The registered model's name.
        alias: The alias that mirrors production.

    Returns:
        A message saying what was repaired, or ``None`` if the alias was already right.
    """
    preload("mlflow")
    from mlflow.exceptions import MlflowException

    current = store.current()
    if current is None or not current.registered_version:
        return None
    try:
        points_at: str | None = str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        if exc.error_code not in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
            raise
        points_at = None  # the alias (or the registered model) does not exist yet
    if points_at == current.registered_version:
        return None
    client.set_registered_model_alias(model_name, alias, current.registered_version)
    message = (
        f"MLflow alias {alias!r} pointed at {model_name} "
        f"{'v' + points_at if points_at else '(unset)'} but production v{current.version} serves "
        f"{model_name} v{current.registered_version}: moved it (an earlier change was"
        " interrupted before the alias was set)"
    )
    log.warning(message)
    return message
