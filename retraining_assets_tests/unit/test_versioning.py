"""DVC versioning on a real repository (no git) with a local-folder remote."""

from __future__ import annotations

import configparser
import hashlib
from pathlib import Path

import pytest
import yaml

from retraining_assets.core.versioning import DvcStore, VersioningError, file_md5


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DvcStore:
    root = tmp_path_factory.mktemp("dvc")
    return DvcStore(root / "repo", remote_url=str(root / "remote")).ensure()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _dvc_file_md5(dvc_file: Path) -> str:
    return yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]


def test_file_md5_is_the_plain_md5_of_the_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # larger than one read chunk of 1 KiB below
    path = _write(tmp_path / "f.bin", data)
    assert file_md5(path) == hashlib.md5(data).hexdigest()
    assert file_md5(path, chunk=1024) == hashlib.md5(data).hexdigest()
    assert file_md5(_write(tmp_path / "empty", b"")) == hashlib.md5(b"").hexdigest()


def test_ensure_creates_repo_disables_analytics_and_sets_remote(store: DvcStore) -> None:
    assert (store.repo_dir / ".dvc").is_dir()
    assert not (store.repo_dir / ".git").exists()
    config = configparser.ConfigParser()
    config.read(store.repo_dir / ".dvc" / "config")
    assert config["core"]["analytics"].lower() == "false"
    assert config["core"]["no_scm"].lower() == "true"
    assert config["core"]["remote"] == "local"
    assert config["'remote \"local\"'"]["url"] == store.remote_url
    # DVC itself reads analytics as off for this repository.
    from dvc.repo import Repo

    repo = Repo(str(store.repo_dir))
    try:
        assert repo.config["core"]["analytics"] is False
        assert repo.config["core"]["remote"] == "local"
    finally:
        repo.close()
    # Idempotent: a second ensure keeps the same configuration.
    before = (store.repo_dir / ".dvc" / "config").read_text()
    DvcStore(store.repo_dir, remote_url=store.remote_url).ensure()
    assert (store.repo_dir / ".dvc" / "config").read_text() == before


def test_track_returns_the_md5_of_the_dvc_file_and_pushes(store: DvcStore) -> None:
    data = b"dataset version one\n" * 100
    path = _write(store.repo_dir / "data" / "tracked.parquet", data)
    tracked = store.track(path)
    assert tracked.md5 == file_md5(path) == hashlib.md5(data).hexdigest()
    assert tracked.size == len(data)
    assert tracked.path == path.resolve()
    assert tracked.dvc_file == path.with_name("tracked.parquet.dvc")
    assert _dvc_file_md5(tracked.dvc_file) == tracked.md5
    cached = store.cache_path(tracked.md5)
    assert cached.read_bytes() == data
    remote = Path(store.remote_url or "") / "files" / "md5" / tracked.md5[:2] / tracked.md5[2:]
    assert store.remote_path(tracked.md5) == remote
    assert remote.read_bytes() == data
    assert path.read_bytes() == data  # the workspace file is left as it was


def test_track_without_push_keeps_the_remote_untouched(store: DvcStore) -> None:
    path = _write(store.repo_dir / "local_only.txt", b"not pushed")
    tracked = store.track(path, push=False)
    assert store.cache_path(tracked.md5).exists()
    remote = store.remote_path(tracked.md5)
    assert remote is not None and not remote.exists()


def test_retrack_gives_a_new_md5_and_old_bytes_restore_from_cache_then_remote(
    store: DvcStore, tmp_path: Path
) -> None:
    path = store.repo_dir / "data" / "model.txt"
    old_bytes, new_bytes = b"tree\nmodel one\n", b"tree\nmodel two, different\n"
    old = store.track(_write(path, old_bytes))
    new = store.track(_write(path, new_bytes))
    assert new.md5 != old.md5
    assert new.md5 == hashlib.md5(new_bytes).hexdigest()
    assert _dvc_file_md5(new.dvc_file) == new.md5
    assert path.read_bytes() == new_bytes

    # From the cache.
    dest = tmp_path / "restored" / "model.txt"
    assert store.restore(old.md5, dest) == dest
    assert dest.read_bytes() == old_bytes

    # From the remote once the cache copy is gone; ``dest`` is overwritten.
    store.cache_path(old.md5).unlink()
    assert not store.cache_path(old.md5).exists()
    _write(dest, b"stale content")
    store.restore(old.md5, dest)
    assert dest.read_bytes() == old_bytes
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.txt"]  # no temp left
    # The current version is still restorable too.
    assert store.restore(new.md5, tmp_path / "current.txt").read_bytes() == new_bytes


def test_restore_of_an_unknown_md5_raises(store: DvcStore, tmp_path: Path) -> None:
    unknown = hashlib.md5(b"never tracked").hexdigest()
    dest = tmp_path / "out.bin"
    with pytest.raises(VersioningError, match=unknown):
        store.restore(unknown, dest)
    assert not dest.exists()


def test_restore_refuses_corrupt_bytes(store: DvcStore, tmp_path: Path) -> None:
    md5 = hashlib.md5(b"the real bytes").hexdigest()
    remote = store.remote_path(md5)
    assert remote is not None
    _write(remote, b"tampered bytes")
    dest = _write(tmp_path / "out.bin", b"previous")
    try:
        with pytest.raises(VersioningError, match="corrupt"):
            store.restore(md5, dest)
    finally:
        remote.unlink()
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_tracking_a_path_outside_the_repo_raises(store: DvcStore, tmp_path: Path) -> None:
    outside = _write(tmp_path / "outside.txt", b"x")
    with pytest.raises(VersioningError, match="outside"):
        store.track(outside)
    assert not outside.with_name("outside.txt.dvc").exists()
    sneaky = store.repo_dir / ".." / "sneaky.txt"
    _write(sneaky, b"y")
    with pytest.raises(VersioningError, match="outside"):
        store.track(sneaky)


def test_remote_path_is_none_for_url_remotes(tmp_path: Path) -> None:
    md5 = "0" * 32
    assert DvcStore(tmp_path, remote_url="s3://bucket/prefix").remote_path(md5) is None
    assert DvcStore(tmp_path).remote_path(md5) is None
    local = DvcStore(tmp_path, remote_url=str(tmp_path / "r")).remote_path(md5)
    assert local == tmp_path / "r" / "files" / "md5" / "00" / ("0" * 30)


def test_dvc_logging_follows_the_live_streams_not_those_it_was_imported_under(
    tmp_path: Path,
) -> None:
    """DVC imported under a stream that is closed later (a captured test, a redirect) must not
    fail every later DVC operation that logs: ``dvc init`` says "Initialized DVC repository."."""
    import contextlib
    import io
    import logging

    from retraining_assets.core.versioning import dvc_repo_class

    dvc_repo_class()
    gone = io.StringIO()
    gone.close()
    handlers = logging.getLogger("dvc").handlers
    assert handlers
    for handler in handlers:
        # As ``import dvc`` leaves them when it ran while sys.stdout was a now-closed capture.
        handler.stream = gone  # type: ignore[attr-defined]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        DvcStore(tmp_path / "repo").ensure()
    assert "Initialized DVC repository." in out.getvalue()
