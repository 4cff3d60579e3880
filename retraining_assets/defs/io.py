"""The IO manager of every asset: typed JSON in the state store, one object per asset and run.

Replaces Dagster's default, which pickles each output into ``$DAGSTER_HOME/storage/<asset>``: one
file shared by every run (two concurrent runs read each other's outputs) that executes code when
loaded. Here each output is written to ``io/<asset path>/<partition or _>/<run id>.json`` in the
state store (a folder or S3, see :class:`StateStoreResource`) by
:func:`retraining_assets.core.typed_json.encode`, and read back only through its allow-listed,
sha256-verified :func:`~retraining_assets.core.typed_json.decode`.

An input whose upstream asset ran in the same run (or in the parent run of a re-execution) is
read from that run's object. Otherwise it is the object of the upstream's latest
materialization, found in the instance's event log, whose metadata records the key (``io/key``).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from retraining_assets.core.typed_json import KNOWN_TYPES, TypedJsonError, decode, encode
from retraining_assets.defs.state import StateStoreResource
from retraining_assets.storage import ObjectStore, StoreError, check_name

#: Area of the state store that holds asset outputs.
IO_AREA = "io"
#: Path segment standing for "no partition".
UNPARTITIONED = "_"


def output_key(asset_key: dg.AssetKey, partition: str | None, run_id: str) -> str:
    """Key of one stored output, relative to the ``io`` area.

    Args:
        asset_key: The asset.
        partition: Its partition key, or ``None`` if the asset is not partitioned.
        run_id: The run that materialized it.

    Raises:
        StoreError: if a part is not a safe key segment (a partition key with ``/`` or ``..``).
    """
    parts = [check_name(p, "asset key part") for p in asset_key.path]
    part = UNPARTITIONED if partition is None else check_name(partition, "partition key")
    return "/".join([*parts, part, f"{check_name(run_id, 'run id')}.json"])


def _single_partition(context: dg.InputContext | dg.OutputContext) -> str | None:
    if not context.has_asset_partitions:
        return None
    keys = list(context.asset_partition_keys)
    if len(keys) != 1:
        raise dg.Failure(
            description=f"{context.asset_key.to_user_string()}: the JSON IO manager stores one"
            f" partition per object; this step spans {len(keys)} partitions"
        )
    return keys[0]


class StateJsonIOManager(dg.ConfigurableIOManager):
    """Stores each asset output as typed, hash-verified JSON, scoped per run, in the state store.

    Only the allow-listed records of ``core.typed_json.KNOWN_TYPES`` are stored; large data
    (frames, models) lives in DVC and the production registry and is referenced by md5.
    """

    # The state store's own fields, not a nested StateStoreResource: a resource with a nested
    # resource is a generator resource, and every sensor or schedule context built with the
    # project's resources would then have to be opened as a context manager.
    url: str | None = Field(
        default=None,
        description="Folder or s3://bucket/prefix; default $RETRAINING_STATE_URL, else"
        " $RETRAINING_HOME (see StateStoreResource).",
    )
    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint (MinIO, local server); default $AWS_ENDPOINT_URL."
    )

    def _area(self) -> ObjectStore:
        return StateStoreResource(url=self.url, endpoint_url=self.endpoint_url).store(IO_AREA)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """Write ``obj`` under this run's key and record the key in the materialization."""
        if obj is None:
            # Assets that return a MaterializeResult or yield no Output have nothing to store.
            return
        partition = _single_partition(context)
        key = output_key(context.asset_key, partition, context.run_id)
        try:
            data, digest = encode(obj)
        except TypedJsonError as exc:
            raise dg.Failure(
                description=f"cannot store the output of {context.asset_key.to_user_string()}:"
                f" {exc}"
            ) from exc
        self._area().put(key, data)
        context.add_output_metadata(
            {
                "io/key": f"{IO_AREA}/{key}",
                "io/sha256": digest,
                "io/type": type(obj).__name__,
            }
        )

    def _source_run_id(self, context: dg.InputContext, partition: str | None) -> str:
        """The run whose output this input reads.

        This run's (or a re-executed parent's) if the upstream step is part of it, else the run of
        the upstream's latest materialization.
        """
        upstream = context.upstream_output
        if upstream is not None:
            try:
                produced_by = upstream.run_id
            except dg.DagsterInvariantViolationError:
                produced_by = None
            # An upstream asset outside this run gets a placeholder run id, not a run's.
            if produced_by is not None and context.instance.has_run(produced_by):
                return produced_by
        asset = context.asset_key
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=asset, asset_partitions=[partition] if partition is not None else None
            ),
            limit=1,
        ).records
        where = f"{asset.to_user_string()}" + (f" [{partition}]" if partition else "")
        if not records:
            raise dg.Failure(description=f"{where} has never been materialized: nothing to load")
        record = records[0]
        mat = record.asset_materialization
        stored = mat.metadata.get("io/key") if mat is not None else None
        expected = f"{IO_AREA}/{output_key(asset, partition, record.run_id)}"
        if stored is None or stored.value != expected:
            raise dg.Failure(
                description=f"the latest materialization of {where} (run {record.run_id}) stored"
                " no JSON output (it predates the JSON IO manager or was logged outside an"
                f" asset); materialize {asset.to_user_string()} again"
            )
        return record.run_id

    def load_input(self, context: dg.InputContext) -> Any:
        """Read the upstream record of the right run, verified and decoded (never executed)."""
        partition = _single_partition(context)
        run_id = self._source_run_id(context, partition)
        key = output_key(context.asset_key, partition, run_id)
        area = self._area()
        try:
            data = area.get(key)
        except StoreError as exc:
            raise dg.Failure(
                description=f"output of {context.asset_key.to_user_string()} from run {run_id}"
                f" is missing from {area.location}: {exc}"
            ) from exc
        wanted = getattr(context.dagster_type, "typing_type", None)
        expected = wanted if isinstance(wanted, type) and wanted in KNOWN_TYPES.values() else None
        try:
            value = decode(data, key=f"{IO_AREA}/{key}", expected=expected)
        except TypedJsonError as exc:
            raise dg.Failure(description=str(exc)) from exc
        context.add_input_metadata({"io/key": f"{IO_AREA}/{key}", "io/source_run_id": run_id})
        return value
