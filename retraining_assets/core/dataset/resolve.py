"""Resolve a source frame against its configuration: the schema, and the rows in batch form.

:func:`resolve` infers the schema (which columns are numeric and categorical features, checked
against every column the configuration names) and cleans the frame: the label as 0/1, naive
timestamps, float64 numeric and string categorical features, sorted by time.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from retraining_assets.core.dataset.config import DatasetConfig
from retraining_assets.core.dataset.errors import DatasetConfigError, listing, show, suggest
from retraining_assets.schemas import DatasetSchema


def _infer_schema(config: DatasetConfig, frame: pd.DataFrame) -> tuple[DatasetSchema, list[str]]:
    """The schema ``config`` gives for a source frame, with notes on what was inferred.

    Only the frame's columns and dtypes are used.

    Features are ``config.features`` in order, or else every column except the timestamp, the
    target (or the rule's column), the id and ``drop``, in frame order. A feature is numeric when
    its dtype is numeric (bool included) and it is not listed under ``categorical``; otherwise
    categorical. Datetime columns are not features: listed ones fail, inferred ones are skipped.

    Raises:
        DatasetConfigError: on a column that does not exist (the message lists the available
            ones), or on contradictory settings (e.g. a feature that is also dropped).
    """
    available = [str(c) for c in frame.columns]
    _check_columns_exist(config, available)
    roles = _column_roles(config, set(available))
    candidates = _candidate_features(config, available, roles)
    notes: list[str] = []
    numeric, categorical = _split_by_dtype(config, frame, candidates, notes)
    if not numeric and not categorical:
        raise DatasetConfigError(
            f"{config.where('features')}: no feature left (available: {listing(available)})"
        )
    _check_feature_settings(config, numeric, categorical)
    schema = DatasetSchema(
        timestamp=config.timestamp,
        target=config.label_column,
        numeric_features=tuple(numeric),
        categorical_features=tuple(categorical),
        id_column=config.id_column,
        numeric_ranges=dict(config.numeric_ranges),
        required_non_null=config.required_non_null,
        min_rows=config.min_rows,
    )
    return schema, notes


def _check_columns_exist(config: DatasetConfig, available: list[str]) -> None:
    """Every column the configuration names is in the source (else the closest name)."""
    present = set(available)

    def unknown(key: str, columns: Sequence[str]) -> None:
        missing = [c for c in columns if c not in present]
        if not missing:
            return
        hint = suggest(missing[0], available)
        plural = "s" if len(missing) > 1 else ""
        raise DatasetConfigError(
            f"{config.where(key)}: column{plural} {', '.join(map(repr, missing))} not found"
            f"{hint}; available: {listing(available)}"
        )

    unknown("timestamp", [config.timestamp])
    if config.target is not None:
        unknown("target", [config.target])
    if config.target_rule is not None:
        unknown("target_rule", [config.target_rule.column])
    if config.id_column:
        unknown("id_column", [config.id_column])
    unknown("features", config.features or ())
    unknown("categorical", config.categorical)
    unknown("drop", config.drop)
    unknown("numeric_ranges", list(config.numeric_ranges))
    unknown("required_non_null", config.required_non_null)


def _column_roles(config: DatasetConfig, present: set[str]) -> dict[str, str]:
    """The columns that are not features (timestamp, label source, id) by role; no clashes."""
    if config.target_rule is not None:
        label_source, role = config.target_rule.column, "target_rule column"
    else:
        assert config.target is not None
        label_source, role = config.target, "target"
    roles = {config.timestamp: "timestamp", label_source: role}
    if config.id_column:
        if config.id_column in roles:
            raise DatasetConfigError(
                f"{config.where('id_column')}: {config.id_column!r} is already the "
                f"{roles[config.id_column]}"
            )
        roles[config.id_column] = "id_column"
    if label_source == config.timestamp:
        raise DatasetConfigError(
            f"{config.where('target')}: {label_source!r} is also the timestamp column"
        )
    if config.target_rule is not None and config.target_name in present:
        raise DatasetConfigError(
            f"{config.where('target_name')}: the rule's label column {config.target_name!r} "
            "already exists in the source; choose another name with target_name:"
        )
    return roles


def _candidate_features(
    config: DatasetConfig, available: list[str], roles: dict[str, str]
) -> list[str]:
    """The listed features, or every column that has no role and is not dropped."""
    for key, columns in (("features", config.features or ()), ("categorical", config.categorical)):
        for column in columns:
            if column in roles:
                raise DatasetConfigError(
                    f"{config.where(key)}: {column!r} is the {roles[column]}, not a feature"
                )
    clash = sorted(set(config.drop) & set(config.features or ()))
    if clash:
        raise DatasetConfigError(
            f"{config.where('drop')}: {', '.join(map(repr, clash))} also listed under features"
        )
    if config.features is not None:
        outside = [c for c in config.categorical if c not in config.features]
        if outside:
            raise DatasetConfigError(
                f"{config.where('categorical')}: {', '.join(map(repr, outside))} not among "
                "the listed features"
            )
        return list(config.features)
    dropped = [c for c in config.categorical if c in config.drop]
    if dropped:
        raise DatasetConfigError(
            f"{config.where('categorical')}: {', '.join(map(repr, dropped))} also listed under drop"
        )
    excluded = set(roles) | set(config.drop)
    return [c for c in available if c not in excluded]


def _split_by_dtype(
    config: DatasetConfig, frame: pd.DataFrame, candidates: list[str], notes: list[str]
) -> tuple[list[str], list[str]]:
    """Numeric and categorical features by dtype and ``categorical``; datetimes are refused."""
    numeric: list[str] = []
    categorical: list[str] = []
    for column in candidates:
        dtype = frame[column].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            if config.features is not None:
                raise DatasetConfigError(
                    f"{config.where('features')}: {column!r} is a {dtype} column; derive numeric "
                    "parts (hour, weekday, ...) upstream instead"
                )
            notes.append(f"column {column!r} ({dtype}) skipped: datetimes are not features")
            continue
        if column not in config.categorical and pd.api.types.is_numeric_dtype(dtype):
            numeric.append(column)
        else:
            categorical.append(column)
    return numeric, categorical


def _check_feature_settings(
    config: DatasetConfig, numeric: list[str], categorical: list[str]
) -> None:
    """Ranges name numeric features and ``required_non_null`` names features."""
    features = set(numeric) | set(categorical)
    for column in config.numeric_ranges:
        if column not in numeric:
            kind = "a categorical feature" if column in features else "not a feature"
            raise DatasetConfigError(
                f"{config.where('numeric_ranges')}: {column!r} is {kind}; ranges apply to "
                "numeric features only"
            )
    not_features = [c for c in config.required_non_null if c not in features]
    if not_features:
        raise DatasetConfigError(
            f"{config.where('required_non_null')}: {', '.join(map(repr, not_features))} "
            "not among the features"
        )


def resolve(
    config: DatasetConfig, frame: pd.DataFrame, *, notes: list[str] | None = None
) -> tuple[DatasetSchema, pd.DataFrame]:
    """Check ``frame`` against ``config`` and clean it into batch form.

    Rows whose label (or rule column) or timestamp is missing are dropped, and a line saying how
    many is appended to ``notes``. The label becomes int64 0/1: a rule's result, a bool column,
    a 0/1 column, or ``value == positive`` for any other two-valued column. Timestamps become
    naive ``datetime64[ns]`` (tz-aware ones in UTC). Numeric features become float64, categorical
    ones python strings (missing stays ``None``; integral numbers print without ``.0``).

    Args:
        config: The dataset configuration.
        frame: The source rows (see :func:`read_source`); not modified.
        notes: If given, human-readable remarks (dropped rows, skipped columns) are appended.

    Returns:
        The schema, and the frame with exactly ``schema.columns`` sorted by timestamp then id
        (index reset).

    Raises:
        DatasetConfigError: on unknown columns, a target that is not binary, unparseable
            timestamps, a non-numeric rule column, or a missing or duplicate id.
    """
    schema, remarks = _infer_schema(config, frame)
    frame = frame.reset_index(drop=True)
    total = len(frame)

    # Label: rows without one are dropped (a rule on a missing value has no answer).
    if config.target_rule is not None:
        rule = config.target_rule
        values = _numeric_rule_column(config, frame[rule.column])
        keep = values.notna()
        if (~keep).any():
            remarks.append(
                f"{int((~keep).sum())} of {total} rows dropped: {rule.column!r} missing, so "
                f"the rule {str(rule)!r} has no answer"
            )
        label = rule.apply(values[keep])
    else:
        assert config.target is not None
        raw_label = frame[config.target]
        keep = raw_label.notna()
        if (~keep).any():
            remarks.append(
                f"{int((~keep).sum())} of {total} rows dropped: target {config.target!r} missing"
            )
        label = _binary_target(config, raw_label[keep])

    stamps = frame[config.timestamp][keep]
    has_time = stamps.notna()
    if (~has_time).any():
        remarks.append(
            f"{int((~has_time).sum())} of {total} rows dropped: timestamp "
            f"{config.timestamp!r} missing"
        )
    index = stamps.index[has_time.to_numpy()]
    if len(index) == 0:
        raise DatasetConfigError(f"{config.where('source')}: no usable row ({total} in the source)")
    timestamps = _parse_timestamps(config, stamps[has_time])

    columns: dict[str, Any] = {}
    if config.id_column:
        ids = frame[config.id_column].loc[index]
        if ids.isna().any():
            raise DatasetConfigError(
                f"{config.where('id_column')}: {int(ids.isna().sum())} rows have no "
                f"{config.id_column!r}"
            )
        duplicated = ids[ids.duplicated()]
        if len(duplicated):
            raise DatasetConfigError(
                f"{config.where('id_column')}: {config.id_column!r} is not unique: "
                f"{len(duplicated)} rows repeat an earlier value (e.g. {show(duplicated.iloc[0])})"
            )
        columns[config.id_column] = ids.reset_index(drop=True)  # keeps nullable/str dtypes
    columns[config.timestamp] = timestamps.to_numpy(dtype="datetime64[ns]")
    for column in schema.numeric_features:
        columns[column] = frame[column].loc[index].to_numpy(dtype="float64", na_value=np.nan)
    for column in schema.categorical_features:
        text = _as_text(frame[column].loc[index])
        if len(text) >= 50 and text.nunique() == len(text):
            remarks.append(
                f"categorical feature {column!r} has a different value on every row: an id? "
                "list it under drop: (or as id_column:)"
            )
        columns[column] = text.to_numpy(dtype=object)
    columns[schema.target] = label.loc[index].to_numpy(dtype="int64")

    out = pd.DataFrame(columns)[schema.columns]
    order = [schema.timestamp, *([schema.id_column] if schema.id_column else [])]
    out = out.sort_values(order, kind="stable", ignore_index=True)
    if notes is not None:
        notes.extend(remarks)
    return schema, out


def _numeric_rule_column(config: DatasetConfig, series: pd.Series) -> pd.Series:
    assert config.target_rule is not None
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("float64")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return pd.Series(series.to_numpy(dtype="float64", na_value=np.nan), index=series.index)
    converted = pd.to_numeric(series, errors="coerce")
    bad = series[converted.isna() & series.notna()]
    if len(bad):
        raise DatasetConfigError(
            f"{config.where('target_rule')}: column {config.target_rule.column!r} is not numeric: "
            f"{len(bad)} values are not numbers (e.g. {show(bad.iloc[0])})"
        )
    return converted.astype("float64")


def _binary_target(config: DatasetConfig, series: pd.Series) -> pd.Series:
    """The 0/1 label of a non-missing target column."""
    assert config.target is not None
    distinct = list(pd.unique(series.to_numpy(dtype=object)))
    with contextlib.suppress(TypeError):
        distinct = sorted(distinct)
    if len(distinct) != 2:
        shown = ", ".join(show(v) for v in distinct[:3])
        raise DatasetConfigError(
            f"{config.where('target')}: target {config.target!r} is not binary: {len(distinct)} "
            f"distinct value{'s' if len(distinct) != 1 else ''}"
            f"{f' (e.g. {shown})' if shown else ''}"
        )
    if config.positive is None and all(isinstance(v, bool | np.bool_) for v in distinct):
        return series.astype("int64")
    if config.positive is not None:
        matches = [v for v in distinct if _same(v, config.positive)]
        if len(matches) != 1:
            raise DatasetConfigError(
                f"{config.where('positive')}: {config.positive!r} is not one of the values of "
                f"target {config.target!r}: {', '.join(show(v) for v in distinct)}"
            )
        return (series == matches[0]).astype("int64")
    if all(_is_number(v) for v in distinct) and {float(v) for v in distinct} == {0.0, 1.0}:
        return pd.Series(series.to_numpy(dtype="float64"), index=series.index).astype("int64")
    raise DatasetConfigError(
        f"{config.where('target')}: target {config.target!r} has values "
        f"{', '.join(show(v) for v in distinct)}, not 0/1: set 'positive:' to the value that "
        "is the positive class"
    )


def _parse_timestamps(config: DatasetConfig, series: pd.Series) -> pd.Series:
    """Naive datetimes from non-missing values; tz-aware ones are converted to UTC first."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_dtype(dtype):
        return series.astype("datetime64[ns]")
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        raise DatasetConfigError(
            f"{config.where('timestamp')}: column {config.timestamp!r} is {dtype} "
            f"(e.g. {show(series.iloc[0])}); expected dates/times (text or datetime)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(series, errors="coerce")
        if not pd.api.types.is_datetime64_any_dtype(parsed.dtype) or parsed.isna().any():
            # Mixed formats or mixed UTC offsets: element-wise, offsets converted to UTC.
            parsed = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
    bad = series[parsed.isna().to_numpy()]
    if len(bad):
        raise DatasetConfigError(
            f"{config.where('timestamp')}: {len(bad)} of {len(series)} values of column "
            f"{config.timestamp!r} are not dates/times (e.g. {show(bad.iloc[0])})"
        )
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _as_text(series: pd.Series) -> pd.Series:
    """Python strings, ``None`` where missing; integral numbers without a trailing ``.0``."""
    mask = series.notna().to_numpy()
    present = series[mask]
    dtype = series.dtype
    if (
        pd.api.types.is_float_dtype(dtype)
        and len(present)
        and np.all(np.mod(present.to_numpy(dtype="float64"), 1) == 0)
    ):
        present = present.astype("int64")
    values = np.full(len(series), None, dtype=object)
    values[mask] = [str(v) for v in present.tolist()]
    return pd.Series(values, index=series.index, dtype=object)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def _same(value: Any, positive: Any) -> bool:
    if isinstance(value, np.generic):
        value = value.item()
    if type(value) is type(positive) or (_is_number(value) and _is_number(positive)):
        return bool(value == positive)
    return str(value) == str(positive)
