"""Which data-drift rule should trigger retraining? Candidates measured on flights and synthetic.

A fast, Dagster-free simulation of the replay (same core functions: rolling 8-batch window,
LightGBM with num_threads=1, ``compute_drift`` against the served model's training rows). Each
period is scored by the model serving when it arrived; a policy that fires on period t trains a
candidate through t (its test set is batch t) and the production gate decides, with the same rule
(``core.promotion.decide_promotion``: AUC >= 0.99 x the champion's on that test set) as
``retraining replay``, which this simulation reproduces period for period (flights, 2026-12-02:
drift 14 retrainings / 11 promotions, mean AUC 0.6782; weekly 44 / 36, 0.6913). A promoted
candidate serves from t+1 on; after a rejection the champion keeps serving and the triggers keep
comparing against it. ``--no-gate`` promotes every candidate (compares triggers alone, as the
first version of this benchmark did). Models are cached by their as-of batch, so every policy
shares them and a full run trains each model at most once.

Rules (drift policy = retrain when the rule fires on the new batch):
- ``any_psi``: some feature's PSI > 0.2 (the old default);
- ``ks``: the KS / chi-square rule (Holm, D >= 0.1), share of drifted features >= 0.3;
- ``importance``: importance-weighted share of PSI/KS-drifted features >= 0.3;
- ``no_calendar``: any_psi without calendar-like features;
- ``calibrated``: PSI above each feature's calibrated threshold (max(0.2, 1.5 x q99 of
  leave-one-period-out PSI in the reference)), any feature, no calendar;
- ``matters_q<quantile>_m<margin>_s<share>[_c<correlation>]``: calibrated thresholds (max(0.2,
  margin x the quantile of the leave-one-period-out PSIs)) + gain-importance share of the
  features past them >= share + no calendar; with ``_c``, a drifted feature also counts the
  importance of the features it correlates with (|Spearman| >= correlation in the reference);
  ``matters_q75_m1.5_s0.1_c0.7`` is the default (settings.TriggerPolicy),
  ``matters_q75_m1.5_s0.1`` the one before (no sharing), ``matters_q99_m1.5_s0.05`` the first.
Label-free candidates to catch what the default misses (``CANDIDATES``: domain classifier,
score distribution, feature contributions; ``A|B`` fires when either fires) are measured only when
named in ``--rules`` (slow: ~20 min for the one-start flights table on the shared box, the
9-start table and the synthetic targets far longer); none met the flights target (README).
Plus ``performance`` (AUC < 0.6 or < 0.95 x AUC at promotion, labelled), ``combined``
(``matters`` or performance, with the weekly fallback when 72 h passed; on weekly batches that
means weekly), ``estimated`` (CBPE estimated AUC < max(0.95 x the AUC on the model's test week,
0.6), no labels; the calibration refitted on the served model's earlier labelled batches, as
``batch_estimated_performance`` does), ``estimated_relative`` (the same without the absolute
floor ``estimated_auc_floor``, as served before 2026-12-02), ``estimated_floor<x>`` (absolute
floor x instead of 0.6: the sensitivity of the choice, ``FLOOR_SWEEP``, with ``--estimated-only``),
``estimated_test_split`` (relative floor alone with the test-split calibration alone, as the asset
did before the refit) and fixed schedules ``every_2`` /
``every_3`` (retrain every 2nd / 3rd period) to show what the timing of the same number of
retrainings is worth.

Flights' mean AUC depends a lot on *which* weeks a policy retrains on (every 4th week from week
12 gives 96% of weekly's gain, from week 13 80%), so the flights table is repeated from 9 start
weeks (the first model trained through week 8, 9, ..., 16) and the gain pooled over them.

    nice .venv/bin/python benchmarks/drift_triggers.py --flights data/batches   # ~10 min
    nice .venv/bin/python benchmarks/drift_triggers.py --synthetic-only         # ~3 min
    nice .venv/bin/python benchmarks/drift_triggers.py --flights-only --rules "score_psi,..."
    nice .venv/bin/python benchmarks/drift_triggers.py --estimated-only     # estimated rules only

Prints, per dataset and policy: retrainings, promotions, mean AUC, share of weekly's AUC gain
over never, retrainings per 0.01 AUC; and the synthetic targets (stationary: drift-triggered
retrainings over 52 periods x 5 seeds; planted shift on x0 (important) and x4 (no effect): first
firing period); for the estimated rules (``ESTIMATED``) the same synthetic checks counting every
retraining, plus stationary histories with noisier labels (the model's AUC near 0.64 and 0.61,
close to the absolute floor).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

os.environ.setdefault("OMP_NUM_THREADS", "1")

from retraining_assets.core import synthetic
from retraining_assets.core.batches import batch_period, collect_dataset, list_batches, read_batch
from retraining_assets.core.drift import DriftPolicy, build_reference, compute_drift
from retraining_assets.core.drift.statistics import psi as psi_of
from retraining_assets.core.drift_matters import (
    calendar_like,
    drift_that_matters,
    reference_correlations,
    reference_psis,
    thresholds_from_psis,
)
from retraining_assets.core.evaluation import compute_metrics, roc_auc
from retraining_assets.core.performance_estimation import (
    Calibration,
    LabelledScores,
    ScoreCalibrator,
    assess_estimated_performance,
    calibration_batches,
    fit_calibrator,
    recalibrate,
)
from retraining_assets.core.promotion import GatePolicy, ModelScore, decide_promotion
from retraining_assets.core.strategies import plan_training
from retraining_assets.core.training import Scorer, TrainParams, train_model
from retraining_assets.settings import BATCH_COLUMN, SPLIT_COLUMN, DatasetSchema, TriggerPolicy

#: The ``matters`` family: (quantile of the leave-one-out PSIs, margin, importance share,
#: correlation from which features share importance (0: none)); share 0 means any feature past
#: its threshold, unweighted ("calibrated").
MATTERS = {
    "calibrated": (0.99, 1.5, 0.0, 0.0),
    "matters_q99_m1.5_s0.05": (0.99, 1.5, 0.05, 0.0),  # the first default
    "matters_q99_m1.5_s0.1": (0.99, 1.5, 0.1, 0.0),
    "matters_q99_m1_s0.02": (0.99, 1.0, 0.02, 0.0),
    "matters_q90_m1_s0.1": (0.9, 1.0, 0.1, 0.0),
    "matters_q90_m1.5_s0.1": (0.9, 1.5, 0.1, 0.0),
    "matters_q75_m1.25_s0.1": (0.75, 1.25, 0.1, 0.0),
    "matters_q75_m1.5_s0.05": (0.75, 1.5, 0.05, 0.0),
    "matters_q75_m1.5_s0.1": (0.75, 1.5, 0.1, 0.0),  # the second default (no sharing)
    "matters_q75_m1.5_s0.2": (0.75, 1.5, 0.2, 0.0),
    "matters_q75_m2_s0.1": (0.75, 2.0, 0.1, 0.0),
    "matters_q75_m1.5_s0.1_c0.6": (0.75, 1.5, 0.1, 0.6),
    "matters_q75_m1.5_s0.1_c0.7": (0.75, 1.5, 0.1, 0.7),  # the default (settings.TriggerPolicy)
    "matters_q75_m1.5_s0.1_c0.8": (0.75, 1.5, 0.1, 0.8),
    "matters_q75_m1.25_s0.1_c0.7": (0.75, 1.25, 0.1, 0.7),
    "matters_q75_m1.5_s0.05_c0.7": (0.75, 1.5, 0.05, 0.7),
    "matters_q75_m1.5_s0.2_c0.7": (0.75, 1.5, 0.2, 0.7),
}
DEFAULT_RULE = "matters_q75_m1.5_s0.1_c0.7"
#: Label-free candidates measured 2026-12-02 to catch what the default misses (none did: see
#: benchmarks/README.md); not in RULES, ask for them with ``--rules`` (slow, see above). Each
#: compares the new batch with the served model's training rows and fires above a threshold
#: calibrated on the training rows' own leave-one-period-out values: the default's q75 x 1.5, or
#: with ``_max`` their maximum. ``domain_*``: 2 x (AUC - 0.5) of a small LightGBM classifier
#: telling the batch from the reference (out of fold), on all monitored (non-calendar) features or
#: on the ones the model uses (gain share >= USED); ``score_psi`` / ``score_ks``: the served
#: model's score distribution; ``contrib``: sum over features of the shift of their mean
#: contribution to the log-odds (LightGBM ``pred_contrib``, calendar features left out).
CANDIDATES = (
    "domain_all",
    "domain_used",
    "domain_used_max",
    "score_psi",
    "score_ks",
    "contrib",
    "contrib_max",
)
#: The statistics behind CANDIDATES.
STATISTICS = ("domain_all", "domain_used", "score_psi", "score_ks", "contrib")
#: ``A|B`` (any rule names) fires when rule A or rule B fires; these were measured.
COMBOS = tuple(f"{DEFAULT_RULE}|{c}" for c in ("domain_used", "score_psi", "contrib"))
RULES = ("any_psi", "ks", "importance", "no_calendar", *MATTERS)
#: Policies that are not data-drift rules.
OTHERS = (
    "performance",
    "estimated",
    "estimated_relative",
    "estimated_test_split",
    "every_2",
    "every_3",
    "combined",
)
#: Other absolute floors of the estimated rule, to see how much the choice of 0.6 matters.
FLOOR_SWEEP = ("estimated_floor0.55", "estimated_floor0.65", "estimated_floor0.7")
#: The label-free estimated rules (and the labelled one to compare), for ``--estimated-only``.
ESTIMATED = (
    "performance",
    "estimated",
    "estimated_relative",
    "estimated_test_split",
    *FLOOR_SWEEP,
)
#: Policy paths on which the CBPE estimate's error is printed.
ESTIMATE_PATHS = ("never", "weekly", "estimated", "estimated_relative", "estimated_test_split")
#: The estimated rule as served (settings: relative and absolute floor).
WITH_FLOOR = TriggerPolicy()
#: Label noise of the noisier stationary synthetic histories (``DriftSpec.noise``; 1 is clean):
#: the model's AUC is about 0.64 and 0.61 there, against about 0.82 on clean data.
NOISY = (3.0, 4.0)
WINDOW = 8
INITIAL = 9
#: Start weeks of the robustness table (the first model is trained through this batch index).
STARTS = tuple(range(INITIAL - 1, INITIAL + 8))
#: Planted covariate shift, in standard deviations: far enough that the trees extrapolate flat.
SHIFT = 3.0


@dataclass
class Served:
    """A trained model with what the drift rules need."""

    scorer: Scorer
    profile: object
    psis: dict[str, list[float]]
    importance: dict[str, float]
    auc_at_promotion: float
    calibrator: ScoreCalibrator  # isotonic on its test split, as the asset first fits it
    reference: LabelledScores  # the test split's labels and scores (the refit starts from them)
    correlations: dict[str, dict[str, float]]
    score: ModelScore  # on its own test batch, as the gate sees a candidate
    train_rows: pd.DataFrame | None = None  # for the label-free candidates
    candidates: object = None  # CandidateStats, when a label-free candidate asked


@dataclass
class Simulation:
    """Models and drift results cached across policies for one history."""

    schema: DatasetSchema
    frames: dict[str, pd.DataFrame]
    ids: list[str]
    models: dict[int, Served] = field(default_factory=dict)
    verdicts: dict[tuple[int, int], dict[str, bool]] = field(default_factory=dict)
    aucs: dict[tuple[int, int], float] = field(default_factory=dict)
    scores: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    #: (served, t, refitted) -> the calibration the estimate of batch t used.
    calibrations: dict[tuple[int, int, bool], Calibration] = field(default_factory=dict)
    #: (served, t, refitted, absolute floor) -> estimated AUC and whether the rule fires.
    estimated: dict[tuple[int, int, bool, float], tuple[float, bool]] = field(default_factory=dict)
    log_losses: dict[tuple[int, int], float] = field(default_factory=dict)
    trainings: int = 0
    gated: bool = True

    def model(self, as_of: int) -> Served:
        """The rolling model trained through batch ``as_of`` (its last batch is the test set)."""
        if as_of not in self.models:
            schema = self.schema
            plan = plan_training(self.ids, "rolling", as_of=self.ids[as_of], window_batches=WINDOW)
            data = collect_dataset(
                {b: self.frames[b] for b in plan.window.all_batches}, plan.window, schema
            )
            train = data[data[SPLIT_COLUMN] == "train"]
            test = data[data[SPLIT_COLUMN] == "test"]
            model = train_model(train, schema, TrainParams(num_threads=1))
            scorer = Scorer(model.booster, schema)
            test_scores = scorer.predict(test)
            test_y = test[schema.target].to_numpy(dtype="float64")
            metrics = compute_metrics(test_y, test_scores)
            auc = metrics.auc
            numeric, categorical = list(schema.numeric_features), list(schema.categorical_features)
            gains = model.booster.feature_importance(importance_type="gain")
            total = float(sum(gains)) or 1.0
            self.models[as_of] = Served(
                scorer=scorer,
                profile=build_reference(train, numeric, categorical),
                psis=reference_psis(train, numeric, categorical, BATCH_COLUMN),
                importance={
                    n: float(g) / total
                    for n, g in zip(model.booster.feature_name(), gains, strict=True)
                },
                auc_at_promotion=auc,
                calibrator=fit_calibrator(test_y, test_scores),
                reference=LabelledScores(y=test_y, scores=test_scores),
                correlations=reference_correlations(train, numeric),
                # Latency is not simulated: no candidate of the replays failed that rule.
                score=ModelScore(auc=auc, log_loss=metrics.log_loss, p95_latency_ms=0.0),
                train_rows=train,
            )
            self.trainings += 1
        return self.models[as_of]

    def predict(self, served: int, t: int) -> np.ndarray:
        """Raw scores of the model trained through ``served`` on batch ``t`` (cached)."""
        key = (served, t)
        if key not in self.scores:
            self.scores[key] = self.model(served).scorer.predict(self.frames[self.ids[t]])
        return self.scores[key]

    def auc(self, served: int, t: int) -> float:
        """AUC of the model trained through ``served`` on batch ``t``."""
        key = (served, t)
        if key not in self.aucs:
            y = self.frames[self.ids[t]][self.schema.target].to_numpy()
            metrics = compute_metrics(y, self.predict(served, t))
            self.aucs[key], self.log_losses[key] = metrics.auc, metrics.log_loss
        return self.aucs[key]

    def labelled(self, served: int, t: int) -> LabelledScores:
        """Batch ``t``'s labels and the scores of the model trained through ``served``.

        What ``batch_performance`` keeps per batch and production version in the replay.
        """
        batch = self.ids[t]
        period = batch_period(batch, None)
        return LabelledScores(
            y=self.frames[batch][self.schema.target].to_numpy(dtype="float64"),
            scores=self.predict(served, t),
            batch_id=batch,
            period_start=None if period is None else period[0],
        )

    def promotes(self, served: int, t: int) -> bool:
        """The production gate on the candidate trained through ``t`` against ``served``.

        Both are scored on batch ``t``, the candidate's test set, as ``evaluation_report`` does;
        the rule is ``core.promotion.decide_promotion`` with the default policy.
        """
        if not self.gated:
            return True
        champion_auc = self.auc(served, t)
        champion = ModelScore(champion_auc, self.log_losses[(served, t)], 0.0)
        candidate = self.model(t).score
        decision = decide_promotion(candidate, champion, candidate, GatePolicy())
        return decision.promote

    def estimate(
        self,
        served: int,
        t: int,
        refit: bool = True,
        auc_floor: float = WITH_FLOOR.estimated_auc_floor,
    ) -> tuple[float, bool]:
        """CBPE on batch ``t``: the estimated AUC and whether the estimated rule fires.

        As ``batch_estimated_performance`` does: the test-split calibrator refitted
        (``core.performance_estimation.recalibrate``) on every batch the model served before
        ``t`` (a model serving at ``t`` has served every batch since its test week, labels
        arrive with the batch as in the replay, and ``calibration_batches`` keeps the ones
        before ``t``), then ``assess_estimated_performance`` with the default trigger policy
        (estimated AUC < max(0.95 x the test-split AUC, 0.6)). ``refit=False``: the test split
        alone (the asset before the refit); ``auc_floor``: the absolute floor (0: none, the rule
        before ``estimated_auc_floor``).
        """
        key = (served, t, refit, auc_floor)
        if key not in self.estimated:
            model = self.model(served)
            cal_key = (served, t, refit)
            if cal_key not in self.calibrations:
                labelled = [self.labelled(served, j) for j in range(served + 1, t)] if refit else []
                start = batch_period(self.ids[t], None)
                usable = calibration_batches(None if start is None else start[0], labelled)
                self.calibrations[cal_key] = recalibrate(model.calibrator, model.reference, usable)
            calibration = self.calibrations[cal_key]
            assessment = assess_estimated_performance(
                calibration.calibrator,
                self.predict(served, t),
                dataclasses.replace(WITH_FLOOR, estimated_auc_floor=auc_floor),
                production_version=served,
                calibrator_key="",
                calibration_batches=calibration.batches,
            )
            self.estimated[key] = (
                assessment.estimate.estimated_auc,
                assessment.verdict.degraded,
            )
        return self.estimated[key]

    def fired(self, served: int, t: int, rule: str) -> bool:
        """Whether ``rule`` fires on batch ``t`` against the model trained through ``served``."""
        if "|" in rule:
            return any(self.fired(served, t, part) for part in rule.split("|"))
        if rule in CANDIDATES:
            return candidate_fires(self, served, t, rule)
        key = (served, t)
        if key not in self.verdicts:
            model = self.model(served)
            frame = self.frames[self.ids[t]]
            result = compute_drift(model.profile, frame, DriftPolicy(), workers=1)  # type: ignore[arg-type]
            share = compute_drift(
                model.profile,  # type: ignore[arg-type]
                frame,
                DriftPolicy(rule="importance"),
                importance=model.importance,
                workers=1,
            )
            ks_share = sum(
                1 for f in result.features if f.p_value_adjusted is not None and f.drifted
            ) / max(1, len(result.features))
            no_cal = [f for f in result.features if not calendar_like(f.name)]
            self.verdicts[key] = {
                "any_psi": result.drifted,
                "ks": ks_share >= 0.3,
                "importance": share.drifted,
                "no_calendar": any((f.psi or 0.0) > 0.2 for f in no_cal),
                "_result": result,  # type: ignore[dict-item]
            }
        cached = self.verdicts[key]
        if rule in cached:
            return bool(cached[rule])
        model = self.model(served)
        quantile, margin, share_threshold, correlation = MATTERS[rule]
        importance = model.importance if share_threshold > 0 else {n: 1.0 for n in model.importance}
        verdict = drift_that_matters(
            cached["_result"],  # type: ignore[arg-type]
            thresholds_from_psis(model.psis, quantile),
            importance,
            margin=margin,
            share_threshold=max(share_threshold, 1e-9),
            correlations=model.correlations,
            correlation=correlation,
        )
        cached[rule] = verdict.drifted
        return verdict.drifted


#: Domain classifier: small, single-threaded, deterministic.
DOMAIN_PARAMS = {
    "objective": "binary",
    "num_leaves": 15,
    "learning_rate": 0.1,
    "min_child_samples": 50,
    "num_threads": 1,
    "verbose": -1,
    "seed": 0,
    "deterministic": True,
}
DOMAIN_TREES = 40
#: Rows per side of a domain classifier (the older side is subsampled to the newer side's size).
DOMAIN_ROWS = 3000
#: Model importance (gain share) from which a feature counts as used by the model.
USED = 0.01


def domain_gini(old: np.ndarray, new: np.ndarray, seed: int = 0) -> float:
    """2 x (AUC - 0.5) of a classifier telling ``new`` rows from ``old`` rows, out of fold.

    Balanced (both sides subsampled to the same size, at most DOMAIN_ROWS), 2-fold: each half
    is scored by the classifier trained on the other. 0 when the two are indistinguishable.
    """
    rng = np.random.default_rng(seed)
    n = min(len(old), len(new), DOMAIN_ROWS)
    a = old[rng.choice(len(old), n, replace=False)]
    b = new[rng.choice(len(new), n, replace=False)]
    x = np.vstack([a, b])
    y = np.r_[np.zeros(n), np.ones(n)]
    fold = rng.permutation(2 * n) % 2
    out = np.empty(2 * n)
    for k in (0, 1):
        train = fold != k
        booster = lgb.train(DOMAIN_PARAMS, lgb.Dataset(x[train], y[train]), DOMAIN_TREES)
        out[~train] = booster.predict(x[~train], num_threads=1)
    return max(0.0, 2.0 * (roc_auc(y, out) - 0.5))


def score_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI of ``current`` scores in the reference scores' decile bins."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return psi_of(ref / ref.sum(), cur / cur.sum())


def score_ks(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample KS statistic D between the score samples."""
    from scipy import stats

    return float(stats.ks_2samp(reference, current).statistic)


def contrib_shift(reference: np.ndarray, current: np.ndarray) -> float:
    """Sum over features of |mean contribution (log-odds) on current - on reference|."""
    return float(np.abs(current.mean(axis=0) - reference.mean(axis=0)).sum())


@dataclass
class CandidateStats:
    """Per served model: its training rows as the label-free candidates see them.

    ``loo`` holds each statistic's leave-one-period-out values within the training rows (one
    period against the others), the calibration; ``values`` caches (batch, statistic) results.
    """

    x: np.ndarray
    scores: np.ndarray
    contrib: np.ndarray
    monitored: list[int]
    used: list[int]
    loo: dict[str, list[float]]
    values: dict[tuple[int, str], float] = field(default_factory=dict)


def _statistic(
    stats_: CandidateStats,
    statistic: str,
    x: np.ndarray,
    scores: np.ndarray,
    contrib: np.ndarray,
    seed: int,
) -> float:
    """One candidate statistic of rows (x, their scores and contributions) against the reference."""
    if statistic == "domain_all":
        cols = stats_.monitored
        return domain_gini(stats_.x[:, cols], x[:, cols], seed)
    if statistic == "domain_used":
        cols = stats_.used
        return domain_gini(stats_.x[:, cols], x[:, cols], seed) if cols else 0.0
    if statistic == "score_psi":
        return score_psi(stats_.scores, scores)
    if statistic == "score_ks":
        return score_ks(stats_.scores, scores)
    return contrib_shift(stats_.contrib, contrib)


def _predict(model: Served, x: np.ndarray, monitored: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and monitored features' contributions (calendar features and the bias left out)."""
    booster = model.scorer.booster
    scores = np.asarray(booster.predict(x, num_threads=1), dtype="float64")
    contrib = np.asarray(booster.predict(x, pred_contrib=True, num_threads=1))[:, monitored]
    return scores, contrib


def _candidate_stats(sim: Simulation, served: int) -> CandidateStats:
    """The served model's :class:`CandidateStats`, computed once."""
    model = sim.model(served)
    if isinstance(model.candidates, CandidateStats):
        return model.candidates
    train = model.train_rows
    assert train is not None
    names = list(sim.schema.features)
    monitored = [j for j, n in enumerate(names) if not calendar_like(n)]
    used = [j for j in monitored if model.importance.get(names[j], 0.0) >= USED]
    x = model.scorer.encode(train)
    scores, contrib = _predict(model, x, monitored)
    periods = train[BATCH_COLUMN].to_numpy()
    loo: dict[str, list[float]] = {k: [] for k in STATISTICS}
    for i, period in enumerate(sorted(set(periods.tolist()))):
        inside = periods == period
        rest = CandidateStats(x[~inside], scores[~inside], contrib[~inside], monitored, used, {})
        for statistic in STATISTICS:
            loo[statistic].append(
                _statistic(rest, statistic, x[inside], scores[inside], contrib[inside], i)
            )
    model.candidates = CandidateStats(x, scores, contrib, monitored, used, loo)
    model.train_rows = None  # the encoded rows are all the candidates need from now on
    return model.candidates


def candidate_value(sim: Simulation, served: int, t: int, statistic: str) -> float:
    """The statistic of batch ``t`` against the served model's training rows (cached)."""
    stats_ = _candidate_stats(sim, served)
    key = (t, statistic)
    if key not in stats_.values:
        model = sim.model(served)
        x = model.scorer.encode(sim.frames[sim.ids[t]])
        scores, contrib = _predict(model, x, stats_.monitored)
        stats_.values[key] = _statistic(stats_, statistic, x, scores, contrib, 1000 + t)
    return stats_.values[key]


def candidate_threshold(sim: Simulation, served: int, rule: str) -> float:
    """Margin x quantile of the reference's leave-one-period-out values of the rule's statistic."""
    loo = _candidate_stats(sim, served).loo[rule.removesuffix("_max")]
    if rule.endswith("_max"):
        return float(np.max(loo))
    return 1.5 * float(np.quantile(loo, 0.75))


def candidate_fires(sim: Simulation, served: int, t: int, rule: str) -> bool:
    """A label-free candidate: the batch's statistic above the calibrated threshold."""
    statistic = rule.removesuffix("_max")
    return candidate_value(sim, served, t, statistic) > candidate_threshold(sim, served, rule)


@dataclass
class PolicyRun:
    """One policy over one history."""

    policy: str
    retrainings: int
    promotions: int
    drift_retrainings: int
    mean_auc: float
    aucs: list[float]
    fired_at: list[int]
    served: list[int]  # the model (trained through that batch) serving each period


def simulate(sim: Simulation, policy: str, start: int = INITIAL - 1) -> PolicyRun:
    """Walk periods start+1..end; ``policy`` is a rule of RULES or OTHERS, never or weekly."""
    served = last = start
    aucs: list[float] = []
    retrainings = promotions = drift_retrainings = 0
    fired_at: list[int] = []
    path: list[int] = []
    for t in range(start + 1, len(sim.ids)):
        auc = sim.auc(served, t)
        aucs.append(auc)
        path.append(served)
        model = sim.model(served)
        degraded = auc < 0.6 or auc < 0.95 * model.auc_at_promotion
        if policy == "never":
            fire = False
        elif policy == "weekly":
            fire = True
        elif policy == "performance":
            fire = degraded
        elif policy == "combined":
            fire = True  # weekly batches: the fallback fires every period anyway
        elif policy == "estimated":
            fire = sim.estimate(served, t)[1]
        elif policy == "estimated_relative":
            fire = sim.estimate(served, t, auc_floor=0.0)[1]
        elif policy.startswith("estimated_floor"):
            fire = sim.estimate(served, t, auc_floor=float(policy.removeprefix("estimated_floor")))[
                1
            ]
        elif policy == "estimated_test_split":
            fire = sim.estimate(served, t, refit=False, auc_floor=0.0)[1]
        elif policy.startswith("every_"):
            fire = t - last >= int(policy.removeprefix("every_"))
        else:
            fire = sim.fired(served, t, policy)
            drift_retrainings += int(fire)
        if fire:
            fired_at.append(t)
            retrainings += 1
            last = t
            if sim.promotes(served, t):
                promotions += 1
                served = t
    return PolicyRun(
        policy,
        retrainings,
        promotions,
        drift_retrainings,
        float(np.mean(aucs)),
        aucs,
        fired_at,
        path,
    )


def estimate_errors(sim: Simulation, runs: list[PolicyRun], start: int = INITIAL - 1) -> None:
    """Print the CBPE estimate's mean absolute error on each run's served (model, batch) pairs.

    With the refit (as served) and with the test-split calibration alone; the pairs are the
    ones each policy's path went through (``never``: one model for every period, so the refit
    has the most labelled batches; ``weekly``: mostly a model's first week, no refit).
    """
    print("CBPE |estimated - realised AUC| on each policy's served periods (refit / test split):")
    for run in runs:
        pairs = list(zip(run.served, range(start + 1, len(sim.ids)), strict=True))
        errors = {
            refit: [
                abs(sim.estimate(m, t, refit, auc_floor=0.0)[0] - sim.auc(m, t)) for m, t in pairs
            ]
            for refit in (True, False)
        }
        print(
            f"  {run.policy:22s} {np.mean(errors[True]):.4f} / {np.mean(errors[False]):.4f}"
            f"  (n={len(pairs)}, max {max(errors[True]):.4f} / {max(errors[False]):.4f})"
        )


def table(name: str, runs: list[PolicyRun]) -> None:
    """Print the per-policy table with the trigger-quality columns."""
    by = {r.policy: r for r in runs}
    base = by["never"].mean_auc
    weekly_gain = by["weekly"].mean_auc - base
    print(f"\n## {name}")
    print(
        "| policy | retrainings | promotions | mean AUC | share of weekly's gain | "
        "retrainings per 0.01 AUC |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in runs:
        gain = r.mean_auc - base
        share = f"{100 * gain / weekly_gain:.0f}%" if weekly_gain > 0 else "n/a"
        per = f"{r.retrainings / (gain / 0.01):.1f}" if gain > 0 else "n/a"
        print(
            f"| {r.policy} | {r.retrainings} | {r.promotions} | {r.mean_auc:.4f} | {share} | "
            f"{per} |"
        )


def flights(directory: Path, gated: bool = True, only: tuple[str, ...] = ()) -> None:
    """All policies (or ``only`` these, besides never and weekly) on the flights weekly batches."""
    from retraining_assets.settings import FLIGHTS_SCHEMA

    ids = list_batches(directory)
    frames = {b: read_batch(directory / f"{b}.parquet") for b in ids}
    sim = Simulation(FLIGHTS_SCHEMA, frames, ids, gated=gated)
    started = time.perf_counter()
    policies = ("never", "weekly", *(only or (*RULES, *OTHERS)))
    runs = [simulate(sim, p) for p in policies]
    table(
        f"flights ({len(ids) - INITIAL} periods, {sim.trainings} models trained, "
        f"{'gate as in production' if gated else 'every candidate promoted'}, "
        f"{time.perf_counter() - started:.0f}s)",
        runs,
    )
    for run in runs:
        if run.policy in (DEFAULT_RULE, *ESTIMATED[1:]):
            print(f"{run.policy} fires at: {', '.join(ids[t] for t in run.fired_at)}")
    estimate_errors(sim, [r for r in runs if r.policy in ESTIMATE_PATHS])
    model = sim.model(INITIAL - 1)
    default_q, default_m, _, _ = MATTERS[DEFAULT_RULE]
    thresholds = thresholds_from_psis(model.psis, default_q)
    print(
        f"initial model: importance and calibrated PSI thresholds "
        f"(x{default_m:g} the q{100 * default_q:g} of the leave-one-out PSIs, floor 0.2)"
    )
    for name, imp in sorted(model.importance.items(), key=lambda kv: -kv[1]):
        thr = max(0.2, default_m * thresholds.get(name, 0.0))
        cal = " (calendar: not monitored)" if calendar_like(name) else ""
        print(f"  {name:15s} importance {imp:.3f}  threshold {thr:.3f}{cal}")
    robustness(sim, [p for p in policies if p not in ("never", "weekly", "combined")])


def robustness(sim: Simulation, policies: list[str]) -> None:
    """The flights table again from each start in STARTS: retrainings and pooled gain share."""
    base = {s: simulate(sim, "never", s).mean_auc for s in STARTS}
    weekly = {s: simulate(sim, "weekly", s) for s in STARTS}
    pooled_weekly = sum(weekly[s].mean_auc - base[s] for s in STARTS)
    print(
        f"\n## flights, from {len(STARTS)} start weeks (first model through batch "
        f"{STARTS[0]}..{STARTS[-1]}): weekly gains "
        + ", ".join(f"{weekly[s].mean_auc - base[s]:.3f}" for s in STARTS)
    )
    print(
        "| policy | retrainings / weekly's | pooled share of weekly's gain | "
        "median share | worst share |"
    )
    print("|---|---:|---:|---:|---:|")
    for policy in policies:
        runs = {s: simulate(sim, policy, s) for s in STARTS}
        ratio = sum(r.retrainings for r in runs.values()) / sum(
            w.retrainings for w in weekly.values()
        )
        gains = {s: runs[s].mean_auc - base[s] for s in STARTS}
        shares = [gains[s] / (weekly[s].mean_auc - base[s]) for s in STARTS]
        print(
            f"| {policy} | {ratio:.2f} | {100 * sum(gains.values()) / pooled_weekly:.0f}% | "
            f"{100 * float(np.median(shares)):.0f}% | {100 * min(shares):.0f}% |"
        )


def _synthetic_sim(
    seed: int, periods: int, drift: synthetic.DriftSpec | None, at: int, gated: bool = True
) -> Simulation:
    history = synthetic.make_history(
        INITIAL + periods,
        2000,
        seed=seed,
        drift_from=None if drift is None else INITIAL + at,
        drift=drift or synthetic.DriftSpec(),
    )
    ids = sorted(history)
    return Simulation(synthetic.SYNTHETIC_SCHEMA, history, ids, gated=gated)


def _noisy_sim(seed: int, periods: int, noise: float, gated: bool = True) -> Simulation:
    """A stationary history whose labels are noisier than the generator's default (lower AUC)."""
    history = synthetic.make_history(
        INITIAL + periods, 2000, seed=seed, drift_from=0, drift=synthetic.DriftSpec(noise=noise)
    )
    ids = sorted(history)
    return Simulation(synthetic.SYNTHETIC_SCHEMA, history, ids, gated=gated)


def _first_firing(run: PolicyRun, at: int) -> str:
    """Period offset of the first firing from ``at`` on; "early" if it fired before."""
    if any(t < INITIAL + at for t in run.fired_at):
        return "early"
    after = [t - INITIAL - at for t in run.fired_at if t >= INITIAL + at]
    return str(after[0]) if after else "never"


def estimated_targets(seeds: int = 5, gated: bool = True) -> None:
    """The estimated rules on the synthetic checks: quiet when stationary, firing on harm.

    Every retraining counts (they are all the rule's). Stationary: the generator's clean labels
    (model AUC ~0.82, far above the absolute floor) and the noisier ``NOISY`` labels (~0.64 and
    ~0.61, where an absolute floor of 0.6 could start firing on a model that is as good as the
    data allows). Planted +3 sd shift on ``x0`` (harmful) and ``x4`` (harmless) from period 10.
    """
    print(f"\n## synthetic, estimated rules: stationary 52 periods x {seeds} seeds (retrainings)")
    print("| labels | never's mean AUC | " + " | ".join(ESTIMATED) + " |")
    print("|---|---:|" + "---:|" * len(ESTIMATED))
    for noise in (1.0, *NOISY):
        totals = dict.fromkeys(ESTIMATED, 0)
        base: list[float] = []
        for seed in range(seeds):
            sim = (
                _synthetic_sim(seed, 52, None, 0, gated)
                if noise == 1.0
                else _noisy_sim(seed, 52, noise, gated)
            )
            base.append(simulate(sim, "never").mean_auc)
            for policy in ESTIMATED:
                totals[policy] += simulate(sim, policy).retrainings
        print(
            f"| noise {noise:g} | {np.mean(base):.4f} | "
            + " | ".join(str(totals[p]) for p in ESTIMATED)
            + " |"
        )
    print(
        f"\n## synthetic, estimated rules: +{SHIFT:g} sd shift from period 10 of 20, {seeds} seeds"
    )
    for column in ("x0", "x4"):
        spec = synthetic.DriftSpec(covariate_shift=SHIFT, shift_columns=(column,))
        first: dict[str, list[str]] = {p: [] for p in ESTIMATED}
        for seed in range(seeds):
            sim = _synthetic_sim(100 + seed, 20, spec, 10, gated)
            for policy in ESTIMATED:
                first[policy].append(_first_firing(simulate(sim, policy), 10))
        print(f"  shift on {column}:")
        for policy in ESTIMATED:
            print(f"    {policy:22s} first fires at offset {', '.join(first[policy])}")


def synthetic_targets(seeds: int = 5, gated: bool = True, drift: bool = True) -> None:
    """Stationary false alarms, and the planted shifts on an important and a useless feature.

    ``drift=False`` measures the estimated rules alone (``--estimated-only``).
    """
    estimated_targets(seeds, gated)
    if not drift:
        print("\n## synthetic, estimated policies: shift on x0 from period 10 of 20, seed 100")
        sim = _synthetic_sim(
            100, 20, synthetic.DriftSpec(covariate_shift=SHIFT, shift_columns=("x0",)), 10, gated
        )
        runs = [simulate(sim, p) for p in ("never", "weekly", *ESTIMATED)]
        table("synthetic x0 shift", runs)
        estimate_errors(sim, [r for r in runs if r.policy in ESTIMATE_PATHS])
        return
    print("\n## synthetic, stationary: 52 periods x 5 seeds (drift-triggered retrainings)")
    totals = {rule: 0 for rule in RULES}
    for seed in range(seeds):
        sim = _synthetic_sim(seed, 52, None, 0, gated)
        for rule in RULES:
            totals[rule] += simulate(sim, rule).drift_retrainings
    for rule in RULES:
        print(f"  {rule:12s} {totals[rule]} retrainings")
    print(f"\n## synthetic, planted covariate shift (+{SHIFT:g} sd) from period 10 of 20, 5 seeds")
    for column in ("x0", "x4"):
        spec = synthetic.DriftSpec(covariate_shift=SHIFT, shift_columns=(column,))
        first: dict[str, list[int | None]] = {rule: [] for rule in RULES}
        drop: list[float] = []
        for seed in range(seeds):
            sim = _synthetic_sim(100 + seed, 20, spec, 10, gated)
            never = simulate(sim, "never")
            drop.append(float(np.mean(never.aucs[:10]) - np.mean(never.aucs[10:])))
            for rule in RULES:
                run = simulate(sim, rule)
                after = [t - INITIAL - 10 for t in run.fired_at if t >= INITIAL + 10]
                before = [t for t in run.fired_at if t < INITIAL + 10]
                first[rule].append(None if before else (after[0] if after else -1))
        print(f"  shift on {column}: AUC of the unretrained model falls by {np.mean(drop):+.3f}")
        for rule in RULES:
            shown = [
                "early" if v is None else ("never" if v == -1 else str(v)) for v in first[rule]
            ]
            print(f"    {rule:12s} fires at period offset {', '.join(shown)} (0 = first shifted)")
    print("\n## synthetic, all policies: planted shift on x0 from period 10 of 20, seed 100")
    sim = _synthetic_sim(
        100, 20, synthetic.DriftSpec(covariate_shift=SHIFT, shift_columns=("x0",)), 10, gated
    )
    runs = [simulate(sim, p) for p in ("never", "weekly", *RULES, *OTHERS)]
    table("synthetic x0 shift", runs)
    estimate_errors(sim, [r for r in runs if r.policy in ESTIMATE_PATHS])


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> None:
    """Run the measurements."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--flights", type=Path, default=Path("data/batches"))
    parser.add_argument("--synthetic-only", action="store_true")
    parser.add_argument("--flights-only", action="store_true")
    parser.add_argument(
        "--estimated-only",
        action="store_true",
        help="only the estimated rules (and performance) besides never and weekly",
    )
    parser.add_argument(
        "--no-gate", action="store_true", help="promote every candidate (triggers alone)"
    )
    parser.add_argument(
        "--policies",
        default="",
        help="flights: only these policies besides never and weekly (comma list)",
    )
    parser.add_argument(
        "--rules",
        help="comma list: measure only these drift rules (RULES, CANDIDATES, or A|B for either "
        "firing); the default rule is always kept",
    )
    args = parser.parse_args(argv)
    if args.rules:
        global RULES
        wanted = [r for r in args.rules.split(",") if r]
        known = {*RULES, *CANDIDATES}
        unknown = [r for r in wanted if any(part not in known for part in r.split("|"))]
        if unknown:
            parser.error(f"unknown rules: {', '.join(unknown)}")
        RULES = tuple(dict.fromkeys([DEFAULT_RULE, *wanted]))
    if not args.synthetic_only:
        only = tuple(p for p in args.policies.split(",") if p)
        if args.estimated_only:
            only = only or ESTIMATED
        flights(args.flights, gated=not args.no_gate, only=only)
    if not args.flights_only:
        synthetic_targets(gated=not args.no_gate, drift=not args.estimated_only)


if __name__ == "__main__":
    main()
