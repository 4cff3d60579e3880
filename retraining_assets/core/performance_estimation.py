"""Label-free performance estimation (CBPE-style): the production model's AUC before labels arrive.

Labels come late; the model's scores come with every batch. If the scores are calibrated, each
row's calibrated probability ``p_i`` is the chance that its label is 1, so the labels of a new
batch can be treated as independent Bernoulli draws and any metric has an *expected* value under
them. This is NannyML's confidence-based performance estimation (CBPE); for ROC AUC::

    E[AUC] ~= sum_{s_i > s_j} p_i (1 - p_j)  +  1/2 sum_{s_i = s_j, i != j} p_i (1 - p_j)
              ---------------------------------------------------------------------------
                            sum_{i != j} p_i (1 - p_j)

(the ratio of the expected concordant pairs to the expected positive-negative pairs), with rows
ranked by the model's raw score ``s`` and weighted by their calibrated probability ``p``.

The calibration is an isotonic regression of the labels on the raw scores of reference data with
known labels (the production model's held-out test split), kept as two plain arrays (the
breakpoints of the monotone step-and-ramp function) so it can be stored as ``.npz`` and applied
with ``np.interp``: never a pickled estimator.

What this can and cannot see: the estimate moves when the *population* moves (covariate shift:
more rows where the model is unsure, fewer where it is confident, or scores squeezed together),
assuming P(y | x) is unchanged. A change of P(y | x) itself (concept drift) leaves the scores, and
so the estimate, where they were: only labels reveal it (``batch_performance``,
``concept_drift_sensor``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from retraining_assets.core.npz import NpzError, read_arrays
from retraining_assets.core.verdicts import EstimatedPerformanceVerdict, PerformanceVerdict
from retraining_assets.libraries import preload

if TYPE_CHECKING:
    import pandas as pd

    from retraining_assets.schemas import DatasetSchema
    from retraining_assets.settings import TriggerPolicy

#: Version of the stored calibrator's layout (checked on read).
CALIBRATOR_FORMAT = 1
#: Batches shown in the chart of the estimate over time.
HISTORY_BATCHES = 52


class CalibratorError(ValueError):
    """Stored calibrator bytes are unreadable or inconsistent."""


@dataclass(frozen=True)
class ScoreCalibrator:
    """A monotone map from the model's raw score to a calibrated probability, as plain data.

    Attributes:
        thresholds: Increasing raw-score breakpoints.
        probabilities: Non-decreasing calibrated probabilities at the breakpoints (in [0, 1]);
            between breakpoints the map is linear, outside it is clipped (as scikit-learn's
            ``IsotonicRegression(out_of_bounds="clip")`` predicts).
        reference_auc: The model's realised AUC on the reference rows the map was fitted on.
        reference_rows: Number of reference rows.
        reference_positive_rate: Share of positives among them.
    """

    thresholds: np.ndarray
    probabilities: np.ndarray
    reference_auc: float
    reference_rows: int
    reference_positive_rate: float

    def __post_init__(self) -> None:
        """Reject breakpoints that are not a monotone map into [0, 1]."""
        x = np.asarray(self.thresholds, dtype="float64")
        y = np.asarray(self.probabilities, dtype="float64")
        if x.ndim != 1 or y.shape != x.shape or len(x) == 0:
            raise CalibratorError(f"calibrator needs 1-D arrays of equal length, got {x.shape}")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise CalibratorError("calibrator breakpoints must be finite")
        if np.any(np.diff(x) < 0) or np.any(np.diff(y) < -1e-12):
            raise CalibratorError("calibrator breakpoints must be non-decreasing")
        if y.min() < 0.0 or y.max() > 1.0:
            raise CalibratorError("calibrated probabilities must lie in [0, 1]")

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw ``scores`` (linear between breakpoints, clipped)."""
        s = np.asarray(scores, dtype="float64")
        return np.interp(s, self.thresholds, self.probabilities)

    def to_bytes(self) -> bytes:
        """The calibrator as an ``.npz`` archive of numbers (no pickle)."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            allow_pickle=False,
            format=np.array(CALIBRATOR_FORMAT, dtype="int64"),
            thresholds=np.asarray(self.thresholds, dtype="float64"),
            probabilities=np.asarray(self.probabilities, dtype="float64"),
            reference=np.array(
                [self.reference_auc, self.reference_rows, self.reference_positive_rate],
                dtype="float64",
            ),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ScoreCalibrator:
        """Read a calibrator written by :meth:`to_bytes`.

        Raises:
            CalibratorError: if the bytes are not such an archive or fail the checks.
        """
        try:
            arrays = read_arrays(data, ("format", "thresholds", "probabilities", "reference"))
        except NpzError as exc:
            raise CalibratorError(f"not a calibrator: {exc}") from None
        if int(arrays["format"]) != CALIBRATOR_FORMAT:
            raise CalibratorError(
                f"calibrator format {int(arrays['format'])}, expected {CALIBRATOR_FORMAT}"
            )
        reference = arrays["reference"]
        if reference.shape != (3,):
            raise CalibratorError("calibrator reference must hold 3 numbers")
        return cls(
            thresholds=arrays["thresholds"].astype("float64"),
            probabilities=arrays["probabilities"].astype("float64"),
            reference_auc=float(reference[0]),
            reference_rows=int(reference[1]),
            reference_positive_rate=float(reference[2]),
        )


def fit_calibrator(y: np.ndarray, scores: np.ndarray) -> ScoreCalibrator:
    """Fit the isotonic calibration of ``scores`` to labels ``y`` on reference data.

    Args:
        y: 0/1 labels of the reference rows (the production model's held-out test split).
        scores: The model's raw scores (probabilities) of the same rows.

    Returns:
        The calibrator, with the realised AUC of ``scores`` on the reference rows.

    Raises:
        ValueError: if there are no rows, lengths differ, or the labels are of a single class.
    """
    from sklearn.isotonic import IsotonicRegression

    from retraining_assets.core.evaluation import roc_auc

    y = np.asarray(y, dtype="float64").ravel()
    s = np.asarray(scores, dtype="float64").ravel()
    if len(y) == 0 or len(y) != len(s):
        raise ValueError(f"need one score per label, got {len(y)} labels and {len(s)} scores")
    if y.min() == y.max():
        raise ValueError("reference labels are of a single class: nothing to calibrate on")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(s, y)
    return ScoreCalibrator(
        thresholds=np.asarray(iso.X_thresholds_, dtype="float64"),
        probabilities=np.clip(np.asarray(iso.y_thresholds_, dtype="float64"), 0.0, 1.0),
        reference_auc=roc_auc(y, s),
        reference_rows=len(y),
        reference_positive_rate=float(y.mean()),
    )


def expected_auc(scores: np.ndarray, probabilities: np.ndarray) -> float:
    """Expected ROC AUC of ``scores`` if each row's label is 1 with its calibrated probability.

    Rows are ranked by ``scores`` (ties count half, as in the realised AUC), and each pair
    ``(i, j)`` is weighted by the chance ``p_i (1 - p_j)`` that ``i`` is a positive and ``j`` a
    negative. O(n log n).

    Args:
        scores: The model's raw scores (the ranking the realised AUC uses).
        probabilities: Calibrated probabilities of the same rows.

    Returns:
        The expected AUC, or NaN when no row could be of either class (all p in {0, 1} alike,
        or fewer than two rows).
    """
    s = np.asarray(scores, dtype="float64").ravel()
    p = np.clip(np.asarray(probabilities, dtype="float64").ravel(), 0.0, 1.0)
    if len(s) != len(p):
        raise ValueError(f"need one probability per score, got {len(s)} and {len(p)}")
    if len(s) < 2:
        return float("nan")
    q = 1.0 - p
    self_pairs = float(np.sum(p * q))
    denominator = float(p.sum() * q.sum()) - self_pairs
    if denominator <= 1e-12:
        return float("nan")
    # Group rows by distinct score: within a group the order is a coin flip (half credit).
    unique, inverse = np.unique(s, return_inverse=True)
    pos = np.bincount(inverse, weights=p, minlength=len(unique))
    neg = np.bincount(inverse, weights=q, minlength=len(unique))
    pq = np.bincount(inverse, weights=p * q, minlength=len(unique))
    neg_below = np.concatenate(([0.0], np.cumsum(neg)[:-1]))
    concordant = float(np.sum(pos * neg_below))
    tied = float(np.sum(pos * neg - pq))
    return (concordant + 0.5 * tied) / denominator


@dataclass(frozen=True)
class PerformanceEstimate:
    """The estimated (label-free) quality of the production model on one batch.

    Attributes:
        estimated_auc: Expected ROC AUC under the calibrated probabilities (NaN if undefined).
        reference_auc: Realised AUC on the reference rows the calibration was fitted on.
        expected_positive_rate: Mean calibrated probability: the expected share of positives.
        reference_positive_rate: Share of positives on the reference rows.
        n_rows: Rows scored.
    """

    estimated_auc: float
    reference_auc: float
    expected_positive_rate: float
    reference_positive_rate: float
    n_rows: int

    @property
    def relative_auc(self) -> float:
        """Estimated AUC as a share of the reference AUC."""
        return self.estimated_auc / self.reference_auc if self.reference_auc else float("nan")

    def as_dict(self) -> dict[str, float]:
        """Flat dict for metadata and JSON."""
        return {
            "estimated_auc": self.estimated_auc,
            "reference_auc": self.reference_auc,
            "relative_auc": self.relative_auc,
            "expected_positive_rate": self.expected_positive_rate,
            "reference_positive_rate": self.reference_positive_rate,
            "n_rows": self.n_rows,
        }


def estimate_performance(calibrator: ScoreCalibrator, scores: np.ndarray) -> PerformanceEstimate:
    """Estimate the model's AUC on an unlabelled batch from its raw ``scores``.

    Args:
        calibrator: Fitted on the model's reference data (:func:`fit_calibrator`).
        scores: The model's raw scores on the new batch.

    Returns:
        The estimate and its reference.
    """
    s = np.asarray(scores, dtype="float64").ravel()
    p = calibrator.calibrate(s)
    return PerformanceEstimate(
        estimated_auc=expected_auc(s, p),
        reference_auc=calibrator.reference_auc,
        expected_positive_rate=float(p.mean()) if len(p) else float("nan"),
        reference_positive_rate=calibrator.reference_positive_rate,
        n_rows=len(s),
    )


def estimated_auc_floor(reference_auc: float, *, relative_floor: float, auc_floor: float) -> float:
    """The floor an estimated AUC is held to: the higher of the relative and the absolute one.

    The relative floor alone follows the model's own test week: a model promoted on a poor test
    week (flights, 2013-04-29: AUC 0.599) gets a floor of 0.95 x that and is never judged
    degraded again while it serves at that level. The absolute floor is the labelled rule's
    ``auc_floor`` for estimates: below it a model is degraded whatever it started from.

    Args:
        reference_auc: The model's realised AUC on the reference rows (its test split).
        relative_floor: Share of ``reference_auc`` below which it is degraded.
        auc_floor: Absolute AUC below which it is degraded (0: none).
    """
    return max(relative_floor * reference_auc, auc_floor)


def estimated_performance_degraded(
    estimate: PerformanceEstimate,
    *,
    relative_floor: float,
    auc_floor: float,
    min_rows: int,
) -> tuple[bool, str]:
    """Whether the estimated AUC says the model degraded, and the sentence saying why.

    Degraded when the estimate falls below :func:`estimated_auc_floor`: below the relative floor
    times the reference AUC, or below the absolute floor, as the labelled rule
    (``core.monitoring.performance_degraded``) does with its two floors.

    Args:
        estimate: The batch's estimate.
        relative_floor: Degraded if the estimated AUC < this x the reference AUC.
        auc_floor: Degraded also if the estimated AUC < this (0: no absolute floor).
        min_rows: Fewer rows than this: no verdict (the estimate is too noisy).

    Returns:
        ``(degraded, reason)``, the reason with the numbers and the floor that decided.
    """
    est, ref = estimate.estimated_auc, estimate.reference_auc
    if estimate.n_rows < min_rows:
        return False, f"only {estimate.n_rows} rows < {min_rows}: no estimate verdict"
    if est != est:
        return False, "estimated AUC undefined on this batch (all scores alike)"
    relative = relative_floor * ref
    relative_text = f"{relative_floor:g} x reference AUC {ref:.4f} = {relative:.4f}"
    if est < relative:
        return True, f"estimated AUC {est:.4f} < {relative_text}"
    if est < auc_floor:
        return True, (
            f"estimated AUC {est:.4f} < absolute floor {auc_floor:.4f} (above {relative_text})"
        )
    absolute = f" and >= absolute floor {auc_floor:.4f}" if auc_floor > 0 else ""
    return False, f"estimated AUC {est:.4f} >= {relative_text}{absolute}"


def plot_estimated_history(
    periods: list[str],
    estimated: list[float],
    realised: list[float | None],
    *,
    reference_auc: float,
    floor: float,
    title: str,
) -> bytes:
    """Estimated AUC per batch over time (realised AUC where labels arrived), as PNG bytes.

    Rendered in memory: the chart travels as an image embedded in the asset's metadata.

    Args:
        periods: Batch ids in time order.
        estimated: Estimated AUC of each batch.
        realised: Realised AUC of each batch, ``None`` while its labels are missing.
        reference_auc: Drawn as a horizontal line.
        floor: The sensor's threshold, drawn as a dashed line.
        title: Chart title.

    Returns:
        The PNG bytes.
    """
    import matplotlib

    matplotlib.use("Agg")
    preload("matplotlib.pyplot")
    import matplotlib.pyplot as plt

    x = np.arange(len(periods))
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    ax.plot(x, estimated, marker="o", markersize=3, label="estimated AUC (no labels)")
    known = [(i, r) for i, r in enumerate(realised) if r is not None and r == r]
    if known:
        ax.plot(
            [i for i, _ in known],
            [r for _, r in known],
            marker="x",
            markersize=4,
            linestyle=":",
            color="black",
            label="realised AUC (labels)",
        )
    ax.axhline(reference_auc, color="grey", linewidth=1, label=f"reference {reference_auc:.3f}")
    ax.axhline(floor, color="tab:red", linestyle="--", linewidth=1, label=f"floor {floor:.3f}")
    step = max(1, len(periods) // 8)
    ax.set_xticks(x[::step])
    ax.set_xticklabels([periods[i] for i in range(0, len(periods), step)], fontsize=7)
    ax.set_ylabel("ROC AUC")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def test_split_scores(booster: Any, schema: DatasetSchema, frame: pd.DataFrame) -> LabelledScores:
    """The labels and the model's raw scores of the labelled test split of its training data.

    The test split was never trained on, so its scores are calibrated on honestly; a dataset
    without a split column is used whole.
    """
    from retraining_assets.core.drift_assessment import split_rows
    from retraining_assets.core.training import Scorer

    test = split_rows(frame, "test")
    test = test[test[schema.target].notna()]
    scores = Scorer(booster, schema).predict(test)
    return LabelledScores(y=test[schema.target].to_numpy(dtype="float64"), scores=scores)


def calibrate_on_test_split(
    booster: Any, schema: DatasetSchema, frame: pd.DataFrame
) -> ScoreCalibrator:
    """Fit a model's score calibrator on the labelled test split of its training data.

    Raises:
        ValueError: if the rows cannot be calibrated on (too few, one class).
    """
    return fit_calibrator(*test_split_scores(booster, schema, frame).arrays())


#: Version of the stored labelled-scores layout (checked on read).
LABELLED_SCORES_FORMAT = 1


@dataclass(frozen=True, eq=False)
class LabelledScores:
    """Labels and one model's raw scores of the same rows: a calibration set.

    Either the model's test split (the reference the calibration starts from) or a served batch
    whose labels arrived (``batch_performance`` keeps one per batch and production version).

    Attributes:
        y: 0/1 labels.
        scores: The model's raw scores of the same rows.
        batch_id: The batch ("" for the test split).
        period_start: Start of the batch's period (``batches.batch_period``); ``None`` when
            unknown (such a batch is never calibrated on: its order cannot be told).
    """

    y: np.ndarray
    scores: np.ndarray
    batch_id: str = ""
    period_start: pd.Timestamp | None = None

    def __post_init__(self) -> None:
        """Reject arrays that are not one label and one score per row."""
        y, s = np.asarray(self.y), np.asarray(self.scores)
        if y.ndim != 1 or s.shape != y.shape:
            raise CalibratorError(
                f"labelled scores need 1-D labels and scores of equal length, got {y.shape} "
                f"and {s.shape}"
            )

    @property
    def rows(self) -> int:
        """Number of rows."""
        return len(self.y)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(y, scores)`` as float64."""
        return np.asarray(self.y, dtype="float64"), np.asarray(self.scores, dtype="float64")

    def to_bytes(self) -> bytes:
        """The set as an ``.npz`` archive of numbers and two strings (no pickle)."""
        y, s = self.arrays()
        start = "" if self.period_start is None else self.period_start.isoformat()
        buffer = io.BytesIO()
        np.savez(
            buffer,
            allow_pickle=False,
            format=np.array(LABELLED_SCORES_FORMAT, dtype="int64"),
            y=y,
            scores=s,
            batch_id=np.array(self.batch_id),
            period_start=np.array(start),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelledScores:
        """Read a set written by :meth:`to_bytes`.

        Raises:
            CalibratorError: if the bytes are not such an archive or fail the checks.
        """
        import pandas as pd

        try:
            arrays = read_arrays(data, ("format", "y", "scores", "batch_id", "period_start"))
        except NpzError as exc:
            raise CalibratorError(f"not labelled scores: {exc}") from None
        if arrays["format"].shape != () or int(arrays["format"]) != LABELLED_SCORES_FORMAT:
            raise CalibratorError(
                f"labelled scores format {arrays['format']!r}, expected {LABELLED_SCORES_FORMAT}"
            )
        if arrays["y"].dtype.kind != "f" or arrays["scores"].dtype.kind != "f":
            raise CalibratorError("labelled scores must be float arrays")
        start = str(arrays["period_start"])
        try:
            period_start = pd.Timestamp(start) if start else None
        except ValueError:
            raise CalibratorError(f"labelled scores: unreadable period start {start!r}") from None
        return cls(
            y=arrays["y"],
            scores=arrays["scores"],
            batch_id=str(arrays["batch_id"]),
            period_start=period_start,
        )


def labelled_scores_keys(
    realised: Iterable[tuple[str, PerformanceVerdict]], version: int
) -> dict[str, str]:
    """Where the labels and scores of each batch measured with production ``version`` are.

    Args:
        realised: ``(batch, batch_performance verdict)``, oldest first.
        version: Only verdicts of this production version count; per batch the newest wins.

    Returns:
        ``batch -> scores key`` in batch order; a batch whose newest verdict has no stored
        scores (written before they were kept) is left out.
    """
    newest = {b: v for b, v in realised if v.production_version == version}
    return {b: v.scores_key for b, v in sorted(newest.items()) if v.scores_key}


def calibration_batches(
    period_start: pd.Timestamp | None, labelled: Iterable[LabelledScores]
) -> list[LabelledScores]:
    """The labelled batches the estimate of a batch starting at ``period_start`` may refit on.

    Only batches whose period starts strictly before it: never the batch's own labels, and never
    those of a later batch (a backfill or a re-run finds them already there). A batch of unknown
    period, or an estimated batch of unknown period, is never used: its order cannot be told.

    Args:
        period_start: Start of the estimated batch's period.
        labelled: Candidate sets, each with its ``period_start``.

    Returns:
        The usable sets, oldest first (then by batch id).
    """
    if period_start is None:
        return []
    usable = [s for s in labelled if s.period_start is not None and s.period_start < period_start]
    return sorted(usable, key=lambda s: (s.period_start, s.batch_id))


@dataclass(frozen=True)
class Calibration:
    """The calibrator a batch's estimate used, and what it was fitted on.

    Attributes:
        calibrator: The map from raw score to calibrated probability. Its reference AUC and
            positive rate are always the test split's, so the sensor's floor does not move as
            labelled batches are added.
        batches: Labelled batches refitted on besides the test split, oldest first (empty: the
            test-split calibration alone).
        labelled_rows: Rows of those batches.
    """

    calibrator: ScoreCalibrator
    batches: tuple[str, ...] = ()
    labelled_rows: int = 0

    def describe(self) -> str:
        """One line for people: what the calibration was fitted on."""
        base = f"isotonic on the test split ({self.calibrator.reference_rows:,} rows)"
        if not self.batches:
            return f"{base}; no labelled batch of this model before this one"
        return (
            f"{base} + {len(self.batches)} labelled batch(es) of this model before this one "
            f"({self.labelled_rows:,} rows, {self.batches[0]} .. {self.batches[-1]})"
        )


def recalibrate(
    base: ScoreCalibrator,
    reference: LabelledScores | None,
    labelled: Sequence[LabelledScores],
) -> Calibration:
    """Refit the isotonic calibration on the test split plus the labelled batches that arrived.

    P(y | score) drifts while a model serves; every batch whose labels arrived is more data on
    it (measured in ``benchmarks/estimated_performance.py``: flights MAE 0.051 -> 0.046,
    synthetic 0.012 -> 0.0074, near the noise floor). The pooled fit is the benchmark's: one
    isotonic regression over the test rows then the batches' rows, in time order.

    Args:
        base: The test-split calibrator (:func:`calibrate_on_test_split`), used as it is when
            no batch is given.
        reference: The test split's labels and scores; required with batches.
        labelled: The batches to add (:func:`calibration_batches` decides which may be used).

    Returns:
        The calibration, with the test split's reference AUC, rows and positive rate.

    Raises:
        ValueError: if batches are given without the reference rows.
    """
    if not labelled:
        return Calibration(calibrator=base)
    if reference is None:
        raise ValueError("refitting the calibration needs the test split's labels and scores")
    sets = [reference, *labelled]
    fitted = fit_calibrator(
        np.concatenate([s.arrays()[0] for s in sets]),
        np.concatenate([s.arrays()[1] for s in sets]),
    )
    y = reference.arrays()[0]
    calibrator = ScoreCalibrator(
        thresholds=fitted.thresholds,
        probabilities=fitted.probabilities,
        reference_auc=base.reference_auc,
        reference_rows=reference.rows,
        reference_positive_rate=float(y.mean()) if len(y) else base.reference_positive_rate,
    )
    return Calibration(
        calibrator=calibrator,
        batches=tuple(b.batch_id for b in labelled),
        labelled_rows=sum(b.rows for b in labelled),
    )


@dataclass(frozen=True)
class EstimatedAssessment:
    """What :func:`assess_estimated_performance` concluded about one unlabelled batch.

    Attributes:
        estimate: The estimate and its reference.
        verdict: The typed record the sensor and the replay read.
        floor: The effective floor: the higher of ``estimated_relative_auc_floor`` x the
            reference AUC and ``estimated_auc_floor`` (:func:`estimated_auc_floor`).
    """

    estimate: PerformanceEstimate
    verdict: EstimatedPerformanceVerdict
    floor: float

    def chart(
        self, history: Mapping[str, tuple[float, float | None]], partition: str, title: str
    ) -> bytes:
        """The estimate over the last :data:`HISTORY_BATCHES` batches, this one included.

        Args:
            history: Estimated and realised AUC (``None`` before labels) of earlier batches.
            partition: This batch (its realised AUC is not known yet).
            title: Chart title.
        """
        points = {**history, partition: (self.estimate.estimated_auc, None)}
        periods = sorted(points)[-HISTORY_BATCHES:]
        return plot_estimated_history(
            periods,
            [points[p][0] for p in periods],
            [points[p][1] for p in periods],
            reference_auc=self.estimate.reference_auc,
            floor=self.floor,
            title=title,
        )


def assess_estimated_performance(
    calibrator: ScoreCalibrator,
    scores: np.ndarray,
    policy: TriggerPolicy,
    *,
    production_version: int,
    calibrator_key: str,
    calibration_batches: Sequence[str] = (),
) -> EstimatedAssessment:
    """Estimate the production model's AUC on a batch and decide whether it degraded.

    Args:
        calibrator: The model's calibrator (:func:`calibrate_on_test_split`, or refitted with
            the labelled batches that arrived: :func:`recalibrate`).
        scores: The model's raw scores on the batch.
        policy: The trigger policy (``estimated_relative_auc_floor``, ``estimated_auc_floor``,
            ``estimated_min_rows``).
        production_version: The estimated model.
        calibrator_key: Where the test-split calibrator is stored (recorded in the verdict).
        calibration_batches: Labelled batches the calibration was refitted on (recorded).

    Returns:
        ``degraded`` or ``ok``; ``no_verdict`` with too few rows or an undefined estimate.
    """
    estimate = estimate_performance(calibrator, scores)
    degraded, why = estimated_performance_degraded(
        estimate,
        relative_floor=policy.estimated_relative_auc_floor,
        auc_floor=policy.estimated_auc_floor,
        min_rows=policy.estimated_min_rows,
    )
    floor = estimated_auc_floor(
        estimate.reference_auc,
        relative_floor=policy.estimated_relative_auc_floor,
        auc_floor=policy.estimated_auc_floor,
    )
    measured = estimate.n_rows >= policy.estimated_min_rows and not math.isnan(
        estimate.estimated_auc
    )
    verdict = EstimatedPerformanceVerdict(
        status="degraded" if degraded else ("ok" if measured else "no_verdict"),
        reason=why,
        estimated_auc=estimate.estimated_auc,
        reference_auc=estimate.reference_auc,
        floor=floor,
        expected_positive_rate=estimate.expected_positive_rate,
        rows=estimate.n_rows,
        production_version=production_version,
        calibrator_key=calibrator_key,
        calibration_batches=tuple(calibration_batches),
    )
    return EstimatedAssessment(estimate=estimate, verdict=verdict, floor=floor)


def estimate_history(
    estimated: Iterable[tuple[str, EstimatedPerformanceVerdict]],
    realised: Iterable[tuple[str, PerformanceVerdict]],
    version: int,
) -> dict[str, tuple[float, float | None]]:
    """Estimated and realised AUC per batch measured with production ``version``.

    Args:
        estimated: ``(batch, batch_estimated_performance verdict)``, oldest first.
        realised: ``(batch, batch_performance verdict)``, oldest first.
        version: Only verdicts of this production version count; per batch the newest wins
            (a batch whose newest estimate gave no verdict is left out).

    Returns:
        ``batch -> (estimated AUC, realised AUC or None)`` for the last
        :data:`HISTORY_BATCHES` batches with an estimate, in batch order.
    """
    newest_estimate = {b: v for b, v in estimated if v.production_version == version}
    newest_realised = {b: v for b, v in realised if v.production_version == version}
    aucs = {b: v.estimated_auc for b, v in newest_estimate.items() if v.measured}
    return {
        b: (aucs[b], newest_realised[b].auc if b in newest_realised else None)
        for b in sorted(aucs)[-HISTORY_BATCHES:]
    }
