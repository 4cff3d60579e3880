"""The Dask cluster that ``candidate_model`` trains on when its config says ``trainer: dask``.

Nothing here imports dask or distributed at module import (the code location loads without them);
the environment is read when a run asks for a client, never at import.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    import distributed
    import lightgbm as lgb
    import pandas as pd

    from retraining_assets.core.training import TrainedModel, TrainParams
    from retraining_assets.settings import DatasetSchema

#: Environment variable with the scheduler address (``tcp://host:8786``), read at run time.
DASK_SCHEDULER_ENV = "RETRAINING_DASK_SCHEDULER"


class DaskResource(dg.ConfigurableResource):
    """A Dask scheduler to train on, or an in-process ``LocalCluster`` started for the run.

    With an address the workers must be able to open the training dataset file (same host, or
    shared storage); the in-process cluster runs on this host, bound to 127.0.0.1, dashboard off.
    """

    scheduler_address: str | None = Field(
        default=None,
        description="Dask scheduler, e.g. tcp://10.0.0.5:8786; default $RETRAINING_DASK_SCHEDULER;"
        " empty: an in-process LocalCluster on 127.0.0.1 for the run, closed after it.",
    )
    local_workers: int = Field(
        default=2, description="In-process cluster: worker processes (1 thread each)."
    )
    connect_timeout_s: float = Field(
        default=30.0, description="Seconds to wait for the scheduler before the run fails."
    )

    def address(self) -> str:
        """The configured scheduler address, or ``""`` for an in-process cluster."""
        if self.scheduler_address is not None:
            return self.scheduler_address.strip()
        return os.environ.get(DASK_SCHEDULER_ENV, "").strip()

    def backend(self) -> str:
        """One line saying where training runs (for logs, metadata and ``retraining doctor``)."""
        address = self.address()
        if address:
            return f"dask scheduler {address}"
        return f"in-process dask LocalCluster ({self.local_workers} workers x 1 thread, 127.0.0.1)"

    @contextlib.contextmanager
    def client(self) -> Iterator[distributed.Client]:
        """A connected client; an in-process cluster lives as long as the ``with`` block.

        Raises:
            dg.Failure: if the scheduler cannot be reached (one line naming the address).
        """
        from distributed import Client, LocalCluster

        address = self.address()
        if not address:
            with (
                LocalCluster(
                    n_workers=self.local_workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    scheduler_port=0,
                    dashboard_address=None,
                    # No dashboard; its HTTP routes on a free loopback port, not 8787.
                    scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                ) as cluster,
                Client(cluster) as client,
            ):
                yield client
            return
        try:
            client = Client(address, timeout=self.connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise dg.Failure(
                description=f"cannot reach the Dask scheduler at {address}: {exc}"
            ) from exc
        with client:
            yield client

    def check(self) -> str:
        """Connect and say how many workers and threads the scheduler has (for ``doctor``).

        Raises:
            dg.Failure: if the scheduler cannot be reached.
        """
        with self.client() as client:
            workers = client.scheduler_info(n_workers=-1)["workers"]
            threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        return f"{self.backend()}: {len(workers)} workers, {threads} threads"


def train_on_dask(
    dask: DaskResource,
    source: Path,
    schema: DatasetSchema,
    params: TrainParams,
    init_model: lgb.Booster | Path | str | None = None,
) -> tuple[TrainedModel, pd.DataFrame]:
    """Train on the resource's cluster from the dataset file; also return 5 example input rows.

    Raises:
        dg.Failure: if the cluster is unreachable or the training data cannot be used.
    """
    from retraining_assets.core.dask_training import read_example_rows, train_model_dask

    try:
        with dask.client() as client:
            trained = train_model_dask(client, source, schema, params, init_model=init_model)
    except ValueError as exc:
        raise dg.Failure(description=f"dask training on {dask.backend()} failed: {exc}") from exc
    return trained, read_example_rows(source, schema, n=5)
