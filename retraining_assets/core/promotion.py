"""Promotion: the gate's and the shadow period's verdicts, and the one way production changes.

:func:`decide_promotion` judges a candidate offline, :func:`shadow_verdict` a challenger after
its shadow batches; :func:`change_production` applies a promotion, a challenger or a rollback to
the production store, then moves the ``champion`` alias through the caller's function (no MLflow
import here). Every production version carries its :class:`Lineage`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from retraining_assets.core.artifacts import EvaluationReport
from retraining_assets.core.registry import ProductionRecord, ProductionStore
from retraining_assets.settings import DEFAULT_POLICY, SPLIT_COLUMN, DatasetSchema
from retraining_assets.storage import StoreError

if TYPE_CHECKING:
    # Imported where used: the definitions load this module and must not load pandas or numpy.
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    from retraining_assets.core.delong import DeLongResult
    from retraining_assets.core.evaluation import Metrics, ModelEvaluation


@dataclass(frozen=True)
class GatePolicy:
    """Rules a candidate must meet.

    Attributes:
        min_relative_auc: Candidate AUC must be at least this times the champion's (same test set).
        max_p95_latency_ms: Ceiling on the candidate's p95 single-row latency.
        min_baseline_auc_margin: With no champion, AUC must exceed the trivial baseline's by this.
        min_test_positives: Fewer positives (or negatives) in the test set: refuse to decide.
    """

    min_relative_auc: float = DEFAULT_POLICY.min_relative_auc
    max_p95_latency_ms: float = DEFAULT_POLICY.max_p95_latency_ms
    min_baseline_auc_margin: float = DEFAULT_POLICY.min_baseline_auc_margin
    min_test_positives: int = DEFAULT_POLICY.min_test_positives


@dataclass(frozen=True)
class ModelScore:
    """What the gate looks at for one model on the shared test set."""

    auc: float
    log_loss: float
    p95_latency_ms: float


@dataclass(frozen=True)
class Decision:
    """The gate's verdict with the reason for every rule it checked."""

    promote: bool
    against: str  # "champion" or "baseline"
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str:
        """``promote`` or ``reject``."""
        return "promote" if self.promote else "reject"

    def summary(self) -> str:
        """One line: verdict and reasons."""
        return f"{self.verdict} (vs {self.against}): " + "; ".join(self.reasons)


def decide_promotion(
    candidate: ModelScore,
    champion: ModelScore | None,
    baseline: ModelScore,
    policy: GatePolicy | None = None,
    *,
    identical_to_champion: bool = False,
    test_counts: tuple[int, int] | None = None,
) -> Decision:
    """Decide whether ``candidate`` should become production.

    With a champion, the candidate needs AUC >= ``min_relative_auc`` x champion AUC (both measured
    on the same test set) and p95 latency within the ceiling. Without one (the very first model),
    it must beat the trivial baseline (predicting the training positive rate) by a margin in AUC
    and have a lower log loss. Any NaN metric rejects. A candidate whose bytes are those of the
    champion is rejected: promoting it would only add a version that changes nothing. With
    ``test_counts`` (positives, negatives) below ``min_test_positives`` it refuses to decide.
    """
    policy = policy or GatePolicy()
    if test_counts is not None:
        n_pos, n_neg = test_counts
        if min(n_pos, n_neg) < policy.min_test_positives:
            return Decision(
                False,
                "champion" if champion else "baseline",
                (
                    f"FAIL test set too small: {n_pos} positives, {n_neg} negatives (need "
                    f"{policy.min_test_positives} of each to compare AUCs)",
                ),
            )
    if identical_to_champion and champion is not None:
        return Decision(False, "champion", ("FAIL candidate is byte-identical to the champion",))
    reasons: list[str] = []
    ok = True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        reasons.append(("PASS " if passed else "FAIL ") + text)

    values = [candidate.auc, candidate.log_loss, candidate.p95_latency_ms]
    if any(v != v for v in values):  # NaN check without numpy
        return Decision(
            False, "champion" if champion else "baseline", ("FAIL candidate metric is NaN",)
        )

    if champion is not None:
        if champion.auc != champion.auc:
            check(False, "champion AUC is NaN on this test set: cannot compare")
        else:
            floor = policy.min_relative_auc * champion.auc
            check(
                candidate.auc >= floor,
                f"AUC {candidate.auc:.4f} {'>=' if candidate.auc >= floor else '<'} "
                f"{policy.min_relative_auc:g} x champion {champion.auc:.4f} = {floor:.4f}",
            )
        against = "champion"
    else:
        floor = baseline.auc + policy.min_baseline_auc_margin
        check(
            candidate.auc >= floor,
            f"AUC {candidate.auc:.4f} {'>=' if candidate.auc >= floor else '<'} baseline "
            f"{baseline.auc:.4f} + {policy.min_baseline_auc_margin:g}",
        )
        better = candidate.log_loss < baseline.log_loss
        check(
            better,
            f"log loss {candidate.log_loss:.4f} {'<' if better else '>='}"
            f" baseline {baseline.log_loss:.4f}",
        )
        against = "baseline"
    check(
        candidate.p95_latency_ms <= policy.max_p95_latency_ms,
        f"p95 latency {candidate.p95_latency_ms:.2f} ms "
        f"{'<=' if candidate.p95_latency_ms <= policy.max_p95_latency_ms else '>'} "
        f"{policy.max_p95_latency_ms:g} ms",
    )
    return Decision(promote=ok, against=against, reasons=tuple(reasons))


def decide_shadow(
    y_true: np.ndarray,
    champion_proba: np.ndarray,
    challenger_proba: np.ndarray,
    *,
    min_relative_auc: float = DEFAULT_POLICY.min_relative_auc,
    min_positives: int = DEFAULT_POLICY.shadow_min_positives,
) -> Decision:
    """Decide a challenger's fate after its shadow period on live, labelled rows.

    Both models scored the same rows (all shadow batches pooled). The challenger is promoted if
    its AUC is at least ``min_relative_auc`` x the champion's (the offline gate's rule), and
    retired otherwise; too few positives to measure AUC retires it too (never promote blind).
    """
    import numpy as np

    from retraining_assets.core.evaluation import roc_auc

    y = np.asarray(y_true)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos < min_positives or n_neg < min_positives:
        return Decision(
            False,
            "champion",
            (
                f"FAIL shadow set too small: {n_pos} positives, {n_neg} negatives "
                f"(need {min_positives} of each)",
            ),
        )
    champion = roc_auc(y, champion_proba)
    challenger = roc_auc(y, challenger_proba)
    floor = min_relative_auc * champion
    ok = challenger >= floor
    reason = (
        f"{'PASS' if ok else 'FAIL'} shadow AUC {challenger:.4f} {'>=' if ok else '<'} "
        f"{min_relative_auc:g} x champion {champion:.4f} = {floor:.4f} on {len(y)} live rows "
        f"({n_pos} positives)"
    )
    return Decision(ok, "champion", (reason,))


@dataclass(frozen=True)
class GateResult:
    """The candidate judged on the held-out test split: scores, verdict, plot and report."""

    candidate: ModelEvaluation
    production: ModelEvaluation | None
    baseline: Metrics
    decision: Decision
    delong: DeLongResult | None
    plot: Path | None
    report: EvaluationReport

    def run_metrics(self) -> dict[str, float]:
        """Metrics for the candidate's MLflow run (production's and DeLong's when measured)."""
        metrics = {
            "test_auc": self.candidate.metrics.auc,
            "test_log_loss": self.candidate.metrics.log_loss,
            "test_brier": self.candidate.metrics.brier,
            "p95_latency_ms": self.candidate.latency.p95_ms,
            "baseline_auc": self.baseline.auc,
            "gate_promote": float(self.decision.promote),
        }
        if self.production:
            metrics["production_auc"] = self.production.metrics.auc
            metrics["production_log_loss"] = self.production.metrics.log_loss
        if self.delong:
            metrics["delong_p_value"] = self.delong.p_value
            metrics["auc_difference"] = self.delong.difference
            metrics["auc_difference_ci_low"] = self.delong.ci_low
            metrics["auc_difference_ci_high"] = self.delong.ci_high
        return metrics


def judge_candidate(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    candidate: lgb.Booster,
    champion: tuple[ProductionRecord, lgb.Booster] | None,
    *,
    policy: GatePolicy,
    latency_calls: int,
    identical_to_champion: bool,
    plot_path: Path | None,
    test_batches: tuple[str, ...],
    mode: str,
    shadow_batches: int,
    champion_latency: bool = True,
) -> GateResult:
    """Score the candidate (and the champion) on the test split and apply the gate.

    Both models score the same rows, so their AUC difference gets a paired DeLong test (when the
    test split has more than one positive and negative); the ROC curves go to ``plot_path``
    (``None``: no plot, nothing else changes).
    Without a champion the candidate is compared with the constant baseline (the training
    positive rate). The gate reads only the candidate's latency: ``champion_latency`` False
    leaves the champion's untimed (reported as not measured).
    """
    from retraining_assets.core.evaluation import baseline_metrics, evaluate_model, plot_roc

    train = frame[frame[SPLIT_COLUMN] == "train"]
    test = frame[frame[SPLIT_COLUMN] == "test"]
    cand_eval, cand_proba = evaluate_model(
        "candidate", candidate, test, schema, latency_calls=latency_calls
    )
    y_test = test[schema.target].to_numpy()
    base = baseline_metrics(train[schema.target].to_numpy(), y_test)
    curves = {"candidate": (y_test, cand_proba)}
    prod_eval = delong = None
    if champion is not None:
        record, booster = champion
        name = f"production v{record.version}"
        prod_eval, prod_proba = evaluate_model(
            name, booster, test, schema, latency_calls=latency_calls if champion_latency else 0
        )
        curves[name] = (y_test, prod_proba)
        if 0 < y_test.sum() < len(y_test) - 1 and y_test.sum() > 1:
            from retraining_assets.core.delong import delong_test

            # Paired: both models scored the same rows, so their AUCs are correlated.
            delong = delong_test(y_test, cand_proba, prod_proba)
    decision = decide_promotion(
        _score(cand_eval),
        _score(prod_eval) if prod_eval else None,
        ModelScore(auc=base.auc, log_loss=base.log_loss, p95_latency_ms=0.0),
        policy,
        identical_to_champion=identical_to_champion,
        test_counts=(int(y_test.sum()), int(len(y_test) - y_test.sum())),
    )
    plot = (
        plot_roc(curves, plot_path, title=f"ROC on test batches {', '.join(test_batches)}")
        if plot_path is not None
        else None
    )
    report = EvaluationReport(
        candidate=cand_eval.as_dict(),
        production=prod_eval.as_dict() if prod_eval else None,
        baseline=base.as_dict(),
        production_version=champion[0].version if champion else None,
        promote=decision.promote,
        against=decision.against,
        reasons=decision.reasons,
        test_batches=test_batches,
        roc_plot=str(plot) if plot is not None else None,
        mode=mode,
        shadow_batches=shadow_batches if mode == "shadow" else 0,
        delong=delong.as_dict() if delong else None,
    )
    return GateResult(cand_eval, prod_eval, base, decision, delong, plot, report)


def _score(evaluation: ModelEvaluation) -> ModelScore:
    return ModelScore(
        auc=evaluation.metrics.auc,
        log_loss=evaluation.metrics.log_loss,
        p95_latency_ms=evaluation.latency.p95_ms,
    )


def shadow_verdict(
    challenger: ProductionRecord,
    current: ProductionRecord,
    batches: list[str],
    y_true: np.ndarray,
    champion_proba: np.ndarray,
    challenger_proba: np.ndarray,
    *,
    min_relative_auc: float = DEFAULT_POLICY.min_relative_auc,
    min_positives: int = DEFAULT_POLICY.shadow_min_positives,
) -> tuple[bool, str]:
    """Promote the challenger or retire it, with the reason recorded in production's history.

    :func:`decide_shadow` on the pooled shadow rows of ``batches``; a challenger whose production
    version no longer serves is retired whatever its scores (it challenged another model).

    Returns:
        Whether to promote, and the reason.
    """
    decision = decide_shadow(
        y_true,
        champion_proba,
        challenger_proba,
        min_relative_auc=min_relative_auc,
        min_positives=min_positives,
    )
    if challenger.version != current.version:
        return False, f"production moved to v{current.version} during the shadow period: retired"
    return decision.promote, f"shadow on {', '.join(batches)}: " + "; ".join(decision.reasons)


@dataclass(frozen=True)
class Lineage:
    """Where a production version came from: run, data window, parameters and code.

    Stored in the version object's ``extra`` (:meth:`as_extra`), under the keys earlier versions
    used, so records written before this type read back unchanged (:meth:`from_extra`).
    """

    dagster_run_id: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    strategy: str = ""
    train_batches: tuple[str, ...] = ()
    test_batches: tuple[str, ...] = ()
    init_from_version: int | None = None
    code_versions: Mapping[str, str] = field(default_factory=dict)
    code_commit: str | None = None
    #: Live batches a challenger is shadowed on (challengers only).
    shadow_batches: int | None = None
    #: The batches a challenger was shadowed on before its promotion.
    shadow_batches_seen: tuple[str, ...] | None = None
    #: Rollbacks: the version restored, and the one rolled back from (set by the store).
    restores_version: int | None = None
    rolled_back_from: int | None = None
    #: Keys this type does not know (kept as they were).
    other: Mapping[str, Any] = field(default_factory=dict)

    _OPTIONAL = ("shadow_batches", "restores_version", "rolled_back_from")

    def as_extra(self) -> dict[str, Any]:
        """The record's ``extra`` dict (JSON-ready; optional keys only when set)."""
        extra: dict[str, Any] = {
            "dagster_run_id": self.dagster_run_id,
            "params": dict(self.params),
            "strategy": self.strategy,
            "train_batches": list(self.train_batches),
            "test_batches": list(self.test_batches),
            "init_from_version": self.init_from_version,
            "code_versions": dict(self.code_versions),
            "code_commit": self.code_commit,
        }
        extra.update({k: getattr(self, k) for k in self._OPTIONAL if getattr(self, k) is not None})
        if self.shadow_batches_seen is not None:
            extra["shadow_batches_seen"] = list(self.shadow_batches_seen)
        return {**extra, **self.other}

    def last_train_batch(self) -> str | None:
        """The newest batch the model was trained on (``incremental`` continues after it)."""
        return self.train_batches[-1] if self.train_batches else None

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> Lineage:
        """Read a record's ``extra`` (missing keys, as in early records, take their defaults)."""
        known = {f for f in cls.__dataclass_fields__ if f != "other"}
        values: dict[str, Any] = {k: v for k, v in extra.items() if k in known}
        for key in ("train_batches", "test_batches", "shadow_batches_seen"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values, other={k: v for k, v in extra.items() if k not in known})


@dataclass(frozen=True)
class Candidate:
    """A model to put into production or hold as challenger: its bytes, identity and lineage."""

    model_bytes: bytes
    mlflow_run_id: str | None
    mlflow_model_uri: str | None
    registered_version: str | None
    dataset_md5: str | None
    metrics: Mapping[str, float]
    lineage: Lineage

    @classmethod
    def of_challenger(
        cls, store: ProductionStore, challenger: ProductionRecord, *, shadowed_on: list[str]
    ) -> Candidate:
        """The challenger held in ``store`` (bytes verified against their md5).

        Its lineage gains the live batches it was shadowed on (``shadow_batches_seen``).
        """
        lineage = Lineage.from_extra(challenger.extra)
        return cls(
            model_bytes=store.model_bytes(challenger),
            mlflow_run_id=challenger.mlflow_run_id,
            mlflow_model_uri=challenger.mlflow_model_uri,
            registered_version=challenger.registered_version,
            dataset_md5=challenger.dataset_md5,
            metrics=dict(challenger.metrics),
            lineage=replace(lineage, shadow_batches_seen=tuple(shadowed_on)),
        )


#: What a :class:`ProductionChange` does.
ChangeKind = Literal["promote", "challenger", "promote_challenger", "rollback"]


@dataclass(frozen=True)
class ProductionChange:
    """One change of production, applied by :func:`change_production`.

    ``kind``: ``promote`` (the gate's candidate serves), ``challenger`` (held for a shadow period;
    production untouched), ``promote_challenger`` (the challenger serves and is cleared) or
    ``rollback`` (an earlier version's bytes serve again, ``to_version`` ``None``: the one before).
    """

    kind: ChangeKind
    reason: str
    changed_by: str | None
    expected_current: int | None = None
    candidate: Candidate | None = None
    to_version: int | None = None


@dataclass(frozen=True)
class ChangeResult:
    """The version object written, and what became of the ``champion`` alias (``None``: kept)."""

    record: ProductionRecord
    champion_alias: str | None
    #: What went wrong after the commit (the change stands), for the run's log.
    warning: str | None = None


def change_production(
    store: ProductionStore,
    change: ProductionChange,
    move_champion: Callable[[ProductionRecord], str],
) -> ChangeResult:
    """Apply ``change`` to the production store; then move the alias if production changed.

    Every write is a compare-and-set against ``expected_current`` (rollbacks: against the version
    read at their start), so a run that lost a race changes nothing. The alias is derived state,
    moved after the commit by ``move_champion`` (which reports, never raises, a failed move).

    Raises:
        RegistryError: the store refused the change (a conflict, an unknown version...).
        StoreError: the store could not be written.
    """
    if change.kind == "rollback":
        record = store.rollback(
            change.to_version, reason=change.reason, changed_by=change.changed_by
        )
        return ChangeResult(record, move_champion(record))
    candidate = change.candidate
    if candidate is None:
        raise ValueError(f"a {change.kind} change needs a candidate")
    lineage = candidate.lineage
    fields: dict[str, Any] = {
        "mlflow_run_id": candidate.mlflow_run_id,
        "mlflow_model_uri": candidate.mlflow_model_uri,
        "registered_version": candidate.registered_version,
        "dataset_md5": candidate.dataset_md5,
        "metrics": dict(candidate.metrics),
        "extra": lineage.as_extra(),
        "changed_by": change.changed_by,
    }
    if change.kind == "challenger":
        record = store.set_challenger(
            candidate.model_bytes,
            expected_current=change.expected_current,
            reason=change.reason,
            **fields,
        )
        return ChangeResult(record, None)
    record = store.promote(
        candidate.model_bytes,
        expected_current=change.expected_current,
        reason=change.reason,
        **fields,
    )
    warning = None
    if change.kind == "promote_challenger":
        try:
            store.clear_challenger()
        except StoreError as exc:
            # The promotion is committed: failing here would report a serving challenger as
            # "not promoted". The leftover record never serves: a shadow decision on it is
            # refused (production moved on) and the next challenger replaces it.
            warning = f"challenger promoted, but its record was not cleared: {exc}"
    return ChangeResult(record, move_champion(record), warning)
