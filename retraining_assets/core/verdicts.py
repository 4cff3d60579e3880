"""Typed, versioned verdict records: what the monitoring assets conclude, as data.

The monitoring assets (``batch_drift``, ``batch_performance``, ...) write one record per
materialization into a single JSON metadata entry named :data:`VERDICT_KEY` (beside the
human-facing entries such as ``drift/verdict`` and ``max_psi``, which stay for people and the
UI). Sensors, the replay and ``degradation_analysis`` read the records back through
:func:`read_verdict` only, and the pure decide functions in :mod:`retraining_assets.core.triggers`
take them as arguments. A record that does not match the code's schema fails loudly
(:class:`VerdictSchemaError`) instead of being read as "no drift".

Interface (small on purpose; other verdict kinds plug in the same way):

* a verdict is a frozen dataclass with a class attribute ``KIND`` (a short string) and a field
  ``schema_version`` defaulting to :data:`SCHEMA_VERSION`;
* ``verdict_metadata(record)`` -> ``{VERDICT_KEY: <json dict>}`` to merge into the asset's
  metadata (a Dagster layer wraps it in ``MetadataValue.json``; plain dicts work too);
* ``read_verdict(metadata, cls)`` -> ``cls`` instance, or ``None`` when the materialization has no
  verdict entry (written before typed verdicts, or an asset that measured nothing); raises
  :class:`VerdictSchemaError` on another kind, another schema version, a missing or unknown field;
* ``register_verdict(cls)`` adds a new kind (e.g. an estimated-performance verdict defined in its
  own module) so :func:`parse_verdict` recognises it.

Bump :data:`SCHEMA_VERSION` when a field is renamed, removed or changes meaning; adding a field
with a default does not need a bump (older records then get the default).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

#: Version of every record in this module; readers refuse any other.
SCHEMA_VERSION = 1
#: The one metadata entry that carries the typed record.
VERDICT_KEY = "verdict"


class VerdictSchemaError(ValueError):
    """A stored verdict does not match the schema this code reads (version, kind or fields)."""


class _Verdict(Protocol):
    KIND: ClassVar[str]

    @property
    def schema_version(self) -> int:
        """The schema version the record was written with."""
        ...


V = TypeVar("V", bound=_Verdict)


@dataclass(frozen=True)
class DriftVerdict:
    """Data drift of one batch against the production model's training data.

    Attributes:
        status: ``drift``, ``no_drift`` or ``no_reference`` (no production model yet).
        rule: The dataset rule that decided (``matters``, ``any_psi``, ``share``, ...).
        score: The rule's score (e.g. the largest PSI, or a drifted share).
        threshold: What ``score`` was compared with.
        max_psi: The largest PSI over the features (``inf`` when a column is missing).
        max_psi_feature: The feature with that PSI.
        drifted_features: Features that count as drifted under the rule.
        psi: PSI per feature (``None``: the column is missing from the batch).
        production_version: The production version the batch was compared against.
        rows: Rows in the batch.
        summary: One line for people.
        schema_version: :data:`SCHEMA_VERSION` at write time.
    """

    KIND: ClassVar[str] = "drift"

    status: str
    rule: str = ""
    score: float = 0.0
    threshold: float = 0.0
    max_psi: float = 0.0
    max_psi_feature: str = ""
    drifted_features: tuple[str, ...] = ()
    psi: dict[str, float | None] = field(default_factory=dict)
    production_version: int | None = None
    rows: int = 0
    summary: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def measured(self) -> bool:
        """True when the batch was compared with a reference (drift or no drift)."""
        return self.status in ("drift", "no_drift")

    @property
    def drifted(self) -> bool:
        """True when the batch counts as drifted."""
        return self.status == "drift"


@dataclass(frozen=True)
class PerformanceVerdict:
    """The production model's quality on one labelled batch.

    Attributes:
        status: ``degraded`` or ``ok``.
        reason: The numbers behind the status (e.g. ``AUC 0.55 < floor 0.60``).
        auc: AUC on the labelled rows.
        log_loss: Log loss on them.
        rows: Labelled rows measured.
        production_version: The model that was measured.
        auc_at_promotion: Its AUC when promoted (``None`` if unknown).
        errors_key: Monitoring-store key of the per-row error stream (concept drift reads it).
        scores_key: Monitoring-store key of the batch's labels and the model's raw scores (the
            label-free estimate refits its calibration on them); ``None`` before they were kept.
        schema_version: :data:`SCHEMA_VERSION` at write time.
    """

    KIND: ClassVar[str] = "performance"

    status: str
    reason: str
    auc: float
    log_loss: float | None = None
    rows: int = 0
    production_version: int | None = None
    auc_at_promotion: float | None = None
    errors_key: str | None = None
    scores_key: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def degraded(self) -> bool:
        """True when the quality fell below a floor."""
        return self.status == "degraded"


@dataclass(frozen=True)
class ConceptDriftVerdict:
    """A change in the production model's error stream (computed by the concept-drift sensor).

    Attributes:
        detected: A change was detected in the watched stream.
        rising: The change is a rise of the error (only a rise is concept drift that hurts).
        partition: Batch on which the change was detected ("" if none).
        before_mean: Mean error of the older part of the detector's window.
        after_mean: Mean error of its recent part.
        rows_seen: Labelled rows the detector has seen for this production version.
        detector: ``adwin`` or ``page_hinkley``.
        production_version: The model whose errors were watched.
        schema_version: :data:`SCHEMA_VERSION` at write time.
    """

    KIND: ClassVar[str] = "concept_drift"

    detected: bool
    rising: bool
    partition: str = ""
    before_mean: float | None = None
    after_mean: float | None = None
    rows_seen: int = 0
    detector: str = "adwin"
    production_version: int | None = None
    schema_version: int = SCHEMA_VERSION


@dataclass(frozen=True)
class EstimatedPerformanceVerdict:
    """The production model's AUC on one batch, estimated without labels (CBPE).

    Attributes:
        status: ``degraded`` or ``ok``; ``no_verdict`` when the estimate is undefined or the
            batch has too few rows; ``no_reference`` when there is no production model yet.
        reason: The numbers behind the status (e.g. ``estimated AUC 0.70 < 0.95 x 0.82``).
        estimated_auc: Expected AUC under the calibrated scores (NaN if undefined).
        reference_auc: Realised AUC on the reference test data the calibration was fitted on.
        floor: The effective floor: the higher of ``estimated_relative_auc_floor`` x
            ``reference_auc`` and ``estimated_auc_floor``.
        expected_positive_rate: Mean calibrated probability of the batch.
        rows: Rows scored.
        production_version: The model that was estimated.
        calibrator_key: Monitoring-store key of the test-split calibrator.
        calibration_batches: Labelled batches of the same model, all before this one, the
            calibration was refitted on besides the test split (empty: the test split alone).
        schema_version: :data:`SCHEMA_VERSION` at write time.
    """

    KIND: ClassVar[str] = "estimated_performance"

    status: str
    reason: str
    estimated_auc: float = math.nan
    reference_auc: float | None = None
    floor: float | None = None
    expected_positive_rate: float | None = None
    rows: int = 0
    production_version: int | None = None
    calibrator_key: str | None = None
    calibration_batches: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION

    @property
    def measured(self) -> bool:
        """True when the batch got a verdict (degraded or ok)."""
        return self.status in ("degraded", "ok")

    @property
    def degraded(self) -> bool:
        """True when the estimated AUC fell below the floor."""
        return self.status == "degraded"


_REGISTRY: dict[str, Any] = {}


def register_verdict(cls: type[V]) -> type[V]:
    """Make a verdict class known to :func:`parse_verdict` (usable as a class decorator).

    Args:
        cls: A frozen dataclass with ``KIND`` and a ``schema_version`` field.

    Returns:
        ``cls`` unchanged.
    """
    if not dataclasses.is_dataclass(cls) or not isinstance(getattr(cls, "KIND", None), str):
        raise TypeError(f"{cls!r} is not a verdict dataclass with a KIND")
    if "schema_version" not in {f.name for f in dataclasses.fields(cls)}:
        raise TypeError(f"{cls.__name__} has no schema_version field")
    _REGISTRY[cls.KIND] = cls
    return cls


register_verdict(DriftVerdict)
register_verdict(PerformanceVerdict)
register_verdict(ConceptDriftVerdict)
register_verdict(EstimatedPerformanceVerdict)


def _json_number(value: Any) -> Any:
    # JSON has no NaN or infinity: store them as strings the reader turns back.
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_number(v) for v in value]
    return value


def verdict_to_dict(record: Any) -> dict[str, Any]:
    """The JSON-ready form of a verdict: its fields plus ``kind``."""
    data = {"kind": type(record).KIND, **dataclasses.asdict(record)}
    return _json_number(data)


def verdict_metadata(record: Any) -> dict[str, Any]:
    """``{VERDICT_KEY: json dict}`` to merge into an asset's metadata."""
    return {VERDICT_KEY: verdict_to_dict(record)}


def _from_json(value: Any, name: str) -> Any:
    if isinstance(value, str) and value in ("nan", "inf", "-inf") and name != "status":
        return float(value)
    if isinstance(value, dict):
        return {k: _from_json(v, k) for k, v in value.items()}
    return value


def parse_verdict(data: Mapping[str, Any], cls: type[V] | None = None) -> V:
    """Turn a stored verdict dict back into its record, checking kind, version and fields.

    Args:
        data: The stored dict (``verdict_to_dict`` output).
        cls: The expected class; ``None`` picks it from ``data["kind"]``.

    Raises:
        VerdictSchemaError: with what is wrong and what this code expects.
    """
    if not isinstance(data, Mapping):
        raise VerdictSchemaError(f"verdict must be a JSON object, got {type(data).__name__}")
    kind = data.get("kind")
    target: Any = cls if cls is not None else _REGISTRY.get(str(kind))
    if target is None:
        raise VerdictSchemaError(f"unknown verdict kind {kind!r}; known: {sorted(_REGISTRY)}")
    if kind != target.KIND:
        raise VerdictSchemaError(f"expected a {target.KIND!r} verdict, got kind {kind!r}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise VerdictSchemaError(
            f"{target.KIND} verdict has schema_version {version!r}; this code reads "
            f"{SCHEMA_VERSION}: re-run the monitoring job with this version of the code"
        )
    fields = {f.name: f for f in dataclasses.fields(target)}
    body = {k: v for k, v in data.items() if k != "kind"}
    unknown = sorted(set(body) - set(fields))
    required = {
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - set(body))
    if unknown or missing:
        raise VerdictSchemaError(
            f"{target.KIND} verdict (schema {SCHEMA_VERSION}) does not match the code: "
            f"unknown fields {unknown}, missing fields {missing}"
        )
    values = {k: _from_json(v, k) for k, v in body.items()}
    for name, f in fields.items():
        if name in values and isinstance(values[name], list) and "tuple" in str(f.type):
            values[name] = tuple(values[name])
    result: V = target(**values)
    return result


def read_verdict(metadata: Mapping[str, Any], cls: type[V]) -> V | None:
    """The typed verdict in a materialization's metadata, if it has one.

    This is the one reader shared by sensors, the replay and the degradation analysis.

    Args:
        metadata: The materialization's metadata with plain values (``{k: v.value}``).
        cls: The expected verdict class.

    Returns:
        The record, or ``None`` if the metadata has no :data:`VERDICT_KEY` entry.

    Raises:
        VerdictSchemaError: if the entry exists but does not match ``cls``'s schema.
    """
    raw = metadata.get(VERDICT_KEY)
    if raw is None:
        return None
    return parse_verdict(raw, cls)
