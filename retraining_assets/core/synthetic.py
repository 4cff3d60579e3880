"""Synthetic batches with controllable drift, for tests and drift/replay experiments.

Rows come from a fixed logistic model over five numeric features (``x0`` to ``x4``) and two
categorical ones (``c0``, ``c1``)::

    logit = intercept + 1.4*x0 + 0.8*x1 - 1.2*(x2 - 0.5) + 0.5*(x3 - 1)*x1 + effect(c0) + effect(c1)
    label = 1 if logit + noise * e > 0 else 0,  e ~ Logistic(0, 1)

With ``noise=1`` the label is a Bernoulli draw with probability ``sigmoid(logit)``. ``x4`` is pure
noise (no effect). About a third of the labels are 1, and a model trained on clean data reaches a
test AUC of about 0.82 (LightGBM or a logistic regression).

The random draws do not depend on the drift: the same seed with a different :class:`DriftSpec`
gives the same underlying sample, so a difference between two batches is the drift alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retraining_assets.core.batches import write_parquet_atomic
from retraining_assets.settings import DatasetSchema

#: Schema of the synthetic batches.
SYNTHETIC_SCHEMA = DatasetSchema(
    timestamp="ts",
    target="label",
    id_column="row_id",
    numeric_features=("x0", "x1", "x2", "x3", "x4"),
    categorical_features=("c0", "c1"),
    numeric_ranges={"x2": (0.0, 1.0), "x3": (0.0, 50.0)},
    required_non_null=("x0", "x1", "x2", "x3", "x4", "c0", "c1"),
    min_rows=50,
)

#: Levels and sampling probabilities of ``c0`` and ``c1``.
C0_LEVELS = ("a", "b", "c", "d", "e")
C0_PROBS = (0.35, 0.25, 0.2, 0.12, 0.08)
C1_LEVELS = ("u", "v", "w")
C1_PROBS = (0.5, 0.3, 0.2)

_INTERCEPT = -1.0
_COEF_X0 = 1.4
_COEF_X1 = 0.8
_COEF_X2 = -1.2
_COEF_X3_X1 = 0.5
_C0_EFFECT = np.array([-0.6, -0.2, 0.0, 0.4, 0.8])
_C1_EFFECT = np.array([0.3, 0.0, -0.5])


@dataclass(frozen=True)
class DriftSpec:
    """How a batch departs from the clean data-generating process.

    Attributes:
        covariate_shift: Mean shift of the ``shift_columns`` (default ``x0`` and ``x1``), in
            standard deviations (P(x) changes, P(y|x) stays).
        label_shift: Added to the intercept of the logit, which moves the base rate.
        concept_flip: From 0 to 1, turns the coefficient of ``x0`` (the most important feature)
            from ``+b`` to ``(1 - 2 * concept_flip) * b``: 0.5 removes it, 1 reverses it. P(y|x)
            changes while P(x) stays.
        noise: Scale of the logistic noise on the logit (1 is a plain logistic model, 0 makes the
            label a deterministic function of the features, larger values blur it).
        shift_columns: The numeric features ``covariate_shift`` moves (``x4`` has no effect on
            the label: shifting it alone is a drift that cannot hurt a model).

    """

    covariate_shift: float = 0.0
    label_shift: float = 0.0
    concept_flip: float = 0.0
    noise: float = 1.0
    shift_columns: tuple[str, ...] = ("x0", "x1")

    def __post_init__(self) -> None:
        """Reject values outside their meaningful range."""
        unknown = set(self.shift_columns) - set(SYNTHETIC_SCHEMA.numeric_features)
        if unknown:
            raise ValueError(f"shift_columns must be numeric features, got {sorted(unknown)}")
        if not 0.0 <= self.concept_flip <= 1.0:
            raise ValueError(f"concept_flip must be within [0, 1], got {self.concept_flip}")
        if self.noise < 0.0:
            raise ValueError(f"noise must be non-negative, got {self.noise}")


def batch_seed(seed: int, index: int) -> int:
    """Derive a per-batch seed from a history seed and the batch position.

    Args:
        seed: Seed of the whole history.
        index: 0-based position of the batch.

    Returns:
        A 32-bit seed, independent across indices.

    """
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def make_batch(
    n_rows: int,
    start: pd.Timestamp,
    *,
    seed: int,
    drift: DriftSpec = DriftSpec(),
    days: int = 7,
    first_row_id: int = 0,
) -> pd.DataFrame:
    """Generate one batch of ``n_rows`` rows with the columns of :data:`SYNTHETIC_SCHEMA`.

    Args:
        n_rows: Number of rows.
        start: First instant of the batch; timestamps fall in ``[start, start + days)``.
        seed: Seed of the random generator (same seed, same rows).
        drift: Drift applied to this batch.
        days: Length of the period covered by the batch.
        first_row_id: ``row_id`` of the first row; ids increase with time.

    Returns:
        Rows sorted by ``ts``: ``row_id`` and ``label`` int64, ``ts`` naive datetime64[ns],
        ``x0``..``x4`` float64, ``c0``/``c1`` python strings (object dtype).

    Raises:
        ValueError: if ``n_rows`` is negative or ``days`` smaller than 1.

    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be non-negative, got {n_rows}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    draws = _draw(np.random.default_rng(seed), n_rows, days)
    x = {
        name: values + (drift.covariate_shift if name in drift.shift_columns else 0.0)
        for name, values in draws.x.items()
    }
    label = _label(x, draws, drift)
    ts = pd.Timestamp(start).as_unit("ns") + pd.to_timedelta(draws.seconds, unit="s")
    frame = pd.DataFrame(
        {
            "row_id": np.arange(first_row_id, first_row_id + n_rows, dtype="int64"),
            "ts": np.asarray(ts, dtype="datetime64[ns]"),
            **x,
            "c0": np.array(C0_LEVELS, dtype=object)[draws.c0],
            "c1": np.array(C1_LEVELS, dtype=object)[draws.c1],
            "label": label,
        }
    )
    return frame[SYNTHETIC_SCHEMA.columns]


@dataclass(frozen=True)
class _Draws:
    """The random draws of one batch, before any drift."""

    x: dict[str, np.ndarray]  # x0..x4, in that order
    c0: np.ndarray  # level indices
    c1: np.ndarray
    eps: np.ndarray  # label noise (standard logistic)
    seconds: np.ndarray  # sorted offsets from the batch start


def _draw(rng: np.random.Generator, n_rows: int, days: int) -> _Draws:
    """All draws of a batch in a fixed order, independent of the drift (same seed, same rows)."""
    x = {
        "x0": rng.standard_normal(n_rows),
        "x1": rng.standard_normal(n_rows),
        "x2": rng.uniform(0.0, 1.0, n_rows),
        "x3": np.minimum(rng.exponential(1.0, n_rows), 50.0),
        "x4": rng.standard_normal(n_rows),
    }
    c0 = rng.choice(len(C0_LEVELS), size=n_rows, p=C0_PROBS)
    c1 = rng.choice(len(C1_LEVELS), size=n_rows, p=C1_PROBS)
    eps = rng.logistic(0.0, 1.0, n_rows)
    seconds = np.sort(rng.integers(0, days * 86_400, n_rows))
    return _Draws(x, c0, c1, eps, seconds)


def _logit(
    x: dict[str, np.ndarray], c0: np.ndarray, c1: np.ndarray, drift: DriftSpec
) -> np.ndarray:
    """The logistic model's logit on the (shifted) features, with the concept drift."""
    coef_x0 = _COEF_X0 * (1.0 - 2.0 * drift.concept_flip)
    return (
        _INTERCEPT
        + drift.label_shift
        + coef_x0 * x["x0"]
        + _COEF_X1 * x["x1"]
        + _COEF_X2 * (x["x2"] - 0.5)
        + _COEF_X3_X1 * (x["x3"] - 1.0) * x["x1"]
        + _C0_EFFECT[c0]
        + _C1_EFFECT[c1]
    )


def _label(x: dict[str, np.ndarray], draws: _Draws, drift: DriftSpec) -> np.ndarray:
    """0/1 labels of the logistic model on the (shifted) features, with the concept drift."""
    logit = _logit(x, draws.c0, draws.c1, drift)
    return (logit + drift.noise * draws.eps > 0).astype("int64")


def positive_probability(frame: pd.DataFrame, drift: DriftSpec = DriftSpec()) -> np.ndarray:
    """The true P(label = 1 | features) of rows made by :func:`make_batch` with ``drift``.

    What an oracle knows and no model can beat: an estimate of a batch's AUC built from these
    probabilities still misses the realised AUC by the sampling noise of the labels.

    Args:
        frame: Rows with the columns of :data:`SYNTHETIC_SCHEMA` (features as generated, i.e.
            after any covariate shift).
        drift: The drift the rows were generated with (its label shift, concept flip, noise).

    Returns:
        One probability per row; with ``noise == 0`` the label is certain (0 or 1).
    """
    x = {name: frame[name].to_numpy(dtype="float64") for name in ("x0", "x1", "x2", "x3")}
    c0 = frame["c0"].map({level: i for i, level in enumerate(C0_LEVELS)}).to_numpy(dtype="int64")
    c1 = frame["c1"].map({level: i for i, level in enumerate(C1_LEVELS)}).to_numpy(dtype="int64")
    logit = _logit(x, c0, c1, drift)
    if drift.noise == 0:
        return (logit > 0).astype("float64")
    return 1.0 / (1.0 + np.exp(-logit / drift.noise))


def make_history(
    n_batches: int,
    rows_per_batch: int,
    *,
    seed: int,
    start: str = "2024-01-01",
    drift_from: int | None = None,
    drift: DriftSpec = DriftSpec(),
    freq_days: int = 7,
) -> dict[str, pd.DataFrame]:
    """Generate consecutive batches, drifting from batch ``drift_from`` on.

    Args:
        n_batches: Number of batches.
        rows_per_batch: Rows in each batch.
        seed: Seed of the whole history; batch ``i`` uses :func:`batch_seed` ``(seed, i)``.
        start: Start of the first batch (ISO date).
        drift_from: 0-based index of the first drifted batch; ``None`` means no drift.
        drift: Drift applied to batches ``drift_from`` and later.
        freq_days: Days between batch starts (each batch covers that many days).

    Returns:
        Batches keyed by batch id (the ISO date of the batch start), in time order; ``row_id`` is
        unique across the history.

    """
    if n_batches < 0:
        raise ValueError(f"n_batches must be non-negative, got {n_batches}")
    if freq_days < 1:
        raise ValueError(f"freq_days must be at least 1, got {freq_days}")
    origin = pd.Timestamp(start)
    history: dict[str, pd.DataFrame] = {}
    for index in range(n_batches):
        batch_start = origin + pd.Timedelta(days=index * freq_days)
        drifted = drift_from is not None and index >= drift_from
        history[batch_start.strftime("%Y-%m-%d")] = make_batch(
            rows_per_batch,
            batch_start,
            seed=batch_seed(seed, index),
            drift=drift if drifted else DriftSpec(),
            days=freq_days,
            first_row_id=index * rows_per_batch,
        )
    return history


def write_history(history: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
    """Write each batch as ``<batch_id>.parquet`` in ``out_dir``.

    Args:
        history: Batches keyed by batch id, as returned by :func:`make_history`.
        out_dir: Folder to write into (created if needed); other files are left alone.

    Returns:
        The written files, sorted by batch id.

    """
    return [
        write_parquet_atomic(history[batch_id], out_dir / f"{batch_id}.parquet")
        for batch_id in sorted(history)
    ]
