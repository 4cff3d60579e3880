"""The state-store resource: the one place that knows where shared run-time state lives."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from retraining_assets import settings
from retraining_assets.monitoring_store import AREA as MONITORING_AREA
from retraining_assets.monitoring_store import MonitoringStore
from retraining_assets.storage import ObjectStore, open_store

#: Environment variable with the state URL (a folder or ``s3://bucket/prefix``).
STATE_URL_ENV = "RETRAINING_STATE_URL"


class StateStoreResource(dg.ConfigurableResource):
    """Where the loop keeps state that several processes share.

    Production pointer and history, model bytes, reference profiles, error streams, shadow
    scores and asset outputs all live under one URL: a local folder (the embedded default,
    ``$RETRAINING_HOME``) or ``s3://bucket/prefix`` on any S3-compatible endpoint
    (``endpoint_url`` or boto3's ``AWS_ENDPOINT_URL``).
    """

    url: str | None = Field(
        default=None,
        description="Folder or s3://bucket/prefix; default $RETRAINING_STATE_URL, else"
        " $RETRAINING_HOME (a local folder).",
    )
    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint (MinIO, local server); default $AWS_ENDPOINT_URL."
    )

    def resolved_url(self) -> str:
        """The URL in effect (read at run time, never at import)."""
        return self.url or os.environ.get(STATE_URL_ENV) or str(settings.state_dir())

    def store(self, area: str | None = None) -> ObjectStore:
        """The store, or its sub-area (``production``, ``monitoring``, ``io``)."""
        root = open_store(self.resolved_url(), endpoint_url=self.endpoint_url)
        return root.child(area) if area else root


class MonitoringStoreResource(StateStoreResource):
    """Where monitoring assets leave what sensors and the shadow decision read.

    Reference profiles, per-row error streams and shadow scores, in the ``monitoring`` area of
    the same state URL as :class:`StateStoreResource` (``$RETRAINING_STATE_URL``, else
    ``$RETRAINING_HOME``), so a sensor on the daemon's host reads what a run worker wrote on
    another host.
    """

    shared_url: str | None = Field(
        default=None,
        description="Folder or s3://bucket/prefix where entries keyed by a model's md5 alone"
        " (reference profiles, PSI thresholds, score calibrators) are also kept and looked up,"
        " and a model's scores of a batch by the model and the exact rows, e.g. shared by the"
        " policies of a replay; default none.",
    )

    def open(self) -> MonitoringStore:
        """The typed monitoring store (see ``retraining_assets.monitoring_store``)."""
        shared = None
        if self.shared_url:
            shared = open_store(self.shared_url, endpoint_url=self.endpoint_url)
        return MonitoringStore(self.store(MONITORING_AREA), shared)
