"""new_batch_sensor and quarantine: a rejected file is gone; a file put back is validated again."""

from __future__ import annotations

import os

import dagster as dg

from retraining_assets_tests.badinput.corpus import clean
from retraining_assets_tests.dagster.helpers import ingest
from retraining_assets_tests.dagster.test_sensors import call


def test_quarantined_batch_is_revalidated_only_when_a_file_is_put_back(project) -> None:
    batch_id = "2024-03-04"
    path = project.batches / f"{batch_id}.parquet"
    path.write_bytes(b"truncated")
    (project.batches / "2024-03-11.parquet").symlink_to("/etc/passwd")
    (project.batches / "week 3.parquet").write_bytes(b"x")
    with dg.instance_for_test() as instance:
        first = call(instance, "new_batch_sensor")
        assert [r.partition_key for r in first.run_requests] == [batch_id]
        assert ingest(instance, [batch_id]) == {batch_id: False}  # rejected, quarantined
        assert not path.exists()

        quiet = call(instance, "new_batch_sensor", cursor=first.cursor)
        assert not quiet.run_requests
        skip = quiet.skip_reason.skip_message if quiet.skip_reason else ""
        assert "2024-03-11.parquet: symbolic link" in skip and "week 3.parquet" in skip
        again = call(instance, "new_batch_sensor", cursor=quiet.cursor)
        assert not again.run_requests  # never read again while nothing new arrives

        clean().to_parquet(path, index=False)  # the corrected file is put back
        back = call(instance, "new_batch_sensor", cursor=again.cursor)
        assert [(r.job_name, r.partition_key) for r in back.run_requests] == [
            ("monitoring_job", batch_id)
        ]
        assert back.run_requests[0].run_key.startswith(f"batch:{batch_id}:")
        assert ingest(instance, [batch_id]) == {batch_id: True}
        assert not call(instance, "new_batch_sensor", cursor=back.cursor).run_requests

        # Replaced in place after validation: validated again (training refuses it meanwhile).
        clean(seed=6).to_parquet(path, index=False)
        os.utime(path, ns=(1, 1))
        replaced = call(instance, "new_batch_sensor", cursor=back.cursor)
        assert [r.partition_key for r in replaced.run_requests] == [batch_id]
