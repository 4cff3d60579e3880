"""The object-store seam: the same behaviour from a local folder and from an S3 endpoint."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from retraining_assets.storage import (
    InvalidKey,
    KeyNotFound,
    LocalStore,
    ObjectStore,
    S3Store,
    StoreError,
    check_name,
    open_store,
)
from retraining_assets_tests.conftest import free_port


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ObjectStore:
    if request.param == "local":
        return open_store(tmp_path / "state")
    endpoint = request.getfixturevalue("s3_endpoint")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"b{abs(hash(str(tmp_path))) % 10**9}"
    s3 = open_store(f"s3://{bucket}/state", endpoint_url=endpoint)
    assert isinstance(s3, S3Store)
    s3.client.create_bucket(Bucket=bucket)
    return s3


def test_put_get_list_delete(store: ObjectStore) -> None:
    store.put("a/b/one.json", b"1")
    store.put("a/two.json", b"2")
    store.put("a/two.json", b"22")
    assert store.get("a/two.json") == b"22"
    assert store.list("a") == ["a/b/one.json", "a/two.json"]
    assert store.list("a/b") == ["a/b/one.json"]
    assert store.list("missing") == []
    assert store.exists("a/b/one.json") and not store.exists("a/b")
    store.delete("a/b/one.json")
    store.delete("a/b/one.json")  # missing is fine
    assert store.list() == ["a/two.json"]
    with pytest.raises(KeyNotFound, match=r"a/b/one\.json not found"):
        store.get("a/b/one.json")
    assert store.get_or_none("nope") is None


def test_signatures_change_when_an_object_is_rewritten(store: ObjectStore) -> None:
    store.put("f/one.parquet", b"1")
    store.put("f/two.parquet", b"2")
    before = store.signatures("f")
    assert sorted(before) == ["f/one.parquet", "f/two.parquet"]
    assert all(before.values())
    store.put("f/one.parquet", b"one, corrected")
    after = store.signatures("f")
    assert after["f/one.parquet"] != before["f/one.parquet"]
    assert after["f/two.parquet"] == before["f/two.parquet"]
    assert store.child("f").signatures() == {
        "one.parquet": after["f/one.parquet"],
        "two.parquet": after["f/two.parquet"],
    }


def test_create_is_exclusive(store: ObjectStore) -> None:
    assert store.create("v/000001.json", b"first")
    assert not store.create("v/000001.json", b"second")
    assert store.get("v/000001.json") == b"first"


def test_concurrent_creates_have_one_winner(store: ObjectStore) -> None:
    """Eight writers race for one key: exactly one wins and its bytes are what is stored."""
    wins: list[bytes] = []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        data = f"writer {i}".encode()
        barrier.wait()
        if store.create("race/key.json", data):
            wins.append(data)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    assert store.get("race/key.json") == wins[0]


def test_child_store_is_scoped(store: ObjectStore) -> None:
    production = store.child("production")
    base, at, endpoint = store.location.partition(" at ")
    assert production.location == f"{base}/production{at}{endpoint}"  # still a URL, then where
    production.put("versions/000001.json", b"x")
    assert production.list() == ["versions/000001.json"]
    assert store.list() == ["production/versions/000001.json"]
    assert production.get("versions/000001.json") == b"x"


@pytest.mark.parametrize(
    "key", ["", "../x", "a/../../etc/passwd", "/abs/path", "a//b", "a/./b", "a\\b", "a b", "a/"]
)
def test_bad_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKey, match="invalid store key"):
        store.put(key, b"x")
    with pytest.raises(InvalidKey):
        store.get(key)


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "..", "", "x\x00y", "ok\n"])
def test_check_name_refuses_path_tricks(name: str) -> None:
    with pytest.raises(InvalidKey, match="partition key"):
        check_name(name, "partition key")


def test_local_store_refuses_symlinks(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    store.put("real.txt", b"ok")
    secret = tmp_path / "secret.txt"
    secret.write_text("host file")
    os.symlink(secret, store.root / "link.txt")
    os.symlink(tmp_path, store.root / "dir")
    assert store.list() == ["real.txt"]
    with pytest.raises(StoreError, match="symbolic link"):
        store.get("link.txt")
    with pytest.raises(StoreError, match="symbolic link"):
        store.get("dir/secret.txt")
    with pytest.raises(StoreError, match="symbolic link"):
        store.put("dir/new.txt", b"x")
    assert not (tmp_path / "new.txt").exists()


def test_local_store_never_lists_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / ".current.json.abc.tmp").write_text("torn")
    store.put("current.json", b"{}")
    assert store.list() == ["current.json"]


def test_unreachable_s3_endpoint_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = open_store("s3://bucket/state", endpoint_url=endpoint)
    with pytest.raises(StoreError) as info:
        store.check()
    message = str(info.value)
    assert endpoint in message and "\n" not in message
    with pytest.raises(StoreError, match=endpoint):
        store.get("production/current.json")


def test_missing_bucket_is_a_clear_error(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_store("s3://no-such-bucket/state", endpoint_url=s3_endpoint)
    with pytest.raises(StoreError, match="no-such-bucket"):
        store.check()
    with pytest.raises(StoreError, match="no-such-bucket"):
        store.put("x.json", b"1")


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store("s3://bucket/some/prefix", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3Store) and s3.bucket == "bucket" and s3.prefix == "some/prefix"
    with pytest.raises(StoreError, match="unsupported state URL"):
        open_store("gs://bucket/x")
    with pytest.raises(StoreError, match="no bucket"):
        open_store("s3:///x")
