"""Data validation with Great Expectations 1.x: build a suite from a schema, run it, get plain data.

Every expectation carries its *group* in ``meta["group"]`` (one of :data:`GROUPS`); the Dagster
layer turns each group into one asset check. :func:`validate_frame` never raises on bad data: an
expectation that GX could not evaluate (for instance on a missing column) becomes a failed
:class:`ExpectationOutcome` whose ``observed`` text says why.

``great_expectations`` takes seconds to import, so it is imported inside the functions that need it,
never at module import. One ephemeral Data Context is created lazily per process and reused; each
validation registers its own uniquely named pandas data source and removes it afterwards, so no
data frame, asset or metric cache outlives the call.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from retraining_assets.libraries import preload
from retraining_assets.settings import DatasetSchema

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.data_context import AbstractDataContext

#: Expectation groups, in report order; each becomes one Dagster asset check.
GROUPS: tuple[str, ...] = ("schema", "types", "nulls", "ranges", "label", "row_count")
#: Key of an expectation's ``meta`` that holds its group.
GROUP_META_KEY = "group"
#: Key of an expectation's ``meta`` that holds a human description of what is expected (types).
EXPECTED_META_KEY = "expected"

#: dtype names accepted for numeric features (numpy and pandas nullable), plus Python ``int`` and
#: ``float`` for ``object`` columns holding plain numbers.
NUMERIC_TYPES: tuple[str, ...] = (
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "Int8Dtype",
    "Int16Dtype",
    "Int32Dtype",
    "Int64Dtype",
    "UInt8Dtype",
    "UInt16Dtype",
    "UInt32Dtype",
    "UInt64Dtype",
    "Float32Dtype",
    "Float64Dtype",
    "int",
    "float",
)
#: dtype names accepted for the 0/1 target: numeric or boolean.
TARGET_TYPES: tuple[str, ...] = (*NUMERIC_TYPES, "bool", "BooleanDtype")
#: dtype names accepted for the naive timestamp column, plus ``pd.Timestamp`` values in ``object``.
DATETIME_TYPES: tuple[str, ...] = (
    "datetime64[ns]",
    "datetime64[us]",
    "datetime64[ms]",
    "datetime64[s]",
    "Timestamp",
)
#: dtype names accepted for categorical features: strings in ``object``, ``string`` or ``category``.
CATEGORICAL_TYPES: tuple[str, ...] = ("str", "StringDtype", "CategoricalDtype")

#: Largest magnitude accepted in a numeric feature without its own range: ``inf`` and 1e308-style
#: values are data errors (a sentinel, an overflow), never measurements.
MAX_ABS_VALUE = 1e12
#: Share of rows that may repeat another row in every column but the id. Real data has a few
#: (two flights alike in every recorded field: 56 of 327k in the flights demo); a batch
#: duplicated under new ids has half of its rows or more.
MAX_DUPLICATE_ROW_SHARE = 0.01
#: Timestamps may run this far past "now" (clock skew between the source and this machine).
FUTURE_TOLERANCE = pd.Timedelta(days=1)

_DATASOURCE_PREFIX = "retraining_validation"
_ASSET_NAME = "frame"
_BATCH_DEFINITION_NAME = "whole_frame"
_MAX_EXAMPLES = 3
_EXISTS = "expect_column_to_exist"
#: Name of the one outcome computed with pandas rather than GX: duplicated column names.
UNIQUE_COLUMN_NAMES = "unique_column_names"
#: The suite's row-uniqueness expectation; :func:`validate_frame` evaluates it with pandas
#: (:func:`duplicated_rows`), with GX's semantics, at a fraction of GX's memory.
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"

_context_lock = threading.Lock()
_context: AbstractDataContext | None = None


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation, as plain data.

    Attributes:
        name: GX expectation type, e.g. ``expect_column_values_to_not_be_null``.
        group: One of :data:`GROUPS`.
        success: Whether the expectation held.
        column: The column it is about, or None for table-level expectations.
        observed: One human sentence on what was found, e.g. ``column 'delayed' has 17 missing
            values (expected none)``.
        details: JSON-friendly extras: the expectation's arguments, the trimmed GX result and,
            when GX could not evaluate it, the exception message.
    """

    name: str
    group: str
    success: bool
    column: str | None
    observed: str
    details: dict[str, Any]


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of validating one data frame against a schema.

    Attributes:
        success: True when every expectation held.
        outcomes: One outcome per expectation, in suite order.
        n_rows: Number of rows of the validated frame.
        duration_s: Wall time of building and running the suite (excluding the one-time GX import).
    """

    success: bool
    outcomes: tuple[ExpectationOutcome, ...]
    n_rows: int
    duration_s: float

    def by_group(self) -> dict[str, list[ExpectationOutcome]]:
        """Outcomes per group; every group of :data:`GROUPS` is present, possibly empty."""
        groups: dict[str, list[ExpectationOutcome]] = {group: [] for group in GROUPS}
        for outcome in self.outcomes:
            groups.setdefault(outcome.group, []).append(outcome)
        return groups

    def group_success(self, group: str) -> bool:
        """Whether every expectation of ``group`` held (True for a group with no expectations).

        Raises:
            ValueError: If ``group`` is not one of :data:`GROUPS`.
        """
        if group not in GROUPS:
            raise ValueError(f"unknown expectation group {group!r}; expected one of {GROUPS}")
        return all(outcome.success for outcome in self.by_group()[group])

    def failures(self) -> list[ExpectationOutcome]:
        """The outcomes that failed, in suite order."""
        return [outcome for outcome in self.outcomes if not outcome.success]

    def summary(self) -> str:
        """One paragraph for humans: how many expectations failed, and what each one found.

        Checks that could not run because their column is missing are counted but not listed one
        by one, since the ``schema`` failure for that column already says it is missing.
        """
        total = len(self.outcomes)
        failures = self.failures()
        if not failures:
            return f"All {total} expectations passed on {self.n_rows} rows."
        listed = [f for f in failures if not f.details.get("column_missing") or f.name == _EXISTS]
        skipped = len(failures) - len(listed)
        parts = [f"{f.group}: {f.observed.rstrip('.')}" for f in listed]
        text = f"{len(failures)} of {total} expectations failed on {self.n_rows} rows: "
        text += "; ".join(parts)
        if skipped:
            text += (
                f" ({skipped} other check{'s' if skipped > 1 else ''} on missing columns not run)"
            )
        return text + "."


def build_suite(
    schema: DatasetSchema,
    *,
    extra_columns: Sequence[str] = (),
    with_target: bool = True,
    period: tuple[Any, Any] | None = None,
    not_after: Any | None = None,
) -> ExpectationSuite:
    """The GX expectation suite for ``schema``, every expectation tagged with its group in ``meta``.

    Groups: ``schema`` (every schema column and every extra column exists, the id column is
    unique; other columns are tolerated), ``types`` (numeric features numeric, target numeric or
    boolean, timestamp a naive datetime, categoricals strings), ``nulls`` (target, timestamp, id
    and ``schema.required_non_null`` have no missing values), ``ranges``
    (``schema.numeric_ranges``, missing values ignored), ``label`` (target values in {0, 1} and
    both classes present), ``row_count`` (at least ``schema.min_rows`` rows).

    Args:
        schema: The dataset schema.
        extra_columns: Columns expected in addition to the schema's (e.g. ``SPLIT_COLUMN``): they
            must exist; nothing else is checked about them.
        with_target: ``False`` for a batch whose labels have not arrived yet (delayed labels):
            the target column is then neither required nor checked.
        period: ``(start, end)``: every timestamp must lie in ``[start, end)`` (a batch's own
            period, see ``batches.batch_period``).
        not_after: No timestamp may be later than this (ingestion passes "now" plus
            :data:`FUTURE_TOLERANCE`).

    Returns:
        A ``great_expectations.ExpectationSuite`` not attached to any Data Context.
    """
    _prepare_gx_environment()
    preload("great_expectations")
    import great_expectations as gx

    items = _suite_items(schema, _Rules(extra_columns, with_target, period, not_after))
    return gx.ExpectationSuite(name=f"{schema.target}_batch", expectations=items)


@dataclass(frozen=True)
class _Rules:
    """The per-batch arguments of :func:`build_suite` (see there)."""

    extra_columns: Sequence[str] = ()
    with_target: bool = True
    period: tuple[Any, Any] | None = None
    not_after: Any | None = None


def _meta(group: str, **extra: str) -> dict[str, str]:
    """An expectation's ``meta``: its group, and e.g. the expected value in words."""
    return {GROUP_META_KEY: group, **extra}


def _suite_items(schema: DatasetSchema, rules: _Rules) -> list[Any]:
    """The expectations of :func:`build_suite`, in order, not yet in a suite."""
    preload("great_expectations")
    import great_expectations as gx

    gxe = gx.expectations
    # Collected in a list for the constructor: adding them one by one is quadratic in GX (each
    # new expectation is compared with every one already in the suite), ~0.3 s for this suite.
    columns = [c for c in schema.columns if rules.with_target or c != schema.target]
    return [
        *_schema_items(gxe, schema, [*columns, *rules.extra_columns]),
        *_type_items(gxe, schema, rules.with_target),
        *_null_items(gxe, schema, rules.with_target),
        *_range_items(gxe, schema),
        *_period_items(gxe, schema, rules),
        *(_label_items(gxe, schema) if rules.with_target else []),
        *_row_items(gxe, schema, columns),
    ]


def _schema_items(gxe: Any, schema: DatasetSchema, columns: Sequence[str]) -> list[Any]:
    """Every column exists; the id column is unique."""
    items = [gxe.ExpectColumnToExist(column=c, meta=_meta("schema")) for c in _unique(columns)]
    if schema.id_column:
        items.append(
            gxe.ExpectColumnValuesToBeUnique(column=schema.id_column, meta=_meta("schema"))
        )
    return items


def _type_items(gxe: Any, schema: DatasetSchema, with_target: bool) -> list[Any]:
    """Each typed column has one of its types (``meta`` names them in words)."""
    typed: list[tuple[str, tuple[str, ...], str]] = [
        (schema.timestamp, DATETIME_TYPES, "naive datetime"),
        *((c, NUMERIC_TYPES, "numeric") for c in schema.numeric_features),
        *((c, CATEGORICAL_TYPES, "string") for c in schema.categorical_features),
        *([(schema.target, TARGET_TYPES, "numeric or boolean")] if with_target else []),
    ]
    return [
        gxe.ExpectColumnValuesToBeInTypeList(
            column=column,
            type_list=list(type_list),
            meta=_meta("types", **{EXPECTED_META_KEY: expected}),
        )
        for column, type_list, expected in typed
    ]


def _null_items(gxe: Any, schema: DatasetSchema, with_target: bool) -> list[Any]:
    """Target, timestamp, id and the required columns have no missing values."""
    not_null = [
        schema.target if with_target else None,
        schema.timestamp,
        schema.id_column,
        *schema.required_non_null,
    ]
    return [
        gxe.ExpectColumnValuesToNotBeNull(column=column, meta=_meta("nulls"))
        for column in _unique(c for c in not_null if c)
    ]


def _range_items(gxe: Any, schema: DatasetSchema) -> list[Any]:
    """The schema's numeric ranges; every other numeric feature finite."""
    items = [
        gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=low, max_value=high, meta=_meta("ranges")
        )
        for column, (low, high) in schema.numeric_ranges.items()
    ]
    # A range rule excludes inf already; every other numeric feature still must be finite.
    finite = f"finite (|x| <= {MAX_ABS_VALUE:g})"
    items.extend(
        gxe.ExpectColumnValuesToBeBetween(
            column=column,
            min_value=-MAX_ABS_VALUE,
            max_value=MAX_ABS_VALUE,
            meta=_meta("ranges", **{EXPECTED_META_KEY: finite}),
        )
        for column in schema.numeric_features
        if column not in schema.numeric_ranges
    )
    return items


def _period_items(gxe: Any, schema: DatasetSchema, rules: _Rules) -> list[Any]:
    """Timestamps within the batch's period and not in the future (when given)."""
    items = []
    if rules.period is not None:
        start, end = (pd.Timestamp(t).to_pydatetime() for t in rules.period)
        within = f"within the batch period [{_day(start)}, {_day(end)})"
        items.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=schema.timestamp,
                min_value=start,
                max_value=end,
                strict_max=True,
                meta=_meta("ranges", **{EXPECTED_META_KEY: within}),
            )
        )
    if rules.not_after is not None:
        items.append(
            gxe.ExpectColumnMaxToBeBetween(
                column=schema.timestamp,
                max_value=pd.Timestamp(rules.not_after).to_pydatetime(),
                meta=_meta("ranges", **{EXPECTED_META_KEY: "not in the future"}),
            )
        )
    return items


def _label_items(gxe: Any, schema: DatasetSchema) -> list[Any]:
    """Target values in {0, 1}, and both present."""
    return [
        gxe.ExpectColumnValuesToBeInSet(
            column=schema.target, value_set=[0, 1], meta=_meta("label")
        ),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column=schema.target, value_set=[0, 1], meta=_meta("label")
        ),
    ]


def _row_items(gxe: Any, schema: DatasetSchema, columns: Sequence[str]) -> list[Any]:
    """Enough rows; few rows repeating another in every data column (id excluded)."""
    items = [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=schema.min_rows, max_value=None, meta=_meta("row_count")
        )
    ]
    data_columns = [c for c in columns if c != schema.id_column]
    if len(data_columns) >= 2:
        items.append(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=data_columns,
                mostly=1.0 - MAX_DUPLICATE_ROW_SHARE,
                meta=_meta("row_count"),
            )
        )
    return items


def validate_frame(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    *,
    extra_columns: Sequence[str] = (),
    with_target: bool = True,
    period: tuple[Any, Any] | None = None,
    not_after: Any | None = None,
) -> ValidationResult:
    """Validate ``frame`` against ``schema`` with the suite of :func:`build_suite`.

    Never raises on bad data: expectations GX could not evaluate become failed outcomes with the
    reason in ``observed``; if GX fails as a whole, every expectation fails with that error.
    Duplicated column names add one failed ``schema`` outcome named ``unique_column_names``
    (checked with pandas, GX has no such expectation). The input frame is not modified.

    Args:
        frame: The data to validate.
        schema: The dataset schema.
        extra_columns: Columns expected in addition to the schema's (see :func:`build_suite`).
        with_target: ``False`` to validate an unlabelled batch (see :func:`build_suite`).
        period: The batch's own period ``(start, end)`` (see :func:`build_suite`).
        not_after: Latest acceptable timestamp (see :func:`build_suite`).

    Returns:
        A plain :class:`ValidationResult`.
    """
    context = _get_context()
    started = time.perf_counter()
    rules = _Rules(extra_columns, with_target, period, not_after)
    preload("great_expectations")
    import great_expectations as gx

    items = _suite_items(schema, rules)
    configs = [e.configuration for e in items]
    # Row uniqueness is counted here, not by GX: GX's pandas metric runs
    # ``frame[column_list].duplicated()``, a copy of every data column plus one int64 code array
    # per column, about 1.9x the frame at its peak (5M flights rows: +2.9 GB). Same rule, same
    # outcome, a few int64 arrays (see :func:`duplicated_rows`).
    suite = gx.ExpectationSuite(
        name=f"{schema.target}_batch",
        expectations=[e for e in items if e.configuration.type != COMPOUND_UNIQUE],
    )
    outcomes = _duplicated_names(frame)
    try:
        results = _run_with_details(context, _gx_view(frame, schema), suite, schema, rules)
    except Exception as exc:  # GX failed as a whole: report it on every expectation.
        outcomes.extend(_all_failed(configs, f"{type(exc).__name__}: {exc}"))
    else:
        outcomes.extend(_converted(results, configs, frame))
    return ValidationResult(
        success=bool(outcomes) and all(o.success for o in outcomes),
        outcomes=tuple(outcomes),
        n_rows=len(frame),
        duration_s=time.perf_counter() - started,
    )


def _duplicated_names(frame: pd.DataFrame) -> list[ExpectationOutcome]:
    """The failed ``unique_column_names`` outcome if column names repeat (else none)."""
    duplicated = _unique(str(c) for c in frame.columns[frame.columns.duplicated()])
    if not duplicated:
        return []
    names = ", ".join(f"'{c}'" for c in duplicated)
    verb = "is" if len(duplicated) == 1 else "are"
    return [
        ExpectationOutcome(
            name=UNIQUE_COLUMN_NAMES,
            group="schema",
            success=False,
            column=None,
            observed=f"column name{_s(len(duplicated))} {names} {verb} duplicated",
            details={"duplicated": duplicated},
        )
    ]


def _run_with_details(
    context: AbstractDataContext,
    view: pd.DataFrame,
    suite: ExpectationSuite,
    schema: DatasetSchema,
    rules: _Rules,
) -> list[ExpectationValidationResult]:
    """The suite's results, with GX's examples for the failed expectations only."""
    # Pass/fail first: with GX's default result format every column expectation also collects
    # example values and indices, which costs more than the checks themselves (52 weeks of
    # flights: 0.63 s instead of 1.0-1.4 s). Only when something fails is the suite run again
    # for the examples the failure messages quote; a failing batch is rare and small.
    results = _run_suite(context, view, suite, result_format="BOOLEAN_ONLY")
    failed = {_result_key(r) for r in results if not r.success}
    if not failed:
        return results
    # The failed expectations only, from a fresh suite (an expectation belongs to one).
    fresh = build_suite(
        schema,
        extra_columns=rules.extra_columns,
        with_target=rules.with_target,
        period=rules.period,
        not_after=rules.not_after,
    )
    detail = type(fresh)(
        name=fresh.name,
        expectations=[
            e
            for e in fresh.expectations
            if _expectation_key(e.expectation_type, e.configuration.kwargs) in failed
        ],
    )
    detailed = {_result_key(r): r for r in _run_suite(context, view, detail, result_format="BASIC")}
    return [detailed.get(_result_key(r), r) for r in results]


def _all_failed(configs: Sequence[Any], error: str) -> list[ExpectationOutcome]:
    """Every expectation failed with the error that stopped GX as a whole."""
    message = f"validation could not run: {error}"
    return [
        ExpectationOutcome(
            name=config.type,
            group=str((config.meta or {}).get(GROUP_META_KEY, "schema")),
            success=False,
            column=config.kwargs.get("column"),
            observed=message,
            details={"kwargs": _plain(_kwargs_of(config.kwargs)), "exception": message},
        )
        for config in configs
    ]


def _converted(
    results: Sequence[ExpectationValidationResult], configs: Sequence[Any], frame: pd.DataFrame
) -> list[ExpectationOutcome]:
    """GX's results and the pandas-counted row uniqueness as outcomes, in the suite's order."""
    order = {_expectation_key(c.type, c.kwargs): i for i, c in enumerate(configs)}
    present = set(frame.columns)
    converted = [_outcome(result, frame, present) for result in results]
    converted.extend(
        _compound_outcome(config, frame, present)
        for config in configs
        if config.type == COMPOUND_UNIQUE
    )
    converted.sort(key=lambda o: order.get(_expectation_key(o.name, o.details["kwargs"]), 0))
    return converted


# --- row uniqueness without copying the columns ---------------------------------------------


def duplicated_rows(frame: pd.DataFrame, columns: Sequence[Any]) -> np.ndarray:
    """``frame[columns].duplicated(keep=False)`` as a bool array, without copying the columns.

    pandas' own ``duplicated`` first copies the selected columns into a new frame and then holds
    one int64 code array per column at once. Here each column is factorized in turn (the same
    equality pandas uses: missing values equal each other) and folded into one running int64 row
    key, re-numbered densely whenever the next product could overflow, so at most three
    row-length int64 arrays live at a time.

    Args:
        frame: The rows.
        columns: Column names, each present once in ``frame``.

    Returns:
        True for every row equal to another row in all ``columns``.

    Raises:
        TypeError: if a column holds unhashable values (lists, dicts).
    """
    n = len(frame)
    if n == 0 or not columns:
        return np.zeros(n, dtype=bool)
    key = np.zeros(n, dtype=np.int64)
    size = 1
    for name in columns:
        codes, uniques = pd.factorize(frame[name], use_na_sentinel=False)
        width = max(len(uniques), 1)
        if size * width >= 2**62:
            key, dense = pd.factorize(key)
            size = len(dense)
        key = key * width + codes.astype(np.int64, copy=False)
        size *= width
        del codes, uniques
    return pd.Series(key, copy=False).duplicated(keep=False).to_numpy()


def _compound_outcome(config: Any, frame: pd.DataFrame, present: set[Any]) -> ExpectationOutcome:
    """GX's ``expect_compound_columns_to_be_unique`` outcome, counted with :func:`duplicated_rows`.

    Same rule as GX's (rows whose listed values are all missing are ignored, ``mostly`` is the
    share of the other rows that must be unique, no rows is a pass) and the same sentences.
    """
    name = config.type
    meta = config.meta or {}
    group = str(meta.get(GROUP_META_KEY, "schema"))
    kwargs = _kwargs_of(config.kwargs)
    columns = list(kwargs.get("column_list") or [])
    absent = [c for c in columns if c not in present]
    if absent:
        observed = f"columns {', '.join(map(repr, absent))} missing, check not run"
        missing = {"kwargs": _plain(kwargs), "column_missing": True}
        return ExpectationOutcome(name, group, False, absent[0], observed, missing)
    details: dict[str, Any] = {"kwargs": _plain(kwargs)}
    try:
        all_missing = np.ones(len(frame), dtype=bool)
        for column in columns:
            all_missing &= frame[column].isna().to_numpy(dtype=bool)
        considered = int((~all_missing).sum())
        if all_missing.any():
            # Rows GX ignores take no part in the comparison (rare: a copy of those rows only).
            kept = frame.loc[~all_missing, columns]
            unexpected = int(duplicated_rows(kept, columns).sum())
        else:
            unexpected = int(duplicated_rows(frame, columns).sum())
    except (TypeError, ValueError) as exc:
        message = f"{type(exc).__name__}: {exc}"
        details["exception"] = message
        return ExpectationOutcome(
            name, group, False, None, f"table could not be checked: {message}", details
        )
    mostly = float(kwargs.get("mostly", 1.0))
    success = considered == 0 or (considered - unexpected) / considered >= mostly
    result = {
        "element_count": len(frame),
        "unexpected_count": unexpected,
        "unexpected_percent": 100.0 * unexpected / considered if considered else 0.0,
    }
    details["result"] = _plain(result)
    observed = _describe(name, success, None, kwargs, result, meta, frame)
    return ExpectationOutcome(name, group, success, None, observed, details)


# --- GX plumbing ----------------------------------------------------------------------------------


def _prepare_gx_environment() -> None:
    """Keep GX off the network before it is imported.

    GX 1.x up to about 1.5 read ``GX_ANALYTICS_ENABLED`` when its analytics module is imported;
    later releases (1.24 included) have no analytics client at all. The variable is only set when
    the user has not chosen otherwise.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _get_context() -> AbstractDataContext:
    """The process-wide ephemeral Data Context (in-memory stores, no docs, no progress bars)."""
    global _context
    with _context_lock:
        if _context is None:
            _prepare_gx_environment()
            preload("great_expectations")
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                analytics_enabled=False,
                progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            )
            _context = gx.get_context(project_config=config, mode="ephemeral")
        return _context


def _gx_view(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """The frame GX validates: a shallow copy, with categorical features as ``object`` values.

    GX compares ``category`` and ``string[pyarrow]`` dtypes against its type list by equality
    with a default-constructed dtype, which never matches a real one; as ``object`` the values
    themselves are checked to be strings. The caller's frame is never modified.
    """
    view = frame.copy(deep=False)
    counts = view.columns.value_counts()
    for column in schema.categorical_features:
        if counts.get(column, 0) == 1 and isinstance(
            view[column].dtype, pd.CategoricalDtype | pd.StringDtype
        ):
            view[column] = view[column].astype(object)
    return view


def _run_suite(
    context: AbstractDataContext,
    frame: pd.DataFrame,
    suite: ExpectationSuite,
    *,
    result_format: Literal["BOOLEAN_ONLY", "BASIC"] = "BASIC",
) -> list[ExpectationValidationResult]:
    """Run ``suite`` on ``frame`` through a throw-away pandas data source of ``context``.

    Always runs on a copy made by :func:`_gx_view`, never on the caller's frame.
    ``result_format`` is GX's: ``BOOLEAN_ONLY`` (success and exceptions only) or ``BASIC``
    (also counts and up to 20 example values per expectation).

    A fresh data source means a fresh execution engine, so no metric computed on an earlier frame
    can be reused and no frame stays referenced; it is deleted again before returning.
    """
    name = f"{_DATASOURCE_PREFIX}_{uuid.uuid4().hex}"
    with _context_lock:
        data_source = context.data_sources.add_pandas(name)
    try:
        asset = data_source.add_dataframe_asset(_ASSET_NAME)
        batch_definition = asset.add_batch_definition_whole_dataframe(_BATCH_DEFINITION_NAME)
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        return list(batch.validate(suite, result_format=result_format).results)
    finally:
        with _context_lock:
            context.data_sources.delete(name)


# --- results to plain data ------------------------------------------------------------------------


def _outcome(
    result: ExpectationValidationResult, frame: pd.DataFrame, present: set[Any]
) -> ExpectationOutcome:
    """One GX expectation result as an :class:`ExpectationOutcome` with a human ``observed``."""
    config = result.expectation_config
    if config is None:  # typed as optional by GX; batch.validate always sets it
        observed = "GX returned a result without its expectation"
        return ExpectationOutcome("unknown", "schema", False, None, observed, {})
    name = config.type
    meta = config.meta or {}
    group = str(meta.get(GROUP_META_KEY, "schema"))
    kwargs = _kwargs_of(config.kwargs)
    column = kwargs.get("column")
    gx_result = dict(result.result or {})
    error = _exception_message(result.exception_info)
    column_missing = column is not None and column not in present
    absent = [c for c in kwargs.get("column_list") or [] if c not in present]
    if absent:
        observed = f"columns {', '.join(map(repr, absent))} missing, check not run"
        # Named after a missing column: the schema failure on that column says it all.
        missing = {"kwargs": _plain(kwargs), "column_missing": True}
        return ExpectationOutcome(name, group, False, absent[0], observed, missing)

    details: dict[str, Any] = {"kwargs": _plain(kwargs), "result": _plain(_trim(gx_result))}
    if error:
        details["exception"] = error

    if column_missing:
        details["column_missing"] = True
        if name == _EXISTS:
            observed = f"column '{column}' is missing"
        else:
            observed = f"column '{column}' is missing, check not run"
        return ExpectationOutcome(name, group, False, column, observed, details)
    if error:
        where = f"column '{column}'" if column is not None else "table"
        observed = f"{where} could not be checked: {error}"
        return ExpectationOutcome(name, group, False, column, observed, details)

    success = bool(result.success)
    observed = _describe(name, success, column, kwargs, gx_result, meta, frame)
    return ExpectationOutcome(name, group, success, column, observed, details)


@dataclass(frozen=True)
class _Found:
    """What one expectation found: the inputs of its sentence in :func:`_describe`."""

    name: str
    success: bool
    column: str | None
    kwargs: Mapping[str, Any]
    result: Mapping[str, Any]
    meta: Mapping[str, Any]
    frame: pd.DataFrame

    @property
    def col(self) -> str:
        return f"column '{self.column}'"

    @property
    def unexpected(self) -> int:
        return int(self.result.get("unexpected_count") or 0)

    @property
    def values(self) -> str:
        return f"{self.unexpected} value{_s(self.unexpected)}"

    @property
    def examples(self) -> str:
        return _examples(self.result.get("partial_unexpected_list") or [])


def _describe(
    name: str,
    success: bool,
    column: str | None,
    kwargs: Mapping[str, Any],
    result: Mapping[str, Any],
    meta: Mapping[str, Any],
    frame: pd.DataFrame,
) -> str:
    """A sentence on what an expectation found (both for passes and failures)."""
    found = _Found(name, success, column, kwargs, result, meta, frame)
    return _SENTENCES.get(name, _other_text)(found)


def _exists_text(f: _Found) -> str:
    return f"{f.col} is present"


def _not_null_text(f: _Found) -> str:
    return f"{f.col} has {f.unexpected} missing value{_s(f.unexpected)} (expected none)"


def _unique_text(f: _Found) -> str:
    if f.success:
        return f"{f.col} has unique values"
    return f"{f.col} has {f.unexpected} rows sharing a value with another row (e.g. {f.examples})"


def _type_list_text(f: _Found) -> str:
    expected = f.meta.get(EXPECTED_META_KEY, "one of " + ", ".join(f.kwargs.get("type_list", [])))
    dtype = _dtype_text(f.frame, f.column, f.result)
    if f.success:
        return f"{f.col} has dtype {dtype}"
    if "unexpected_count" in f.result:  # object column: GX checked value by value
        wrong = f"{f.values} of the wrong type, expected {expected}"
        return f"{f.col} (dtype {dtype}) has {wrong} (e.g. {f.examples})"
    return f"{f.col} has dtype {dtype} (expected {expected})"


def _between_text(f: _Found) -> str:
    if EXPECTED_META_KEY in f.meta:
        if f.success:
            return f"{f.col} values are {f.meta[EXPECTED_META_KEY]}"
        return f"{f.col} has {f.values} not {f.meta[EXPECTED_META_KEY]} (e.g. {f.examples})"
    bounds = f"[{_num(f.kwargs.get('min_value'))}, {_num(f.kwargs.get('max_value'))}]"
    if f.success:
        return f"{f.col} values are within {bounds}"
    return f"{f.col} has {f.values} outside {bounds} (e.g. {f.examples})"


def _max_text(f: _Found) -> str:
    latest = _num(f.result.get("observed_value"))
    bound = _num(f.kwargs.get("max_value"))
    expected = f.meta.get(EXPECTED_META_KEY, "")
    if not f.success and latest in ("None", "NaT", "'NaT'"):
        return f"{f.col} has no value to compare with {bound} ({expected})"
    if f.success:
        return f"{f.col} is {f.meta.get(EXPECTED_META_KEY, f'at most {bound}')}"
    return f"{f.col} reaches {latest}, later than {bound} ({expected})"


def _compound_text(f: _Found) -> str:
    share = f"{MAX_DUPLICATE_ROW_SHARE:.0%}"
    if f.success:
        return f"table has at most {share} of rows repeating another row"
    return (
        f"table has {f.unexpected} row{_s(f.unexpected)} repeating another row in every column "
        "but the id "
        f"(at most {share} of rows may)"
    )


def _in_set_text(f: _Found) -> str:
    allowed = _set_text(f.kwargs.get("value_set", []))
    if f.success:
        return f"{f.col} values are all in {allowed}"
    return f"{f.col} has {f.values} not in {allowed} (e.g. {f.examples})"


def _contains_set_text(f: _Found) -> str:
    wanted = _set_text(f.kwargs.get("value_set", []))
    absent = [_num(v) for v in f.result.get("partial_missing_list") or []]
    if f.success:
        return f"{f.col} takes every value of {wanted}"
    never = f"value{_s(len(absent))} {', '.join(absent)}"
    return f"{f.col} never takes the {never} (expected all of {wanted})"


def _row_count_text(f: _Found) -> str:
    low, high = f.kwargs.get("min_value"), f.kwargs.get("max_value")
    expected = f"at least {low}" if high is None else f"between {low} and {high}"
    rows = f.result.get("observed_value", len(f.frame))  # absent from a pass/fail-only result
    return f"table has {rows} rows (expected {expected})"


def _other_text(f: _Found) -> str:
    """Fallback for expectations without a dedicated sentence."""
    observed_value = f.result.get("observed_value", f"{f.unexpected} unexpected values")
    where = f.col if f.column is not None else "table"
    return f"{where}: {f.name} {'passed' if f.success else 'failed'} (observed {observed_value})"


_SENTENCES: dict[str, Callable[[_Found], str]] = {
    _EXISTS: _exists_text,
    "expect_column_values_to_not_be_null": _not_null_text,
    "expect_column_values_to_be_unique": _unique_text,
    "expect_column_values_to_be_in_type_list": _type_list_text,
    "expect_column_values_to_be_between": _between_text,
    "expect_column_max_to_be_between": _max_text,
    COMPOUND_UNIQUE: _compound_text,
    "expect_column_values_to_be_in_set": _in_set_text,
    "expect_column_distinct_values_to_contain_set": _contains_set_text,
    "expect_table_row_count_to_be_between": _row_count_text,
}
"""The sentence for each expectation type :func:`build_suite` uses."""


def _dtype_text(frame: pd.DataFrame, column: str | None, result: Mapping[str, Any]) -> str:
    """The dtype of ``column`` in ``frame`` (all of them if the name is duplicated)."""
    dtypes = frame.dtypes[frame.columns == column]
    if len(dtypes) == 0:
        return str(result.get("observed_value"))
    return ", ".join(str(d) for d in dtypes)


def _set_text(values: Sequence[Any]) -> str:
    """A value set for a message, e.g. ``{0, 1}``."""
    return "{" + ", ".join(_num(v) for v in values) + "}"


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """The message of a raised exception from GX ``exception_info``, or None.

    GX 1.x reports either one flat ``{raised_exception, exception_message, ...}`` dict or a dict of
    such dicts keyed by the metric that failed.
    """
    if not info:
        return None
    entries = [info] if "raised_exception" in info or "exception_message" in info else []
    if not entries:
        entries = [v for v in info.values() if isinstance(v, Mapping)]
    messages: list[str] = []
    for entry in entries:
        message = entry.get("exception_message")
        raised = entry.get("raised_exception", bool(message))
        if raised:
            text = str(message or "unknown error").strip()
            if text not in messages:
                messages.append(text)
    return "; ".join(messages) or None


def _expectation_key(name: str, kwargs: Mapping[str, Any]) -> tuple[str, str | None]:
    """What identifies an expectation of the suite: its type and column."""
    column = kwargs.get("column")
    return name, None if column is None else str(column)


def _result_key(result: ExpectationValidationResult) -> tuple[str, str | None]:
    """:func:`_expectation_key` of the expectation behind a GX result."""
    config = result.expectation_config
    if config is None:
        return "unknown", None
    return _expectation_key(config.type, config.kwargs)


def _kwargs_of(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The expectation's own arguments (GX adds ``batch_id`` to the configuration)."""
    return {k: v for k, v in dict(kwargs).items() if k != "batch_id"}


_RESULT_KEYS = (
    "observed_value",
    "element_count",
    "missing_count",
    "unexpected_count",
    "unexpected_percent",
    "partial_unexpected_list",
    "partial_missing_list",
    "details",
)


def _trim(result: Mapping[str, Any]) -> dict[str, Any]:
    """The useful part of a GX result dict (drops index lists and duplicated percentages)."""
    trimmed = {k: result[k] for k in _RESULT_KEYS if k in result}
    if "partial_unexpected_list" in trimmed:
        trimmed["partial_unexpected_list"] = list(trimmed["partial_unexpected_list"])[
            :_MAX_EXAMPLES
        ]
    return trimmed


def _plain(value: Any) -> Any:
    """``value`` made JSON friendly: numpy scalars to Python, NaN to None, unknowns to str."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _examples(values: Sequence[Any]) -> str:
    """Up to a few distinct unexpected values, for a message."""
    return ", ".join(_unique(_num(v) for v in values)[:_MAX_EXAMPLES])


def _num(value: Any) -> str:
    """A value for a message: integral floats without ``.0``, strings quoted."""
    value = _plain(value)
    if isinstance(value, float) and (not math.isfinite(value) or abs(value) >= 1e15):
        return f"{value:g}"  # 1e308 rather than its 309 digits
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _day(value: Any) -> str:
    """A period bound for a message: the date, or the date and time if not midnight."""
    stamp = pd.Timestamp(value)
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


def _s(count: int) -> str:
    """Plural suffix."""
    return "" if count == 1 else "s"


def _unique(values: Iterable[str]) -> list[str]:
    """``values`` without duplicates, first occurrence kept."""
    return list(dict.fromkeys(values))


# --- one incoming batch ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchCheck:
    """The verdict on one incoming batch file: read, parsed and validated, or why not.

    Attributes:
        batch_id: The batch id.
        key: Its file name in the batch folder.
        md5: MD5 of the bytes that were checked (None if they could not be read).
        frame: The parsed rows (None if unreadable).
        result: The validation result (None if the file could not be parsed).
        error: Why the file could not be read or parsed (None if it could).
        period: The batch's own period ``(start, end)`` its timestamps were held to.
        labelled: Whether the file carries the target column.
    """

    batch_id: str
    key: str
    md5: str | None
    frame: pd.DataFrame | None
    result: ValidationResult | None
    error: str | None
    period: tuple[pd.Timestamp, pd.Timestamp] | None
    labelled: bool = False

    @property
    def ok(self) -> bool:
        """Whether the batch may be used."""
        return self.error is None and self.result is not None and self.result.success

    def message(self) -> str:
        """One paragraph: why the batch is refused, or that it passed."""
        if self.error is not None:
            return self.error
        assert self.result is not None
        return self.result.summary()

    def reason(self) -> dict[str, Any]:
        """The JSON-friendly reason record kept beside a quarantined file."""
        record: dict[str, Any] = {
            "batch_id": self.batch_id,
            "md5": self.md5,
            "reason": self.message(),
            "period": [str(t) for t in self.period] if self.period else None,
        }
        if self.error is not None:
            record["error"] = self.error
        if self.result is not None:
            record["failed_expectations"] = [
                {
                    "expectation": o.name,
                    "group": o.group,
                    "column": o.column,
                    "observed": o.observed,
                }
                for o in self.result.failures()
            ]
        return record


def check_batch(
    source: Any,
    batch_id: str,
    schema: DatasetSchema,
    *,
    frequency: str = "weekly",
    now: Any | None = None,
    cache: str | Path | None = None,
    code_version: str = "",
) -> BatchCheck:
    """Read, parse and validate one batch file; never raises on bad bytes.

    The file is read once: its md5, its rows and its verdict all come from the same bytes. Its
    timestamps are held to the batch's own period (``batches.batch_period``) and must not lie in
    the future (``now`` plus :data:`FUTURE_TOLERANCE`).

    With a ``cache`` folder (``core/validation_cache.py``), a suite result that passed for the
    same bytes, file name, period, labelling, schema and ``code_version`` is reused instead of
    running the suite again (a replay's policies ingest byte-identical copies of each batch).
    Only passing results are kept, and the pandas rules still run on every call with today's
    ``now``, so a cached result never lets a bad batch in.

    Args:
        source: The batch folder or object store (see ``batches.batch_store``).
        batch_id: The batch id (partition key).
        schema: The dataset schema.
        frequency: The batches' frequency (daily, weekly, monthly).
        now: The current time (default: the wall clock, UTC, naive).
        cache: Folder of passing suite results (``None``: always run the suite).
        code_version: The validating code's version, part of the cache key.

    Returns:
        The verdict; ``ok`` is True only for a readable file that passed every expectation.

    Raises:
        InvalidBatchId: if ``batch_id`` is not one safe name (nothing is read).
        BatchNotFound: if there is no file for it.
    """
    from retraining_assets.core import batches as batch_io

    store = batch_io.batch_store(source)
    key = batch_io.batch_key(store, batch_id)
    try:
        raw = batch_io.read_raw(store, batch_id)
    except batch_io.BatchNotFound:
        raise
    except batch_io.BatchError as exc:
        return BatchCheck(batch_id, key, None, None, None, str(exc), None)
    try:
        frame = batch_io.parse_batch(raw.data, raw.key, schema)
    except batch_io.BatchError as exc:
        return BatchCheck(batch_id, key, raw.md5, None, None, str(exc), None)
    period = _own_period(frame, schema, batch_id, frequency)
    labelled = schema.target in frame.columns
    current = pd.Timestamp.now(tz="UTC").tz_localize(None) if now is None else pd.Timestamp(now)
    rules: dict[str, Any] = {
        "with_target": labelled,
        "period": period,
        "not_after": current + FUTURE_TOLERANCE,
    }
    result = _validated_batch(frame, schema, rules, raw.md5, raw.key, cache, code_version)
    # Both must pass: the pandas rules are the same as the suite's, so this only speaks up if GX
    # ever reads a frame differently.
    error = _pandas_problems(frame, schema, rules) if result.success else None
    return BatchCheck(batch_id, key, raw.md5, frame, result, error, period, labelled)


def _validated_batch(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    rules: Mapping[str, Any],
    md5: str,
    key: str,
    cache: str | Path | None,
    code_version: str,
) -> ValidationResult:
    """The suite's result on a batch, from ``cache`` when these bytes already passed it."""
    from retraining_assets.core.validation_cache import validate_cached, validation_key

    period = rules["period"]
    options = {
        "suite": "batch",
        "file": key,
        "with_target": rules["with_target"],
        "period": [str(t) for t in period] if period is not None else None,
        # ``not_after`` (the clock) is left out: a batch that passed stays within any later
        # clock's bound, and the pandas rules check it again with today's clock on every call.
    }
    return validate_cached(
        cache,
        validation_key(dataset_md5=md5, schema=schema, options=options, code_version=code_version),
        lambda: validate_frame(frame, schema, **rules),
    )


def _own_period(
    frame: pd.DataFrame, schema: DatasetSchema, batch_id: str, frequency: str
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The batch's own period (``batches.batch_period``), None if it cannot be told."""
    from retraining_assets.core import batches as batch_io

    stamps = frame[schema.timestamp] if list(frame.columns).count(schema.timestamp) == 1 else None
    try:
        return batch_io.batch_period(batch_id, stamps, frequency)
    except (batch_io.BatchError, ValueError, TypeError, OverflowError):
        return None


def _pandas_problems(
    frame: pd.DataFrame, schema: DatasetSchema, rules: Mapping[str, Any]
) -> str | None:
    """:func:`quick_problems` joined into one error (None if there are none)."""
    try:
        problems = quick_problems(frame, schema, **rules)
    except Exception as exc:  # a bug here must refuse the batch, clearly, not crash
        problems = [f"the pandas rules could not run: {type(exc).__name__}: {exc}"]
    return "; ".join(problems) if problems else None


# --- the same rules without GX --------------------------------------------------------------------


def _type_name(series: pd.Series) -> str:
    dtype = series.dtype
    return str(dtype) if isinstance(dtype, np.dtype) else type(dtype).__name__


def _typed(series: pd.Series, allowed: Sequence[str]) -> bool:
    """Whether ``series`` has one of the ``allowed`` types, as GX's type-list check reads it."""
    if series.dtype == object:
        values = series[series.notna().to_numpy(dtype=bool)]
        return all(type(v).__name__ in allowed for v in values.tolist())
    if isinstance(series.dtype, pd.CategoricalDtype | pd.StringDtype):
        values = series.astype(object)
        return _typed(values, allowed)
    return _type_name(series) in allowed


def quick_problems(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    *,
    with_target: bool = True,
    period: tuple[Any, Any] | None = None,
    not_after: Any | None = None,
) -> list[str]:
    """The rules of :func:`build_suite`, checked with pandas alone; one sentence per problem.

    Milliseconds instead of GX's fraction of a second: ingestion accepts a batch only if both
    this and the GX suite pass (defence in depth), and the property test runs it on thousands of
    generated batches. Never raises on bad data.
    """
    names = [str(c) for c in frame.columns]
    columns = [c for c in schema.columns if with_target or c != schema.target]
    missing = [c for c in columns if c not in names]
    single = {c for c in columns if names.count(c) == 1}
    problems = _shape_problems(frame, schema, names, missing)
    type_problems, well_typed = _type_problems(frame, schema, single, with_target)
    problems += type_problems
    problems += _null_problems(frame, schema, single, with_target)
    problems += _range_problems(frame, schema, well_typed)
    if schema.timestamp in well_typed:
        problems += _time_problems(frame[schema.timestamp], schema.timestamp, period, not_after)
    if with_target and schema.target in well_typed:
        problems += _label_problems(frame[schema.target], schema.target)
    data_columns = [c for c in columns if c != schema.id_column and c in single]
    if len(data_columns) >= 2 and not missing and len(frame):
        problems += _repeat_problems(frame, data_columns)
    return problems


def _shape_problems(
    frame: pd.DataFrame, schema: DatasetSchema, names: Sequence[str], missing: Sequence[str]
) -> list[str]:
    """Duplicated column names, missing columns, too few rows."""
    problems: list[str] = []
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        problems.append(f"column names {duplicated} are duplicated")
    if missing:
        problems.append(f"columns {list(missing)} are missing")
    if len(frame) < schema.min_rows:
        problems.append(f"table has {len(frame)} rows (expected at least {schema.min_rows})")
    return problems


def _type_problems(
    frame: pd.DataFrame, schema: DatasetSchema, single: set[str], with_target: bool
) -> tuple[list[str], set[str]]:
    """Columns (present once) of the wrong type, and the set of well-typed ones."""
    typed: list[tuple[str, tuple[str, ...]]] = [
        (schema.timestamp, DATETIME_TYPES),
        *((c, NUMERIC_TYPES) for c in schema.numeric_features),
        *((c, CATEGORICAL_TYPES) for c in schema.categorical_features),
        *([(schema.target, TARGET_TYPES)] if with_target else []),
    ]
    problems: list[str] = []
    well_typed: set[str] = set()
    for name, allowed in typed:
        if name not in single:
            continue
        try:
            ok = _typed(frame[name], allowed)
        except (TypeError, ValueError):
            ok = False
        if ok:
            well_typed.add(name)
        else:
            problems.append(f"column {name!r} has values of the wrong type")
    return problems, well_typed


def _null_problems(
    frame: pd.DataFrame, schema: DatasetSchema, single: set[str], with_target: bool
) -> list[str]:
    """Missing values where none may be; duplicate or unhashable ids."""
    problems: list[str] = []
    not_null = [schema.target if with_target else None, schema.timestamp, schema.id_column]
    for name in _unique(c for c in [*not_null, *schema.required_non_null] if c):
        if name in single and frame[name].isna().any():
            problems.append(f"column {name!r} has {int(frame[name].isna().sum())} missing values")
    if schema.id_column and schema.id_column in single:
        try:
            ids = frame[schema.id_column].dropna()
            if ids.duplicated().any():
                problems.append(f"column {schema.id_column!r} has duplicate values")
        except TypeError:
            problems.append(f"column {schema.id_column!r} has unhashable values")
    return problems


def _range_problems(frame: pd.DataFrame, schema: DatasetSchema, well_typed: set[str]) -> list[str]:
    """Well-typed numeric features with values outside their range (default: finite)."""
    problems: list[str] = []
    for name in schema.numeric_features:
        if name not in well_typed:
            continue
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64")
        values = values[~np.isnan(values)]
        low, high = schema.numeric_ranges.get(name, (-MAX_ABS_VALUE, MAX_ABS_VALUE))
        outside = int(((values < low) | (values > high)).sum())
        if outside:
            problems.append(f"column {name!r} has {outside} values outside [{low:g}, {high:g}]")
    return problems


def _time_problems(
    column: pd.Series, name: str, period: tuple[Any, Any] | None, not_after: Any | None
) -> list[str]:
    """Timestamps outside the batch's period or in the future."""
    problems: list[str] = []
    stamps = pd.to_datetime(column, errors="coerce").dropna()
    if period is not None and len(stamps):
        start, end = (pd.Timestamp(t) for t in period)
        outside = int(((stamps < start) | (stamps >= end)).sum())
        if outside:
            problems.append(f"column {name!r} has {outside} values outside the period")
    if not_after is not None and len(stamps) and stamps.max() > pd.Timestamp(not_after):
        problems.append(f"column {name!r} has values in the future")
    return problems


def _label_problems(column: pd.Series, name: str) -> list[str]:
    """Labels other than 0 and 1, or not both of them."""
    labels = pd.to_numeric(column.dropna(), errors="coerce")
    if (~labels.isin([0, 1])).any():
        return [f"column {name!r} has values not in {{0, 1}}"]
    if set(labels.unique().tolist()) != {0, 1}:
        return [f"column {name!r} does not take both 0 and 1"]
    return []


def _repeat_problems(frame: pd.DataFrame, data_columns: Sequence[str]) -> list[str]:
    """Too many rows repeating another in every data column, or rows that cannot be hashed."""
    try:
        repeated = duplicated_rows(frame, data_columns).mean()
    except TypeError:
        return ["rows hold unhashable values (lists, dicts)"]
    if repeated > MAX_DUPLICATE_ROW_SHARE:
        return [f"{repeated:.0%} of rows repeat another row"]
    return []
