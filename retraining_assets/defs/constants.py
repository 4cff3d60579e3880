"""Names shared by the asset modules (owners, pool, run tags); no Dagster objects here."""

#: Owner of every asset of the project, shown in the UI's catalog.
OWNERS = ["team:ml-platform"]

#: Dagster pool of the retraining chain: at most one of its steps runs at a time in the whole
#: instance, whatever launched the run (UI, sensor, schedule, CLI). The limit is the instance's
#: ``concurrency: pools: default_limit`` (1 in var/dagster/dagster.yaml and deploy/*/dagster.yaml).
RETRAINING_POOL = "retraining"

#: Run tag with the gate's verdict (``promote`` / ``reject``), set by ``evaluation_report``.
GATE_TAG = "retraining/gate"

#: One blocking asset check per group of expectations in the GE suite.
VALIDATION_GROUPS = ("schema", "types", "nulls", "ranges", "label", "row_count")
