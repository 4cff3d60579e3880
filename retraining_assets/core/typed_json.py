"""Asset outputs as plain, typed, hash-verified JSON: the only way values pass between runs.

The records that flow between assets are small frozen dataclasses (``DatasetRef``, ``ModelRef``,
``EvaluationReport``, ``ProductionRecord``); the bytes they point at (datasets, models) live in
DVC and the production registry. :func:`encode` turns one record into an envelope::

    {"format": "retraining_assets/io", "schema_version": 1, "type": "ModelRef",
     "sha256": "<hex digest of the canonical payload>", "payload": {...fields...}}

and :func:`decode` reverses it only for the allow-listed types in :data:`KNOWN_TYPES`, after
checking the format, the schema version, the digest and every field's type. Nothing read back is
ever executed: a tampered or truncated file raises :class:`TypedJsonError` naming the key.

No Dagster import here; ``retraining_assets.defs.io`` is the thin IO-manager layer on top.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any

from retraining_assets.core.artifacts import DatasetRef, EvaluationReport, ModelRef
from retraining_assets.core.registry import ProductionRecord

#: Value of the envelope's ``format`` field.
FORMAT = "retraining_assets/io"
#: Version of the envelope layout; bump it when the layout (not a record's fields) changes.
SCHEMA_VERSION = 1

#: The only classes :func:`decode` will build, by the name stored in the envelope.
KNOWN_TYPES: dict[str, type] = {
    cls.__name__: cls for cls in (DatasetRef, ModelRef, EvaluationReport, ProductionRecord)
}


class TypedJsonError(ValueError):
    """A stored value cannot be written or trusted; the message names the key and the reason."""


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON-ready data (dicts, lists, str, numbers, bool, None), or raise."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if KNOWN_TYPES.get(name) is not type(value):
            raise TypedJsonError(f"{where}: {name} is not an allow-listed record type")
        return {
            f.name: _plain(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
        }
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypedJsonError(f"{where}: dict key {k!r} is not a string")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    item = getattr(value, "item", None)  # numpy scalars: their Python value, nothing else
    if callable(item) and type(value).__module__ == "numpy":
        return _plain(item(), where)
    raise TypedJsonError(f"{where}: {type(value).__name__} cannot be stored as plain JSON")


def canonical(payload: Any) -> bytes:
    """The bytes the digest is computed over: sorted keys, no whitespace, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode(record: Any) -> tuple[bytes, str]:
    """Serialise an allow-listed record.

    Args:
        record: An instance of one of :data:`KNOWN_TYPES`.

    Returns:
        The envelope's bytes and the payload's sha256 hex digest.

    Raises:
        TypedJsonError: if the record's type or one of its values is not plain data.
    """
    name = type(record).__name__
    if KNOWN_TYPES.get(name) is not type(record):
        raise TypedJsonError(
            f"{name} is not an allow-listed record type (known: {', '.join(sorted(KNOWN_TYPES))})"
        )
    payload = _plain(record, name)
    digest = hashlib.sha256(canonical(payload)).hexdigest()
    envelope = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "type": name,
        "sha256": digest,
        "payload": payload,
    }
    return json.dumps(envelope, sort_keys=True, indent=1, ensure_ascii=False).encode(), digest


def _check(value: Any, hint: Any, where: str) -> Any:
    """``value`` converted to the field type ``hint`` (lists to tuples), or raise."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _check(value, option, where)
            except TypedJsonError:
                continue
        raise TypedJsonError(f"{where}: {value!r:.60} does not match {hint}")
    if hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin in (tuple, list) and isinstance(value, list):
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if origin is list:
            item = args[0] if args else Any
            return [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        if len(args) == len(value):
            pairs = enumerate(zip(args, value, strict=True))
            return tuple(_check(v, a, f"{where}[{i}]") for i, (a, v) in pairs)
    elif (origin is dict or hint is dict) and isinstance(value, dict):
        item = args[1] if len(args) == 2 else Any
        return {k: _check(v, item, f"{where}.{k}") for k, v in value.items()}
    elif (
        isinstance(hint, type)
        and KNOWN_TYPES.get(hint.__name__) is hint
        and isinstance(value, dict)
    ):
        return _build(hint, value, where)
    raise TypedJsonError(f"{where}: {value!r:.60} is not a {getattr(hint, '__name__', hint)}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """An instance of the allow-listed dataclass ``cls`` from its checked fields."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise TypedJsonError(f"{where}: unknown field(s) {', '.join(unknown)} for {cls.__name__}")
    missing = sorted(
        name
        for name, f in fields.items()
        if name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise TypedJsonError(f"{where}: missing field(s) {', '.join(missing)} of {cls.__name__}")
    values = {name: _check(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    return cls(**values)


def decode(data: bytes, *, key: str, expected: type | None = None) -> Any:
    """Read back one envelope written by :func:`encode`, after verifying it.

    Args:
        data: The stored bytes.
        key: Where they came from, for the message.
        expected: If given, the record must be of this type.

    Returns:
        The record, an instance of one of :data:`KNOWN_TYPES`.

    Raises:
        TypedJsonError: if the bytes are not JSON (truncated, another format such as a pickle),
            the format, version, type or digest do not match, or a field has the wrong type.
    """
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TypedJsonError(
            f"stored value {key} is not valid JSON (truncated, corrupted or not written by this"
            f" IO manager): {exc}"
        ) from None
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        raise TypedJsonError(f"stored value {key} is not a {FORMAT} envelope")
    version = envelope.get("schema_version")
    if version != SCHEMA_VERSION:
        raise TypedJsonError(
            f"stored value {key} has schema version {version!r}; this code reads {SCHEMA_VERSION}"
        )
    name = envelope.get("type")
    cls = KNOWN_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise TypedJsonError(
            f"stored value {key} has type {name!r}, which is not allow-listed"
            f" (known: {', '.join(sorted(KNOWN_TYPES))})"
        )
    payload = envelope.get("payload")
    digest = hashlib.sha256(canonical(payload)).hexdigest()
    if digest != envelope.get("sha256"):
        raise TypedJsonError(
            f"stored value {key} fails its sha256 check (recorded {envelope.get('sha256')!r},"
            f" content {digest}): it was modified after it was written"
        )
    if not isinstance(payload, dict):
        raise TypedJsonError(f"stored value {key}: payload is not an object")
    if expected is not None and cls is not expected:
        raise TypedJsonError(f"stored value {key} holds a {name}, not a {expected.__name__}")
    try:
        return _build(cls, payload, f"{key}:{name}")
    except TypedJsonError:
        raise
    except (TypeError, ValueError) as exc:  # a dataclass's own checks
        raise TypedJsonError(f"stored value {key}: {exc}") from None
