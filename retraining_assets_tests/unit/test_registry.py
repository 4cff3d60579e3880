"""The production store: versions, history, content-addressed model bytes and the atomic pointer."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest

from retraining_assets.core.registry import ProductionRecord, ProductionStore


def _model(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"tree\nversion=v4\n{text}\npandas_categorical:null\n")
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> ProductionStore:
    return ProductionStore(tmp_path / "production")


def test_empty_store_has_no_current_and_no_history(store: ProductionStore) -> None:
    assert store.current() is None
    assert store.history() == []
    assert not store.root.exists()  # reading creates nothing


def test_first_promote_creates_version_1_pointer_and_history(
    store: ProductionStore, tmp_path: Path
) -> None:
    source = _model(tmp_path / "src" / "m1.txt", "first")
    record = store.promote(
        source,
        reason="beats baseline",
        mlflow_run_id="run-1",
        dataset_md5="d" * 32,
        metrics={"auc": 0.81},
    )
    md5 = _md5(source)
    assert record.version == 1
    assert record.action == "promote"
    assert record.reason == "beats baseline"
    assert record.model_md5 == md5
    assert record.model_file == f"models/{md5}.txt"
    assert record.mlflow_run_id == "run-1"
    assert record.metrics == {"auc": 0.81}
    assert datetime.fromisoformat(record.created_at).utcoffset() is not None
    assert store.pointer.exists() and store.history_file.exists()
    assert store.current() == record
    assert store.history() == [record]
    assert json.loads(store.pointer.read_text()) == json.loads(record.to_json())


def test_second_promote_is_version_2_and_history_keeps_both(
    store: ProductionStore, tmp_path: Path
) -> None:
    first = store.promote(_model(tmp_path / "m1.txt", "first"), reason="first")
    history_line_1 = store.history_file.read_text()
    second = store.promote(_model(tmp_path / "m2.txt", "second"), reason="better")
    assert second.version == 2
    assert store.current() == second
    assert store.history() == [first, second]
    assert store.history_file.read_text().startswith(history_line_1)  # append-only
    assert len(store.history_file.read_text().splitlines()) == 2
    # The first version's bytes stay available (for a rollback).
    assert store.model_path(first).exists()
    assert store.model_path(first) != store.model_path(second)
    third = store.promote(_model(tmp_path / "m3.txt", "third"), reason="again", action="rollback")
    assert third.version == 3 and third.action == "rollback"
    assert [r.version for r in store.history()] == [1, 2, 3]


def test_model_bytes_equal_the_source_and_are_independent_of_it(
    store: ProductionStore, tmp_path: Path
) -> None:
    source = _model(tmp_path / "m.txt", "bytes" * 1000)
    original = source.read_bytes()
    record = store.promote(source, reason="r")
    stored = store.model_path(record)
    assert stored.is_absolute()
    assert stored.read_bytes() == original
    assert _md5(stored) == record.model_md5
    source.write_text("changed after promotion")
    assert stored.read_bytes() == original


def test_pointer_is_replaced_atomically_and_no_temp_files_remain(
    store: ProductionStore, tmp_path: Path
) -> None:
    first = store.promote(_model(tmp_path / "m1.txt", "first"), reason="first")
    inode = store.pointer.stat().st_ino
    with store.pointer.open() as reader:
        second = store.promote(_model(tmp_path / "m2.txt", "second"), reason="second")
        # A reader holding the old pointer still sees a complete old record.
        assert ProductionRecord.from_dict(json.loads(reader.read())) == first
    assert store.pointer.stat().st_ino != inode  # renamed over, not rewritten in place
    assert store.current() == second
    assert _all_files(store.root) == sorted(
        [
            ".lock",
            "current.json",
            "history.jsonl",
            f"models/{first.model_md5}.txt",
            f"models/{second.model_md5}.txt",
        ]
    )


def test_same_bytes_twice_reuse_the_content_addressed_file(
    store: ProductionStore, tmp_path: Path
) -> None:
    a = _model(tmp_path / "a.txt", "same")
    b = _model(tmp_path / "elsewhere" / "b.txt", "same")
    first = store.promote(a, reason="first")
    stored = store.model_path(first)
    stat = stored.stat()
    second = store.promote(b, reason="same bytes again")
    assert second.version == 2
    assert second.model_md5 == first.model_md5
    assert second.model_file == first.model_file
    assert sorted(p.name for p in (store.root / "models").iterdir()) == [f"{first.model_md5}.txt"]
    assert stored.stat().st_ino == stat.st_ino  # the file was not rewritten
    assert stored.stat().st_mtime_ns == stat.st_mtime_ns


def test_records_round_trip_through_json(store: ProductionStore, tmp_path: Path) -> None:
    record = store.promote(
        _model(tmp_path / "m.txt", "x"),
        reason="r",
        mlflow_model_uri="models:/m/3",
        registered_version="3",
        extra={"decision": ["PASS a", "PASS b"]},
    )
    reloaded = ProductionStore(store.root)
    assert reloaded.current() == record
    assert reloaded.history() == [record]
    assert ProductionRecord.from_dict(json.loads(record.to_json())) == record


def test_unknown_record_field_is_refused_and_nothing_changes(
    store: ProductionStore, tmp_path: Path
) -> None:
    first = store.promote(_model(tmp_path / "m1.txt", "first"), reason="first")
    with pytest.raises(TypeError):
        store.promote(_model(tmp_path / "m2.txt", "second"), reason="r", not_a_field=1)
    assert store.current() == first
    assert store.history() == [first]


def _text_model(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_rollback_restores_previous_bytes_and_pointer(tmp_path) -> None:
    from retraining_assets.core.registry import ProductionStore, RegistryError

    store = ProductionStore(tmp_path / "prod")
    v1 = store.promote(
        _text_model(tmp_path, "a.txt", "tree\nmodel A\n"), reason="first", dataset_md5="d1"
    )
    v2 = store.promote(_text_model(tmp_path, "b.txt", "tree\nmodel B\n"), reason="better")
    assert store.current() == v2
    rolled = store.rollback(reason="B misbehaves in production")
    assert rolled.version == 3 and rolled.action == "rollback"
    assert rolled.model_md5 == v1.model_md5 and rolled.dataset_md5 == "d1"
    assert rolled.extra["restores_version"] == 1 and rolled.extra["rolled_back_from"] == 2
    assert store.current() == rolled
    assert store.model_path(rolled).read_text() == "tree\nmodel A\n"
    assert [r.action for r in store.history()] == ["promote", "promote", "rollback"]
    # Explicit target; errors are clear.
    again = store.rollback(to_version=2, reason="back to B")
    assert store.model_path(again).read_text() == "tree\nmodel B\n"
    with pytest.raises(RegistryError, match="no production version 9"):
        store.rollback(to_version=9, reason="x")
    with pytest.raises(RegistryError, match="already serving"):
        store.rollback(to_version=4, reason="x")


def test_rollback_refuses_changed_bytes_and_empty_store(tmp_path) -> None:
    from retraining_assets.core.registry import ProductionStore, RegistryError

    store = ProductionStore(tmp_path / "prod")
    with pytest.raises(RegistryError, match="nothing is in production"):
        store.rollback(reason="x")
    v1 = store.promote(_text_model(tmp_path, "a.txt", "tree\nA\n"), reason="first")
    with pytest.raises(RegistryError, match="first version"):
        store.rollback(reason="x")
    store.promote(_text_model(tmp_path, "b.txt", "tree\nB\n"), reason="second")
    path = store.model_path(v1)
    path.chmod(0o644)
    path.write_text("tampered")
    before = store.pointer.read_bytes()
    with pytest.raises(RegistryError, match="missing or changed"):
        store.rollback(reason="x")
    assert store.pointer.read_bytes() == before


def test_challenger_is_held_apart_from_production(tmp_path) -> None:
    from retraining_assets.core.registry import ProductionStore

    store = ProductionStore(tmp_path / "prod")
    v1 = store.promote(_text_model(tmp_path, "a.txt", "tree\nA\n"), reason="first")
    pointer = store.pointer.read_bytes()
    challenger = store.set_challenger(
        _text_model(tmp_path, "b.txt", "tree\nB\n"), reason="passed gate"
    )
    assert store.challenger() == challenger and challenger.version == v1.version
    assert store.pointer.read_bytes() == pointer
    assert store.model_path(challenger).read_text() == "tree\nB\n"
    store.clear_challenger()
    assert store.challenger() is None
