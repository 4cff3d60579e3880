"""What a look at the batch folder starts: new, replaced and relabelled batches (no Dagster)."""

from __future__ import annotations

import json

from retraining_assets.core.batch_watch import plan_batch_runs, signature_seconds
from retraining_assets.core.batches import BatchListing

SECOND = 1_000_000_000


def listing(signatures: dict[str, str], refused: dict[str, str] | None = None) -> BatchListing:
    return BatchListing(ids=sorted(signatures), signatures=signatures, refused=refused or {})


NONE = listing({})


def test_first_look_adds_every_batch_and_records_what_it_saw() -> None:
    files = listing({"b1": f"10:{SECOND}", "b2": f"20:{2 * SECOND}"})
    feedback = listing({"b1": f"5:{3 * SECOND}"})
    plan = plan_batch_runs(files, feedback, [], {}, "/data")
    assert plan.new == ["b1", "b2"] and plan.replaced == {}
    # A batch new in this look is measured by its monitoring run: no feedback run as well.
    assert plan.feedback == [] and plan.skip_reason == ""
    assert plan.cursor == {"feedback_files": feedback.signatures, "files": files.signatures}
    assert json.loads(json.dumps(plan.cursor)) == plan.cursor


def test_nothing_new_skips_with_the_count_the_place_and_the_refused_names() -> None:
    files = listing({"b1": "10:1"}, refused={"evil.parquet": "symbolic link"})
    feedback = listing({}, refused={"x y.csv": "unsafe name"})
    cursor = {"files": {"b1": "10:1"}, "feedback_files": {}}
    plan = plan_batch_runs(files, feedback, ["b1"], cursor, "s3://bucket/batches")
    assert not plan.new and not plan.replaced and not plan.feedback
    assert plan.skip_reason == (
        "no new batch among 1 files in s3://bucket/batches; no new feedback; ignored "
        "evil.parquet: symbolic link; feedback/x y.csv: unsafe name"
    )
    quiet = plan_batch_runs(listing({"b1": "10:1"}), NONE, ["b1"], cursor, "/data")
    assert quiet.skip_reason == "no new batch among 1 files in /data; no new feedback"


def test_a_replaced_file_is_validated_again_and_a_gone_one_is_remembered_as_empty() -> None:
    cursor = {"files": {"b1": "10:1", "b2": "20:2", "b3": "30:3"}, "feedback_files": {}}
    files = listing({"b1": "11:5", "b2": "20:2", "b4": "40:4"})  # b1 rewritten, b3 quarantined
    plan = plan_batch_runs(files, NONE, ["b1", "b2", "b3", "manual"], cursor, "/data")
    assert plan.new == ["b4"] and plan.replaced == {"b1": "11:5"}
    assert plan.cursor["files"] == {"b1": "11:5", "b2": "20:2", "b4": "40:4", "b3": ""}
    # Put back after quarantine: its signature differs from "" and it runs again.
    back = plan_batch_runs(listing({"b3": "30:9"}), NONE, ["b3"], plan.cursor, "/data")
    assert back.replaced == {"b3": "30:9"}


def test_a_cursor_without_files_counts_nothing_as_replaced() -> None:
    files = listing({"b1": "11:5"})
    plan = plan_batch_runs(files, NONE, ["b1"], {"feedback_files": {}}, "/data")
    assert plan.replaced == {} and plan.skip_reason
    # A known partition whose file was never seen (added by hand) is recorded, not re-run.
    seen = plan_batch_runs(files, NONE, ["b1"], {"files": {}}, "/data")
    assert seen.replaced == {} and seen.cursor["files"] == {"b1": "11:5"}


def test_new_or_changed_feedback_of_known_batches_is_measured_in_batch_order() -> None:
    files = listing({"b1": "1:1", "b2": "2:2"})
    cursor = {"files": files.signatures, "feedback_files": {"b1": "5:1", "b2": "6:1"}}
    feedback = listing({"b2": "7:9", "b1": "5:1", "b0": "1:1", "zz": "3:3"})
    plan = plan_batch_runs(files, feedback, ["b0", "b1", "b2"], cursor, "/data")
    # b1 unchanged; zz is no partition; b0 has no file any more but is a known partition.
    assert plan.feedback == [("b0", "1:1"), ("b2", "7:9")] and not plan.skip_reason


def test_an_older_cursor_compares_feedback_by_its_newest_modification_time() -> None:
    files = listing({"b1": "1:1", "b2": "2:2"})
    feedback = listing({"b1": f"5:{2 * SECOND}", "b2": f"5:{4 * SECOND}", "b3": "5"})
    cursor = {"files": files.signatures, "feedback_mtime": 3.0}
    plan = plan_batch_runs(files, feedback, ["b1", "b2", "b3"], cursor, "/data")
    # b3's signature has no time: counted as new once.
    assert plan.feedback == [("b2", f"5:{4 * SECOND}"), ("b3", "5")]
    assert signature_seconds(f"1:{3 * SECOND}:etag") == 3.0
    assert signature_seconds("garbage") == float("inf")
