"""Where run-time state lives: one small object-store interface, a local folder or S3.

Every artifact that one process writes and another reads (the production pointer and its history,
model bytes, reference profiles, error streams, shadow scores, asset outputs) goes through an
:class:`ObjectStore`. Two backends implement it:

- :class:`LocalStore`: a folder (the embedded default). Writes are atomic (temporary file, fsync,
  rename); an exclusive create is a hard link, which fails if the name exists.
- :class:`S3Store`: a bucket and prefix on any S3-compatible endpoint (AWS, MinIO, GCS's S3 API),
  through boto3. An exclusive create is a conditional ``PutObject`` with ``If-None-Match: *``, so
  of two writers racing for one key exactly one wins, on object storage as on a disk.

Keys are relative, ``/``-separated names of plain segments (letters, digits, ``._=-``): no ``..``,
no absolute path, no empty segment. A key is never a path a caller made up, so a partition key
like ``../../x`` cannot escape the store. The local backend refuses symlinks, reading or listing.

This module has no Dagster import; the resources in ``defs/`` build stores from their URL fields.
"""

from __future__ import annotations

import contextlib
import os
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from retraining_assets.fileio import atomic_path, file_lock, write_atomic

_SEGMENT = re.compile(r"^[A-Za-z0-9_.=-]+$")


class StoreError(RuntimeError):
    """A store cannot be reached or used; the message is one line naming the endpoint."""


class KeyNotFound(StoreError, KeyError):
    """The key does not exist in the store."""

    def __str__(self) -> str:
        """The message, not ``KeyError``'s quoted repr."""
        return str(self.args[0]) if self.args else "key not found"


class InvalidKey(StoreError, ValueError):
    """A key with a separator trick, ``..``, an absolute path or characters outside the set."""

    def __str__(self) -> str:
        """The message, not ``KeyError``'s quoted repr."""
        return str(self.args[0]) if self.args else "invalid key"


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe store key, else raise :class:`InvalidKey`.

    Args:
        key: A relative name such as ``production/versions/000001.json``.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"invalid store key {key!r}: empty")
    parts = key.split("/")
    for part in parts:
        if not _SEGMENT.fullmatch(part) or part in (".", ".."):
            raise InvalidKey(
                f"invalid store key {key!r}: each '/'-separated part must be letters, digits"
                " or ._=- (no '..', no absolute path, no empty part)"
            )
    return key


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is one safe key segment (a batch id, a file name), else raise.

    Args:
        name: The candidate segment.
        what: What the name is, for the message ("batch id", "partition key").
    """
    if not isinstance(name, str) or not _SEGMENT.fullmatch(name) or name in (".", ".."):
        raise InvalidKey(
            f"invalid {what} {name!r}: use letters, digits and ._=- only"
            " (no path separators, no '..')"
        )
    return name


class ObjectStore(ABC):
    """Bytes under keys: get, atomic put, exclusive create, list by prefix, delete."""

    #: Human-readable location for messages and ``retraining doctor`` (path or s3 URL).
    location: str

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes under ``key``.

        Raises:
            KeyNotFound: if there is no such key.
        """

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key``, replacing it atomically (readers see old or new)."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Write ``data`` under ``key`` only if the key does not exist yet.

        Returns:
            ``True`` if this call created the key, ``False`` if it existed (a lost race).
        """

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` (a folder-like prefix without trailing ``/``), sorted."""

    def signatures(self, prefix: str = "") -> dict[str, str]:
        """Key -> a token that changes when the object is rewritten (size, time, tag), under prefix.

        Lets a poller (the batch sensor) notice a new or replaced object without reading it.
        """
        return dict.fromkeys(self.list(prefix), "")

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (no error if it is missing)."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`StoreError` with one clear line if the store is unreachable."""

    def location_of(self, key: str) -> str:
        """Human-readable location of one key (a file path, or an s3 URL with its endpoint)."""
        return f"{self.location.rstrip('/')}/{check_key(key)}"

    def get_or_none(self, key: str) -> bytes | None:
        """The bytes under ``key``, or ``None`` if it does not exist."""
        try:
            return self.get(key)
        except KeyNotFound:
            return None

    def child(self, prefix: str) -> ObjectStore:
        """A view of this store under ``prefix`` (keys relative to it)."""
        return _Prefixed(self, check_key(prefix))

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Held while one process builds the entries ``name`` stands for; others wait for it.

        Best effort, so processes sharing the store build an entry once: it never decides what
        is stored. This base (so an S3 store) holds nothing, and two processes may both build
        and write the same bytes; a folder holds a file lock (see :class:`LocalStore`).
        """
        check_key(name)
        return contextlib.nullcontext()

    def download(self, key: str, dest: Path) -> Path:
        """Write the bytes of ``key`` to the local file ``dest`` (atomically); return ``dest``."""
        write_atomic(dest, self.get(key))
        return dest

    def upload(self, key: str, src: Path) -> None:
        """Store the bytes of the local file ``src`` under ``key``."""
        self.put(key, Path(src).read_bytes())

    def __repr__(self) -> str:
        """Type and location."""
        return f"{type(self).__name__}({self.location!r})"


class _Prefixed(ObjectStore):
    def __init__(self, parent: ObjectStore, prefix: str) -> None:
        self._parent = parent
        self._prefix = prefix
        # "s3://bucket/state at http://endpoint" + "production" reads
        # "s3://bucket/state/production at http://endpoint", so keys append to a real URL.
        base, at, endpoint = parent.location.partition(" at ")
        self.location = f"{base.rstrip('/')}/{prefix}{at}{endpoint}"

    def _k(self, key: str) -> str:
        return f"{self._prefix}/{check_key(key)}"

    def location_of(self, key: str) -> str:
        return self._parent.location_of(self._k(key))

    def get(self, key: str) -> bytes:
        return self._parent.get(self._k(key))

    def put(self, key: str, data: bytes) -> None:
        self._parent.put(self._k(key), data)

    def create(self, key: str, data: bytes) -> bool:
        return self._parent.create(self._k(key), data)

    def exists(self, key: str) -> bool:
        return self._parent.exists(self._k(key))

    def list(self, prefix: str = "") -> list[str]:
        full = f"{self._prefix}/{check_key(prefix)}" if prefix else self._prefix
        cut = len(self._prefix) + 1
        return [key[cut:] for key in self._parent.list(full)]

    def signatures(self, prefix: str = "") -> dict[str, str]:
        full = f"{self._prefix}/{check_key(prefix)}" if prefix else self._prefix
        cut = len(self._prefix) + 1
        return {key[cut:]: sig for key, sig in self._parent.signatures(full).items()}

    def delete(self, key: str) -> None:
        self._parent.delete(self._k(key))

    def check(self) -> None:
        self._parent.check()

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        return self._parent.lock(self._k(name))


class LocalStore(ObjectStore):
    """A folder. Names starting with ``.`` are temporary files and never listed."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.location = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _refuse_links(self, path: Path) -> None:
        # Every component below the root must be a real file or folder: a symlink dropped into
        # the store (or a batch folder) could point anywhere on the host.
        current = self.root
        for part in path.relative_to(self.root).parts:
            current = current / part
            if current.is_symlink():
                raise StoreError(f"{current} is a symbolic link: refused")

    def get(self, key: str) -> bytes:
        """See :meth:`ObjectStore.get`."""
        path = self._path(key)
        self._refuse_links(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise KeyNotFound(f"{key} not found in {self.location}") from None
        except IsADirectoryError:
            raise KeyNotFound(f"{key} is a folder in {self.location}") from None
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def put(self, key: str, data: bytes) -> None:
        """See :meth:`ObjectStore.put`."""
        path = self._path(key)
        self._refuse_links(path)
        write_atomic(path, data)

    def create(self, key: str, data: bytes) -> bool:
        """See :meth:`ObjectStore.create`."""
        path = self._path(key)
        self._refuse_links(path)
        try:
            # link() is atomic and fails if the name exists: the loser of a race learns it here,
            # and a reader never sees a half-written file under the final name.
            with atomic_path(path, exclusive=True) as tmp:
                tmp.write_bytes(data)
            return True
        except FileExistsError:
            return False

    def exists(self, key: str) -> bool:
        """See :meth:`ObjectStore.exists`."""
        path = self._path(key)
        return path.is_file() and not path.is_symlink()

    def list(self, prefix: str = "") -> list[str]:
        """See :meth:`ObjectStore.list`."""
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir() or base.is_symlink():
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                full = Path(dirpath) / name
                if name.startswith(".") or full.is_symlink():
                    continue
                keys.append(full.relative_to(self.root).as_posix())
        return sorted(keys)

    def signatures(self, prefix: str = "") -> dict[str, str]:
        """``size:mtime_ns`` of each file under ``prefix`` (see :meth:`ObjectStore.signatures`)."""
        out = {}
        for key in self.list(prefix):
            try:
                info = (self.root / key).stat(follow_symlinks=False)
            except OSError:
                continue  # removed since listing
            out[key] = f"{info.st_size}:{info.st_mtime_ns}"
        return out

    def delete(self, key: str) -> None:
        """See :meth:`ObjectStore.delete`."""
        self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        """See :meth:`ObjectStore.check`."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"state folder {self.root} is not usable: {exc}") from None
        if not os.access(self.root, os.W_OK):
            raise StoreError(f"state folder {self.root} is not writable")

    def path_of(self, key: str) -> Path:
        """The local file behind ``key`` (for messages and tools that need a path)."""
        return self._path(key)

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A file lock on ``.locks/<name>.lock`` here (see :meth:`ObjectStore.lock`).

        Hidden, so never listed; released if the holder dies (a ``flock``).
        """
        return file_lock(self._path(f".locks/{check_key(name)}.lock"))


class S3Store(ObjectStore):
    """A bucket and prefix on an S3-compatible endpoint, through boto3.

    The endpoint is ``endpoint_url`` or boto3's own ``AWS_ENDPOINT_URL`` environment variable
    (unset means AWS); credentials and region come from boto3's usual chain.
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        self.location = f"s3://{bucket}/{self.prefix}{where}".replace("/ at", " at")
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use: boto3 takes a moment to import)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                # Fail fast with one clear line instead of retrying a dead endpoint for minutes.
                config=Config(
                    connect_timeout=5,
                    read_timeout=30,
                    retries={"max_attempts": 2, "mode": "standard"},
                ),
            )
        return self._client

    def _k(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def location_of(self, key: str) -> str:
        """``s3://bucket/prefix/key``, followed by `` at <endpoint>`` when one is set."""
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self._k(key)}{where}"

    def _fail(self, exc: Exception, what: str) -> StoreError:
        code = ""
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
        detail = f"{code}: {exc}" if code and code not in str(exc) else str(exc)
        return StoreError(f"S3 store {self.location}: {what} failed: {detail}".splitlines()[0])

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise KeyNotFound(f"{kwargs.get('Key')} not found in {self.location}") from None
            raise self._fail(exc, what) from None
        except BotoCoreError as exc:
            raise self._fail(exc, what) from None

    def get(self, key: str) -> bytes:
        """See :meth:`ObjectStore.get`."""
        response = self._call(f"get {key}", "get_object", Key=self._k(key))
        return bytes(response["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        """See :meth:`ObjectStore.put`."""
        self._call(f"put {key}", "put_object", Key=self._k(key), Body=data)

    def create(self, key: str, data: bytes) -> bool:
        """See :meth:`ObjectStore.create`."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            # 412: the key exists. 409: a concurrent conditional write to the same key is in
            # flight; one of the two will win, and it is not this one.
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            raise self._fail(exc, f"create {key}") from None
        except BotoCoreError as exc:
            raise self._fail(exc, f"create {key}") from None

    def exists(self, key: str) -> bool:
        """See :meth:`ObjectStore.exists`."""
        try:
            self._call(f"head {key}", "head_object", Key=self._k(key))
            return True
        except KeyNotFound:
            return False

    def _objects(self, prefix: str) -> list[dict[str, Any]]:
        """``list_objects_v2`` entries under ``prefix`` (all pages)."""
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._k(prefix) if prefix else self.prefix
        start = f"{full}/" if full else ""
        items: list[dict[str, Any]] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                items.extend(page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"list {prefix or '/'}") from None
        return items

    def list(self, prefix: str = "") -> list[str]:
        """See :meth:`ObjectStore.list`."""
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(item["Key"][cut:] for item in self._objects(prefix))

    def signatures(self, prefix: str = "") -> dict[str, str]:
        """``size:mtime_ns:etag`` of each object under ``prefix`` (one listing, no reads)."""
        cut = len(self.prefix) + 1 if self.prefix else 0
        return {
            item["Key"][cut:]: (
                f"{item.get('Size', 0)}:{int(item['LastModified'].timestamp() * 1e9)}"
                f":{str(item.get('ETag', '')).strip(chr(34))}"
            )
            for item in self._objects(prefix)
        }

    def delete(self, key: str) -> None:
        """See :meth:`ObjectStore.delete`."""
        self._call(f"delete {key}", "delete_object", Key=self._k(key))

    def check(self) -> None:
        """See :meth:`ObjectStore.check`."""
        self._call("head bucket", "head_bucket")


def open_store(url: str | Path, *, endpoint_url: str | None = None) -> ObjectStore:
    """The store at ``url``: ``s3://bucket/prefix`` or a local folder path.

    Args:
        url: Where the state lives.
        endpoint_url: S3 endpoint (MinIO, a local server); default ``$AWS_ENDPOINT_URL``.
    """
    text = str(url)
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not bucket:
            raise StoreError(f"invalid S3 URL {text!r}: no bucket")
        return S3Store(bucket, prefix, endpoint_url=endpoint_url)
    if "://" in text and not text.startswith("file://"):
        raise StoreError(f"unsupported state URL {text!r}: use a folder path or s3://bucket/prefix")
    return LocalStore(Path(text.removeprefix("file://")))
