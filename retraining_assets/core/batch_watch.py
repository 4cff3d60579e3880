"""What a look at the batch folder asks for: the logic behind ``new_batch_sensor``.

Given the listing of the batch files and of their feedback files, the partitions Dagster knows,
and what the previous look saw (the cursor), :func:`plan_batch_runs` says which batches are new,
which were put back or replaced (validated again), which got new labels (measured again), and
what the next look starts from. No Dagster import: the sensor turns the plan into run requests.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retraining_assets.core.batches import BatchListing


def signature_seconds(signature: str) -> float:
    """The modification time (seconds) in a batch listing signature ``size:mtime_ns[:etag]``."""
    try:
        return int(signature.split(":")[1]) / 1e9
    except (IndexError, ValueError):
        return float("inf")  # no time known: count it as new once


@dataclass(frozen=True)
class BatchRunPlan:
    """What to run after one look at the batch folder.

    Attributes:
        new: Batch ids that are not partitions yet: add them and monitor them.
        replaced: Known batches whose file changed (put back after quarantine, or rewritten):
            validate them again; each maps to its new signature.
        feedback: Batches whose feedback file is new or changed, with its signature, sorted; a
            batch that is new or replaced in the same look is left out (its monitoring run
            measures it already).
        cursor: What the next look compares with (JSON-ready).
        skip_reason: Why nothing runs, when nothing does (else ``""``).
    """

    new: list[str]
    replaced: dict[str, str]
    feedback: list[tuple[str, str]]
    cursor: dict[str, Any]
    skip_reason: str = ""


def _replaced(
    listing: BatchListing, known: Collection[str], seen_files: Mapping[str, str] | None
) -> dict[str, str]:
    # Absent from an older cursor: then nothing counts as replaced. A known partition whose file
    # was never seen (added by hand) is recorded, not re-run.
    if seen_files is None:
        return {}
    return {
        b: listing.signatures[b]
        for b in listing.ids
        if b in known
        and b in listing.signatures
        and seen_files.get(b, listing.signatures[b]) != listing.signatures[b]
    }


def _changed_feedback(
    feedback: BatchListing, batches: Collection[str], cursor: Mapping[str, Any]
) -> list[tuple[str, str]]:
    # New when the signature (size, time; the ETag on S3) differs from the one the cursor saw. An
    # older cursor knew only the newest modification time: then a file newer than that is new.
    seen: Mapping[str, str] | None = cursor.get("feedback_files")
    seen_mtime = float(cursor.get("feedback_mtime", 0.0))
    changed = []
    for stem, signature in feedback.signatures.items():
        if stem not in batches:
            continue
        if seen is not None:
            is_new = seen.get(stem) != signature
        else:
            is_new = signature_seconds(signature) > seen_mtime
        if is_new:
            changed.append((stem, signature))
    return sorted(changed)


def plan_batch_runs(
    listing: BatchListing,
    feedback: BatchListing,
    known: Collection[str],
    cursor: Mapping[str, Any],
    location: str,
) -> BatchRunPlan:
    """Decide what one look at the batch folder starts.

    Args:
        listing: The batch files (``scan_batches(store)``).
        feedback: The feedback files (``scan_batches(store, FEEDBACK_DIR)``).
        known: The batch partitions Dagster already has.
        cursor: The previous look's cursor (``{}`` on the first look).
        location: Where the batches are, for the skip reason.

    Returns:
        The plan; its ``cursor`` keeps every file's signature (``""`` once a known batch's file
        is gone, e.g. quarantined) and every feedback file's.
    """
    known = set(known)
    new = [b for b in listing.ids if b not in known]
    seen_files: Mapping[str, str] | None = cursor.get("files")
    replaced = _replaced(listing, known, seen_files)
    signatures = dict(listing.signatures)
    for batch_id in seen_files or {}:
        if batch_id in known and batch_id not in signatures:
            signatures[batch_id] = ""
    labelled = [
        (b, signature)
        for b, signature in _changed_feedback(feedback, known | set(new), cursor)
        if b not in new and b not in replaced
    ]
    skip = ""
    if not new and not replaced and not labelled:
        refused = {**listing.refused, **{f"feedback/{k}": v for k, v in feedback.refused.items()}}
        ignored = "; ".join(f"{name}: {why}" for name, why in sorted(refused.items()))
        skip = f"no new batch among {len(listing.ids)} files in {location}; no new feedback" + (
            f"; ignored {ignored}" if ignored else ""
        )
    return BatchRunPlan(
        new=new,
        replaced=replaced,
        feedback=labelled,
        cursor={"feedback_files": feedback.signatures, "files": signatures},
        skip_reason=skip,
    )
