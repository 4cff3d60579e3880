"""One retraining chain in its own process, against ``$DAGSTER_HOME`` (for concurrency tests).

``python -m retraining_assets_tests.dagster.chain_process ROLE WINDOW [--wait-for-other]`` runs
the project's retraining assets with the test resources, tagged ``test/role=ROLE``. With
``--wait-for-other`` the run pauses right after its ``training_dataset`` step until another run
has materialized ``training_dataset`` too: the other run's dataset is then written between this
run's steps, the interleaving that made the old shared-pickle IO manager mix the two runs up.
"""

from __future__ import annotations

import sys
import time

import dagster as dg

from retraining_assets.definitions import defs
from retraining_assets_tests.dagster.helpers import CHAIN, RESOURCES

WAIT_S = 300.0


@dg.success_hook
def wait_for_other_dataset(context: dg.HookContext) -> None:
    """After ``training_dataset``: block until another run materialized it as well."""
    if context.op.name != "training_dataset":
        return
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        records = context.instance.fetch_materializations(
            dg.AssetKey("training_dataset"), limit=10
        ).records
        if any(r.run_id != context.run_id for r in records):
            return
        time.sleep(0.2)
    raise RuntimeError("the other run never materialized training_dataset")


def main(argv: list[str]) -> int:
    """Run the chain; exit 0 whatever the gate decided, 1 if the run failed."""
    role, window = argv[0], int(argv[1])
    hooks = {wait_for_other_dataset} if "--wait-for-other" in argv else set()
    job = dg.define_asset_job(
        f"chain_{role}", selection=dg.AssetSelection.assets(*CHAIN), hooks=hooks
    )
    resolved = dg.Definitions(
        assets=list(defs.assets or []), jobs=[job], resources=RESOURCES
    ).resolve_job_def(job.name)
    ops = {
        "training_dataset": {"config": {"window_batches": window}},
        "evaluation_report": {"config": {"latency_calls": 50}},
    }
    with dg.DagsterInstance.get() as instance:
        result = resolved.execute_in_process(
            instance=instance,
            run_config={"ops": ops},
            tags={"test/role": role},
            raise_on_error=False,
        )
    print(f"{role} {result.run_id} success={result.success}")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
