"""Build the training dataset: choose a window, read its batches, leave out the refused ones.

A batch is read only if it passed ingestion validation and its bytes still have the md5 recorded
then; only labelled batches count (labels in the file or in its feedback file). A batch that is
refused while reading (changed since validation, unreadable, an unusable feedback file, which is
quarantined, or rows that repeat another batch) is left out with its reason, and the window is
chosen again without it: one bad file never blocks retraining on the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from retraining_assets.core import batches as batch_io
from retraining_assets.core.strategies import TrainingPlan, apply_weights, plan_training
from retraining_assets.settings import DatasetSchema
from retraining_assets.storage import ObjectStore


@dataclass(frozen=True)
class ValidatedBatch:
    """What ingestion recorded about a batch that passed validation."""

    md5: str
    labelled: bool
    start: str | None
    order: int


@dataclass(frozen=True)
class WindowRequest:
    """The strategy and window a run asks for (see :func:`~.strategies.plan_training`)."""

    strategy: str
    as_of: str | None
    window_batches: int
    test_batches: int
    half_life_days: float
    trained_through: str | None = None


@dataclass
class BuiltDataset:
    """The rows of the chosen window, and every batch left out with why."""

    dataset: pd.DataFrame
    plan: TrainingPlan
    rejected: set[str] = field(default_factory=set)
    unlabelled: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)


class WindowError(ValueError):
    """No training window can be built from the usable batches (the message says why)."""


def build_training_set(
    store: ObjectStore,
    schema: DatasetSchema,
    files: Sequence[str],
    validated: dict[str, ValidatedBatch],
    failed: set[str],
    request: WindowRequest,
    warn: Callable[[str, str], None] = lambda batch_id, why: None,
) -> BuiltDataset:
    """The dataset of the window ``request`` chooses among the usable batches of ``store``.

    Args:
        store: Where the batch and feedback files are.
        schema: The dataset's schema.
        files: Batch ids listed in ``store``.
        validated: The listed batches that passed validation, with their recorded md5.
        failed: Known batches whose latest validation failed.
        request: Strategy and window.
        warn: Called with each batch left out while reading and the reason.

    Raises:
        WindowError: no window can be built; names the batches refused on the way.
    """
    import pyarrow as pa

    # Arrow's default (mimalloc) pool keeps freed pages: reading and writing the window then costs
    # ~2x the frame in resident memory. The system allocator gives them back (benchmarks/
    # dataset_memory.py: 4.7x -> 2.9x the frame for an 8-week window).
    pa.set_memory_pool(pa.system_memory_pool())
    feedback = batch_io.scan_batches(store, batch_io.FEEDBACK_DIR)
    # A linked feedback file counts as arrived: reading refuses it, which quarantines it.
    with_feedback = {*feedback.ids, *feedback.links}
    # Not validated: rejected (and quarantined, so no longer listed) or not ingested yet.
    rejected = failed | {b for b in files if b not in validated}
    unlabelled = {b for b in validated if not validated[b].labelled and b not in with_feedback}
    available = [b for b in files if b in validated and b not in unlabelled]
    times = {b: validated[b].start for b in available}
    refused: dict[str, str] = {}
    frames: dict[str, Any] = {}
    while True:
        try:
            plan = plan_training(
                available,
                request.strategy,
                as_of=request.as_of,
                window_batches=request.window_batches,
                test_batches=request.test_batches,
                trained_through=request.trained_through,
                half_life_days=request.half_life_days,
                times=times,
            )
        except ValueError as exc:  # BatchError and StrategyError: both say what is missing
            left_out = "; ".join(f"{b}: {why}" for b, why in sorted(refused.items()))
            raise WindowError(
                f"cannot build a training window: {exc}"
                + (f" (refused: {left_out})" if left_out else "")
            ) from exc
        window = plan.window
        newly = _read_window(store, window.all_batches, validated, schema, frames)
        if not newly:
            newly = batch_io.overlapping_batches(
                frames, sorted(window.all_batches, key=lambda b: validated[b].order), schema
            )
        if not newly:
            break
        for batch_id, why in newly.items():
            warn(batch_id, why)
            frames.pop(batch_id, None)
        refused.update(newly)
        available = [b for b in available if b not in newly]
    frames = {b: frames[b] for b in window.all_batches}
    dataset = apply_weights(batch_io.collect_dataset(frames, window, schema), plan, schema)
    return BuiltDataset(dataset, plan, rejected, unlabelled, refused)


def _read_window(
    store: ObjectStore,
    batch_ids: tuple[str, ...],
    validated: dict[str, ValidatedBatch],
    schema: DatasetSchema,
    frames: dict[str, Any],
) -> dict[str, str]:
    """Read the window's batches not read yet into ``frames``; return the refused ones and why.

    An unusable feedback file is quarantined (with its reason) so it is not read again.
    """
    refused: dict[str, str] = {}
    for batch_id in batch_ids:
        if batch_id in frames:
            continue
        try:
            frames[batch_id] = batch_io.read_validated_batch(
                store, batch_id, validated[batch_id].md5, schema, columns=schema.columns
            )
        except batch_io.FeedbackError as exc:
            key = batch_io.feedback_key(batch_id)
            try:
                moved = batch_io.quarantine(
                    store, key, {"batch_id": batch_id, "reason": str(exc), "kind": "feedback"}
                )
                refused[batch_id] = f"feedback {key} quarantined as {moved}: {exc}"
            except (OSError, ValueError) as move_error:
                refused[batch_id] = f"feedback {key} unusable ({exc}); not moved: {move_error}"
        except batch_io.BatchError as exc:
            refused[batch_id] = str(exc)
    return refused
