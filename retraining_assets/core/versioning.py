"""DVC helpers: track artifacts, read their md5, push them, restore any version by md5.

Every DVC operation holds an exclusive file lock, because DVC takes a repository lock of its own and
fails (rather than waits) when two operations overlap. ``dvc`` is imported inside functions: it is
slow to import and only the steps that version data need it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from retraining_assets.fileio import atomic_path, file_lock
from retraining_assets.libraries import preload


class _CurrentStream:
    """Writes to whatever ``sys.stdout`` (or ``sys.stderr``) is at the time of each write."""

    def __init__(self, name: str) -> None:
        self._name = name

    def write(self, text: str) -> int:
        return int(getattr(sys, self._name).write(text) or 0)

    def flush(self) -> None:
        getattr(sys, self._name).flush()

    def __getattr__(self, attr: str) -> object:
        return getattr(getattr(sys, self._name), attr)


def dvc_repo_class() -> type[Any]:
    """Import and return ``dvc.repo.Repo``, with DVC's console logging following the live streams.

    ``import dvc`` installs its console handlers bound to the ``sys.stdout``/``sys.stderr`` objects
    of that moment, and DVC's handler raises on any write error. Imported while those streams were
    temporarily replaced (a captured test, ``contextlib.redirect_stdout``, a notebook cell), every
    later DVC message in the process fails the operation that logged it (``dvc init``'s
    "Initialized DVC repository." failed a replay's first retraining). Rebinding the handlers to
    whatever stream is current at each write keeps DVC's output where it always went.
    """
    preload("dvc.repo")
    from dvc.logger import LoggerHandler
    from dvc.repo import Repo

    for name in ("dvc", "dvc_objects", "dvc_data"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, LoggerHandler) and not isinstance(
                handler.stream, _CurrentStream
            ):
                # DVC sends warnings and errors to stderr, everything below to stdout. Assigned
                # directly: ``setStream`` would flush the old stream, which may be closed.
                handler.stream = _CurrentStream(
                    "stderr" if handler.level >= logging.WARNING else "stdout"
                )
    return Repo


class VersioningError(RuntimeError):
    """A DVC operation failed; the message says which and why."""


def file_md5(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file's bytes: the hash DVC 3 records for a single file."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check_md5(path: Path, md5: str, source: str) -> None:
    """Raise unless the bytes at ``path`` hash to ``md5`` (a copy from ``source``)."""
    if file_md5(path) != md5:
        raise VersioningError(f"copy of {md5} at {source} is corrupt")


@dataclass(frozen=True)
class TrackedFile:
    """A file under DVC control."""

    path: Path
    md5: str
    size: int
    dvc_file: Path


class DvcStore:
    """A DVC repository with a local-folder (or any DVC URL) default remote.

    Args:
        repo_dir: Root of the DVC repository (created with ``dvc init`` if absent; ``--no-scm``
            when it is not a git repository root).
        remote_url: Default remote (a folder, or a URL such as ``s3://bucket/prefix`` with
            ``dvc-s3``); ``None`` keeps whatever the repository has configured.
        remote_options: Extra settings of that remote, as ``dvc remote modify`` takes them
            (e.g. ``{"endpointurl": "http://127.0.0.1:9000"}`` for an S3-compatible endpoint).
    """

    def __init__(
        self,
        repo_dir: Path,
        remote_url: str | None = None,
        remote_options: dict[str, str] | None = None,
    ) -> None:
        self.repo_dir = Path(repo_dir).resolve()
        self.remote_url = remote_url
        self.remote_options = dict(remote_options or {})
        self._lock_file = self.repo_dir / ".dvc" / "tmp" / "retraining.lock"

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock around one DVC operation (reentrant use is not supported)."""
        return file_lock(self._lock_file)

    def ensure(self) -> DvcStore:
        """Create the repository if needed, turn analytics off and set the default remote."""
        Repo = dvc_repo_class()

        self.repo_dir.mkdir(parents=True, exist_ok=True)
        if not (self.repo_dir / ".dvc").exists():
            no_scm = not (self.repo_dir / ".git").exists()
            Repo.init(str(self.repo_dir), no_scm=no_scm)
        with self.locked():
            repo = Repo(str(self.repo_dir))
            try:
                with repo.config.edit() as conf:
                    conf["core"]["analytics"] = False
                    if self.remote_url:
                        conf["core"]["remote"] = "local"
                        conf["remote"]["local"] = {"url": self.remote_url, **self.remote_options}
            finally:
                repo.close()
        return self

    def track(self, path: Path, *, push: bool = True) -> TrackedFile:
        """``dvc add`` ``path`` (inside the repository), push it to the remote, return its md5."""
        Repo = dvc_repo_class()

        path = Path(path).resolve()
        if not path.is_relative_to(self.repo_dir):
            raise VersioningError(f"{path} is outside the DVC repository {self.repo_dir}")
        with self.locked():
            repo = Repo(str(self.repo_dir))
            try:
                repo.add(str(path))
                if push and self._has_remote(repo):
                    repo.push(targets=[str(path)])
            except Exception as exc:  # DVC raises many types; say which and why in one line.
                # ``from None``: an unreachable remote would otherwise add pages of aiohttp/boto
                # traceback to a run failure whose cause this line already names.
                raise VersioningError(
                    f"dvc add/push of {path.name} to {self.describe_remote()} failed: "
                    f"{type(exc).__name__}: {_first_line(exc)}"
                ) from None
            finally:
                repo.close()
        dvc_file = path.with_name(path.name + ".dvc")
        out = yaml.safe_load(dvc_file.read_text())["outs"][0]
        return TrackedFile(path=path, md5=out["md5"], size=int(out["size"]), dvc_file=dvc_file)

    @staticmethod
    def _has_remote(repo: object) -> bool:
        conf = repo.config  # type: ignore[attr-defined]
        return bool(conf["core"].get("remote"))

    def describe_remote(self) -> str:
        """The default remote and its endpoint, for messages."""
        endpoint = self.remote_options.get("endpointurl")
        return f"{self.remote_url} (endpoint {endpoint})" if endpoint else str(self.remote_url)

    def cache_path(self, md5: str) -> Path:
        """Where DVC 3 keeps the bytes of ``md5`` in this repository's cache."""
        return self.repo_dir / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]

    def remote_path(self, md5: str) -> Path | None:
        """Where a local-folder remote keeps the bytes of ``md5`` (``None`` for other remotes)."""
        if not self.remote_url or "://" in self.remote_url:
            return None
        return Path(self.remote_url) / "files" / "md5" / md5[:2] / md5[2:]

    def restore(self, md5: str, dest: Path) -> Path:
        """Copy the exact bytes recorded as ``md5`` to ``dest``, from the cache or the remote.

        The copy is verified against ``md5`` before it replaces ``dest``.

        Raises:
            VersioningError: if no copy of ``md5`` exists or the bytes do not match.
        """
        for source in (self.cache_path(md5), self.remote_path(md5)):
            if source is not None and source.exists():
                with atomic_path(dest) as tmp:
                    shutil.copyfile(source, tmp)
                    _check_md5(tmp, md5, str(source))
                return dest
        if self.remote_url and "://" in self.remote_url:
            with atomic_path(dest) as tmp:
                if not self._download(md5, tmp):
                    raise self._missing(md5)
                _check_md5(tmp, md5, self.describe_remote())
            return dest
        raise self._missing(md5)

    def _missing(self, md5: str) -> VersioningError:
        return VersioningError(
            f"no copy of {md5} in the DVC cache {self.cache_path(md5).parent.parent} "
            f"or remote {self.describe_remote()}"
        )

    def _download(self, md5: str, tmp: Path) -> bool:
        """Fetch the bytes of ``md5`` from a URL remote (S3...) through DVC's own filesystem."""
        Repo = dvc_repo_class()

        with self.locked():
            repo = Repo(str(self.repo_dir))
            try:
                odb = repo.cloud.get_remote_odb(command="fetch")
                path = odb.oid_to_path(md5)
                if not odb.fs.exists(path):
                    return False
                odb.fs.get_file(path, str(tmp))
            except Exception as exc:  # DVC/fsspec raise many types; name the remote.
                raise VersioningError(
                    f"fetch of {md5} from {self.describe_remote()} failed: "
                    f"{type(exc).__name__}: {_first_line(exc)}"
                ) from None
            finally:
                repo.close()
        return True


def _first_line(exc: BaseException) -> str:
    """First non-empty line of an error (DVC errors can span many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
