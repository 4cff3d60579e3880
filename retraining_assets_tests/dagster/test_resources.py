"""Resources against the real stores of an isolated project state."""

from __future__ import annotations

import math

from retraining_assets.defs.resources import MlflowResource


def test_log_to_run_adds_metrics_and_tags_and_skips_missing(project) -> None:
    """Metrics and tags land on a finished run in one call; None and NaN metrics are left out."""
    resource = MlflowResource()
    with resource.start_run("probe", tags={"cause": "test"}) as run:
        run_id = run.info.run_id
    resource.log_to_run(
        run_id,
        {"test_auc": 0.75, "baseline_auc": math.nan, "p95_latency_ms": None},  # type: ignore[dict-item]
        {"promotion": "rejected", "version": 3},
    )
    data = resource.client().get_run(run_id).data
    assert data.metrics == {"test_auc": 0.75}
    assert data.tags["promotion"] == "rejected"
    assert data.tags["version"] == "3"
    assert data.tags["cause"] == "test"
    resource.log_to_run(run_id, {}, {})  # nothing to log is not an error
