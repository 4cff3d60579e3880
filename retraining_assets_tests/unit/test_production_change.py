"""One way production changes: promotion, challenger, shadow promotion and rollback; lineage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retraining_assets.core.promotion import (
    Candidate,
    Lineage,
    ProductionChange,
    change_production,
    shadow_verdict,
)
from retraining_assets.core.registry import ProductionRecord, ProductionStore, PromotionConflict
from retraining_assets.storage import StoreError

LINEAGE = Lineage(
    dagster_run_id="run-1",
    params={"num_leaves": 31},
    strategy="rolling",
    train_batches=("2024-01-01", "2024-01-08"),
    test_batches=("2024-01-15",),
    init_from_version=None,
    code_versions={"candidate_model": "abc"},
    code_commit="deadbeef",
)


def _candidate(text: str, lineage: Lineage = LINEAGE) -> Candidate:
    return Candidate(
        model_bytes=f"tree\nversion=v4\n{text}\npandas_categorical:null\n".encode(),
        mlflow_run_id=f"mlflow-{text}",
        mlflow_model_uri=f"models:/{text}",
        registered_version="1",
        dataset_md5="d" * 32,
        metrics={"auc": 0.8},
        lineage=lineage,
    )


class _Aliases:
    """Records the versions the ``champion`` alias was moved to."""

    def __init__(self) -> None:
        self.moved: list[int] = []

    def __call__(self, record: ProductionRecord) -> str:
        self.moved.append(record.version)
        return f"moved to v{record.version}"


@pytest.fixture
def store(tmp_path: Path) -> ProductionStore:
    return ProductionStore(tmp_path / "production")


def test_lineage_is_stored_under_the_keys_records_always_had() -> None:
    extra = LINEAGE.as_extra()
    assert extra == {
        "dagster_run_id": "run-1",
        "params": {"num_leaves": 31},
        "strategy": "rolling",
        "train_batches": ["2024-01-01", "2024-01-08"],
        "test_batches": ["2024-01-15"],
        "init_from_version": None,
        "code_versions": {"candidate_model": "abc"},
        "code_commit": "deadbeef",
    }
    assert Lineage.from_extra(extra) == LINEAGE
    assert LINEAGE.last_train_batch() == "2024-01-08"


def test_lineage_reads_early_records_and_keeps_unknown_keys() -> None:
    early = Lineage.from_extra({"strategy": "full", "note": "by hand"})
    assert early.train_batches == () and early.last_train_batch() is None
    assert early.as_extra()["note"] == "by hand"
    rollback = Lineage.from_extra({**LINEAGE.as_extra(), "restores_version": 1})
    assert rollback.restores_version == 1
    assert rollback.as_extra()["restores_version"] == 1


def test_promote_writes_a_version_then_moves_the_alias(store: ProductionStore) -> None:
    aliases = _Aliases()
    change = ProductionChange("promote", "gate passed", "run-1", None, _candidate("a"))
    result = change_production(store, change, aliases)
    assert result.record.version == 1 and result.champion_alias == "moved to v1"
    assert aliases.moved == [1]
    assert store.current() == result.record
    assert Lineage.from_extra(result.record.extra) == LINEAGE


def test_a_lost_race_changes_nothing_and_moves_no_alias(store: ProductionStore) -> None:
    aliases = _Aliases()
    change_production(store, ProductionChange("promote", "x", "r", None, _candidate("a")), aliases)
    stale = ProductionChange("promote", "late", "r2", None, _candidate("b"))
    with pytest.raises(PromotionConflict):
        change_production(store, stale, aliases)
    assert aliases.moved == [1]
    assert [r.version for r in store.history()] == [1]


def test_challenger_leaves_production_and_alias_alone(store: ProductionStore) -> None:
    aliases = _Aliases()
    change_production(store, ProductionChange("promote", "x", "r", None, _candidate("a")), aliases)
    held = change_production(
        store, ProductionChange("challenger", "shadow", "r2", 1, _candidate("b")), aliases
    )
    assert held.champion_alias is None and aliases.moved == [1]
    challenger = store.challenger()
    assert challenger is not None and challenger.model_md5 == held.record.model_md5
    current = store.current()
    assert current is not None and current.version == 1

    shadowed = Candidate.of_challenger(store, challenger, shadowed_on=["w1", "w2"])
    assert shadowed.lineage.shadow_batches_seen == ("w1", "w2")
    promoted = change_production(
        store, ProductionChange("promote_challenger", "held up", "r3", 1, shadowed), aliases
    )
    assert promoted.record.version == 2 and aliases.moved == [1, 2]
    assert store.challenger() is None
    assert promoted.record.extra["shadow_batches_seen"] == ["w1", "w2"]


def test_a_promoted_challenger_whose_record_cannot_be_cleared_still_counts_as_promoted(
    store: ProductionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    aliases = _Aliases()
    change_production(store, ProductionChange("promote", "x", "r", None, _candidate("a")), aliases)
    change_production(
        store, ProductionChange("challenger", "shadow", "r2", 1, _candidate("b")), aliases
    )
    challenger = store.challenger()
    assert challenger is not None

    def unreachable() -> None:
        raise StoreError("store unreachable")

    monkeypatch.setattr(store, "clear_challenger", unreachable)
    shadowed = Candidate.of_challenger(store, challenger, shadowed_on=["w1"])
    result = change_production(
        store, ProductionChange("promote_challenger", "held up", "r3", 1, shadowed), aliases
    )
    assert result.record.version == 2 and aliases.moved == [1, 2]
    assert result.warning is not None and "store unreachable" in result.warning
    current = store.current()
    assert current is not None and current.model_md5 == challenger.model_md5


def test_rollback_restores_the_earlier_bytes_and_moves_the_alias(store: ProductionStore) -> None:
    aliases = _Aliases()
    for version, text in enumerate("ab"):
        change = ProductionChange("promote", "x", "r", version or None, _candidate(text))
        change_production(store, change, aliases)
    result = change_production(store, ProductionChange("rollback", "bad", "cli"), aliases)
    lineage = Lineage.from_extra(result.record.extra)
    assert (lineage.restores_version, lineage.rolled_back_from) == (1, 2)
    assert result.record.model_md5 == store.record(1).model_md5
    assert aliases.moved == [1, 2, 3]


def test_a_promotion_needs_a_candidate(store: ProductionStore) -> None:
    with pytest.raises(ValueError, match="needs a candidate"):
        change_production(store, ProductionChange("promote", "x", "r"), _Aliases())


def _record(version: int) -> ProductionRecord:
    return ProductionRecord(version, "m" * 32, "models/m.txt", "promote", "", "2024-01-01")


def test_shadow_verdict_retires_a_challenger_of_an_older_version() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = y + rng.normal(0, 0.3, 400)
    promote, reason = shadow_verdict(_record(1), _record(1), ["w1"], y, good - 0.5, good)
    assert promote and reason.startswith("shadow on w1: PASS")
    promote, reason = shadow_verdict(_record(1), _record(2), ["w1"], y, good - 0.5, good)
    assert not promote
    assert reason == "production moved to v2 during the shadow period: retired"
