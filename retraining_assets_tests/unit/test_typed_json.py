"""Typed JSON envelopes: round trips, tampering, truncation and foreign types are refused."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from retraining_assets.core.artifacts import DatasetRef, EvaluationReport, ModelRef
from retraining_assets.core.registry import ProductionRecord
from retraining_assets.core.typed_json import KNOWN_TYPES, TypedJsonError, decode, encode

DATASET = DatasetRef(
    md5="a" * 32,
    path="/x/training_dataset.parquet",
    n_rows=1000,
    n_train=800,
    n_test=200,
    train_batches=("2024-01-01", "2024-01-08"),
    test_batches=("2024-01-15",),
    strategy="weighted",
    validated=True,
    half_life_days=14.0,
    init_from_version=None,
)
MODEL = ModelRef(
    md5="b" * 32,
    path="/x/candidate_model.txt",
    dataset_md5="a" * 32,
    mlflow_run_id="r1",
    mlflow_model_uri="models:/m-1",
    registered_name="retraining_model",
    registered_version="3",
    params={"num_leaves": 31, "learning_rate": 0.05, "objective": "binary", "seed": None},
    best_iteration=17,
    train_seconds=1.25,
    train_batches=("2024-01-01",),
    test_batches=("2024-01-15",),
    init_from_version=2,
)
REPORT = EvaluationReport(
    candidate={"name": "candidate", "metrics": {"auc": 0.71, "log_loss": float("nan")}},
    production=None,
    baseline={"auc": 0.5},
    production_version=None,
    promote=True,
    against="baseline",
    reasons=("AUC 0.71 beats the baseline by 0.21",),
    test_batches=("2024-01-15",),
    roc_plot="/x/roc.png",
    delong={"p_value": 0.01, "ci": [0.01, 0.2]},
)
RECORD = ProductionRecord(
    version=2,
    model_md5="b" * 32,
    model_file="models/bbb.txt",
    action="promote",
    reason="gate",
    created_at="2024-01-16T00:00:00+00:00",
    mlflow_run_id="r1",
    metrics={"auc": 0.71},
    extra={"train_batches": ["2024-01-01"], "init_from_version": None},
)


@pytest.mark.parametrize("record", [DATASET, MODEL, REPORT, RECORD], ids=lambda r: type(r).__name__)
def test_each_record_type_round_trips(record) -> None:
    data, digest = encode(record)
    envelope = json.loads(data)
    assert envelope["type"] == type(record).__name__
    assert envelope["schema_version"] == 1
    assert envelope["sha256"] == digest
    back = decode(data, key="io/k.json", expected=type(record))
    assert type(back) is type(record)
    # NaN != NaN: compare the canonical JSON of both instead of the objects.
    assert encode(back) == (data, digest)
    if isinstance(record, DatasetRef):
        assert back == record and isinstance(back.train_batches, tuple)


def test_allow_list_is_the_flowing_records() -> None:
    assert set(KNOWN_TYPES) == {"DatasetRef", "ModelRef", "EvaluationReport", "ProductionRecord"}


def test_numpy_scalars_are_stored_as_plain_numbers() -> None:
    report = EvaluationReport(**{**REPORT.__dict__, "baseline": {"auc": np.float32(0.5)}})
    back = decode(encode(report)[0], key="k")
    assert back.baseline == {"auc": 0.5} and type(back.baseline["auc"]) is float
    nan = decode(encode(REPORT)[0], key="k").candidate["metrics"]["log_loss"]
    assert math.isnan(nan)


def test_unknown_types_are_refused_both_ways() -> None:
    @dataclass(frozen=True)
    class DatasetRefLookalike:
        md5: str

    with pytest.raises(TypedJsonError, match="not an allow-listed record type"):
        encode(DatasetRefLookalike("x"))
    with pytest.raises(TypedJsonError, match="cannot be stored as plain JSON"):
        encode(ModelRef(**{**MODEL.__dict__, "params": {"path": Path("/x")}}))
    data = json.loads(encode(DATASET)[0])
    data["type"] = "os.system"
    with pytest.raises(TypedJsonError, match=r"'os\.system', which is not allow-listed"):
        decode(json.dumps(data).encode(), key="io/x/_/r.json")


def _tamper(data: bytes, **payload) -> bytes:
    envelope = json.loads(data)
    envelope["payload"].update(payload)
    return json.dumps(envelope).encode()


def test_tampered_value_fails_the_digest_naming_the_key() -> None:
    data = _tamper(encode(MODEL)[0], md5="c" * 32)
    with pytest.raises(TypedJsonError, match=r"io/candidate_model/_/r1\.json fails its sha256"):
        decode(data, key="io/candidate_model/_/r1.json")


def test_tampered_value_with_a_recomputed_digest_still_needs_the_right_types() -> None:
    import hashlib

    from retraining_assets.core.typed_json import canonical

    envelope = json.loads(encode(MODEL)[0])
    envelope["payload"]["best_iteration"] = "17; import os"
    envelope["payload"]["__class__"] = "x"
    envelope["sha256"] = hashlib.sha256(canonical(envelope["payload"])).hexdigest()
    with pytest.raises(TypedJsonError, match="unknown field"):
        decode(json.dumps(envelope).encode(), key="k")
    del envelope["payload"]["__class__"]
    envelope["sha256"] = hashlib.sha256(canonical(envelope["payload"])).hexdigest()
    with pytest.raises(TypedJsonError, match=r"best_iteration: '17; import os'.* is not a int"):
        decode(json.dumps(envelope).encode(), key="k")


def test_truncated_empty_or_pickled_bytes_are_refused_with_the_key(tmp_path: Path) -> None:
    data = encode(REPORT)[0]
    marker = tmp_path / "executed"
    payloads = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "pickle": pickle.dumps(marker),  # what the old IO manager read back
        "binary": b"\x80\x04\xff\xfe",
    }
    for what, raw in payloads.items():
        with pytest.raises(TypedJsonError, match=r"io/evaluation_report/_/r\.json is not valid"):
            decode(raw, key="io/evaluation_report/_/r.json")
        assert not marker.exists(), what


def test_wrong_type_for_the_input_is_refused() -> None:
    with pytest.raises(TypedJsonError, match="holds a ModelRef, not a DatasetRef"):
        decode(encode(MODEL)[0], key="k", expected=DatasetRef)


def test_missing_field_and_other_schema_version_are_refused() -> None:
    envelope = json.loads(encode(DATASET)[0])
    envelope["schema_version"] = 2
    with pytest.raises(TypedJsonError, match="schema version 2"):
        decode(json.dumps(envelope).encode(), key="k")
    import hashlib

    from retraining_assets.core.typed_json import canonical

    envelope = json.loads(encode(DATASET)[0])
    del envelope["payload"]["md5"]
    envelope["sha256"] = hashlib.sha256(canonical(envelope["payload"])).hexdigest()
    with pytest.raises(TypedJsonError, match=r"missing field.s. md5 of DatasetRef"):
        decode(json.dumps(envelope).encode(), key="k")
