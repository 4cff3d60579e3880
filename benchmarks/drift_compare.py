"""Our drift check against the tools users would pick, measured side by side in one run.

Usage::

    .venv/bin/python benchmarks/drift_compare.py [--quick | --sizes 10000,100000,1000000]

Per size N the script writes one seeded reference and one current batch (N rows each, 20 numeric
and 5 categorical columns; ``n4``, ``n5`` and ``c0`` drift clearly, ``n8`` moderately, ``n0``-``n3``
and ``c1`` slightly, the rest not) to parquet, then runs every contender in a fresh subprocess
that reads those same files:

* ``np.sort``: sorting the batch's 20 numeric columns, one thread (the floor of an exact KS);
* ``ours``: :func:`~retraining_assets.core.drift.compute_drift` with ``workers=2`` and
  ``workers=1``, against a profile built once beforehand (the build is its own row);
* ``scipy loop``: ``scipy.stats.ks_2samp`` per numeric and ``chi2_contingency`` per categorical
  column, flags at raw ``p < 0.05``;
* ``evidently``: Evidently 0.7.23 ``Report([DataDriftPreset()])`` with its defaults, with PSI
  (threshold 0.2) and with KS + chi-square (``p < 0.05``);
* ``nannyml``: NannyML 0.13 ``UnivariateDriftCalculator`` with its default method (Jensen-Shannon
  for both kinds) and with KS + chi2, default chunker (10 chunks), fit and calculate timed
  separately; a feature counts as flagged if any chunk of the batch raised an alert.

Evidently and NannyML conflict with the project's pins, so they run in a separate throw-away
virtualenv (``--venv``, default ``/tmp/retraining-bench-venv``) that the script creates once with
``python3 -m venv`` and ``benchmarks/competitors-requirements.txt``; it is reused while that file
is unchanged. Ours, the sort and the scipy loop run in the interpreter running this script.

Each time is the best of ``--repeats`` calls (``--slow-repeats`` for the competitors and the scipy
loop at N >= 1M). Peak memory is the child process's ``ru_maxrss`` (``os.wait4``), so imports
and the two loaded frames are included; ``+MB`` is the peak minus the resident size right after
loading the data. Agreement columns compare each tool's own per-feature flags with our raw
per-feature verdicts: ``PSI > 0.2`` (our quantile-bin PSI) and raw ``p < 0.05`` (our KS for
numeric, chi-square for categorical features), as ``k/25`` features. For our own rows the flags
are the default :class:`~retraining_assets.core.drift.DriftPolicy` verdicts.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

N_NUMERIC = 20
N_CATEGORICAL = 5
NUMERIC = [f"n{i}" for i in range(N_NUMERIC)]
CATEGORICAL = [f"c{j}" for j in range(N_CATEGORICAL)]
FEATURES = NUMERIC + CATEGORICAL
#: Features drifted by construction, and how much.
DRIFT_DESIGN = {
    "n0": "slight",
    "n1": "slight",
    "n2": "slight",
    "n3": "slight",
    "n4": "clear",
    "n5": "clear",
    "n8": "moderate",
    "c0": "clear",
    "c1": "slight",
}
PSI_THRESHOLD = 0.2
ALPHA = 0.05
#: At and above this size the slow contenders get ``--slow-repeats`` repeats.
SLOW_SIZE = 1_000_000

BENCH_DIR = Path(__file__).resolve().parent
REQUIREMENTS = BENCH_DIR / "competitors-requirements.txt"
DEFAULT_VENV = Path("/tmp/retraining-bench-venv")
STAMP = ".drift_compare.json"
QUIET_ENV = {  # no telemetry or usage logging from the competitor libraries
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
    "NML_DISABLE_USAGE_LOGGING": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONWARNINGS": "ignore",
}

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def make_frame(rows: int, seed: int, *, drifted: bool) -> pd.DataFrame:
    """One frame of synthetic features (the generator of ``drift_quick.py``, more drift levels).

    Args:
        rows: Number of rows.
        seed: Random seed.
        drifted: Apply :data:`DRIFT_DESIGN`: ``n0``-``n3`` shifted by 0.02 (slight), ``n4``-``n5``
            scaled by 1.3 and shifted by 0.5 (clear), ``n8`` shifted by 0.3 (moderate), ``c0``
            levels' probabilities reversed (clear), ``c1`` 5% of the mass tilted (slight).

    Returns:
        Columns ``n0``..``n19`` (float64: normal, exponential, integer-valued, normal with 5%
        missing) and ``c0``..``c4`` (object strings with 5 to 45 levels).
    """
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i in range(N_NUMERIC):
        if i % 4 == 1:
            col = rng.exponential(1.0, rows)
        elif i % 4 == 2:
            col = rng.integers(0, 30, rows).astype(np.float64)
        else:
            col = rng.standard_normal(rows)
        if i % 4 == 3:
            col[rng.random(rows) < 0.05] = np.nan
        if drifted and i < 4:
            col = col + 0.02
        elif drifted and i < 6:
            col = col * 1.3 + 0.5
        elif drifted and i == 8:
            col = col + 0.3
        data[f"n{i}"] = col
    for j in range(N_CATEGORICAL):
        levels = np.array([f"level{k}" for k in range(5 + 10 * j)], dtype=object)
        probs = np.linspace(2.0, 1.0, levels.size)
        probs = probs / probs.sum()
        if drifted and j == 0:
            probs = probs[::-1]
        elif drifted and j == 1:
            probs = 0.95 * probs + 0.05 * probs[::-1]
        data[f"c{j}"] = levels[rng.choice(levels.size, rows, p=probs)]
    return pd.DataFrame(data)


def write_data(rows: int, folder: Path) -> None:
    """Write ``reference.parquet`` and ``current.parquet`` of ``rows`` rows each to ``folder``.

    Args:
        rows: Rows per frame.
        folder: Destination folder (created).
    """
    folder.mkdir(parents=True, exist_ok=True)
    make_frame(rows, 1, drifted=False).to_parquet(folder / "reference.parquet", index=False)
    make_frame(rows, 2, drifted=True).to_parquet(folder / "current.parquet", index=False)


def load_data(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the frames written by :func:`write_data`.

    Args:
        folder: The data folder.

    Returns:
        ``(reference, current)``.
    """
    return (
        pd.read_parquet(folder / "reference.parquet"),
        pd.read_parquet(folder / "current.parquet"),
    )


# ---------------------------------------------------------------------------------------------
# Contenders (each runs in a fresh child process, see run_one)
# ---------------------------------------------------------------------------------------------


def best_of(repeats: int, func: Callable[[], Any]) -> tuple[float, Any]:
    """Smallest wall time of ``repeats`` calls, and the last call's result.

    Args:
        repeats: Number of calls (at least 1).
        func: The work to time.

    Returns:
        ``(seconds, result)``.
    """
    best, result = float("inf"), None
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def _row(label: str, seconds: float, flags: dict[str, bool] | None = None) -> dict[str, Any]:
    return {"label": label, "seconds": seconds, "flags": flags}


def contender_sort(ref: pd.DataFrame, cur: pd.DataFrame, repeats: int) -> dict[str, Any]:
    """Floor: ``np.sort`` of the batch's 20 numeric columns, one thread.

    Args:
        ref: Reference frame (unused).
        cur: Current batch.
        repeats: Timing repeats.

    Returns:
        The child's result record.
    """
    columns = [cur[name].to_numpy() for name in NUMERIC]
    seconds, _ = best_of(repeats, lambda: [np.sort(col) for col in columns])
    return {"rows": [_row("np.sort 20 numeric (floor)", seconds)]}


def contender_ours(
    ref: pd.DataFrame, cur: pd.DataFrame, repeats: int, workers: int
) -> dict[str, Any]:
    """Ours: ``build_reference`` once, then ``compute_drift`` per batch.

    Args:
        ref: Reference frame.
        cur: Current batch.
        repeats: Timing repeats.
        workers: ``compute_drift`` worker threads.

    Returns:
        The child's result record, with our raw per-feature statistics under ``stats``.
    """
    from retraining_assets.core.drift import build_reference, compute_drift

    build_s, profile = best_of(repeats, lambda: build_reference(ref, NUMERIC, CATEGORICAL))
    seconds, result = best_of(repeats, lambda: compute_drift(profile, cur, workers=workers))
    stats = {}
    for feature in result.features:
        raw_p = feature.ks_pvalue if feature.kind == "numeric" else feature.chi2_pvalue
        stats[feature.name] = {
            "psi": feature.psi,
            "p": raw_p,
            "ks_d": feature.ks_d,
            "tvd": feature.tvd,
            "p_adj": feature.p_value_adjusted,
            "policy": feature.drifted,
        }
    policy_flags = {f.name: bool(f.drifted) for f in result.features}
    return {
        "rows": [
            _row("ours build_reference (once per model)", build_s),
            _row(f"ours compute_drift workers={workers}", seconds, policy_flags),
        ],
        "stats": stats,
    }


def contender_scipy(ref: pd.DataFrame, cur: pd.DataFrame, repeats: int) -> dict[str, Any]:
    """Per-column scipy loop: ``ks_2samp`` (numeric), ``chi2_contingency`` (categorical).

    Args:
        ref: Reference frame.
        cur: Current batch.
        repeats: Timing repeats.

    Returns:
        The child's result record; flags at raw ``p < 0.05``.
    """
    from scipy import stats

    def run() -> dict[str, float]:
        pvalues = {}
        for name in NUMERIC:
            pvalues[name] = float(stats.ks_2samp(ref[name].dropna(), cur[name].dropna()).pvalue)
        for name in CATEGORICAL:
            counts = [ref[name].value_counts(), cur[name].value_counts()]
            table = pd.concat(counts, axis=1).fillna(0)
            pvalues[name] = float(stats.chi2_contingency(table.to_numpy().T).pvalue)
        return pvalues

    seconds, pvalues = best_of(repeats, run)
    flags = {name: p < ALPHA for name, p in pvalues.items()}
    return {"rows": [_row("scipy ks_2samp + chi2 loop", seconds, flags)], "stats": pvalues}


def _evidently_flag(method: str, value: float, threshold: float) -> bool:
    """Evidently's own drift rule for one column (from its stattests' sources, 0.7.23)."""
    name = method.lower()
    if name in ("ks", "k-s p_value"):
        return value <= threshold  # ks_stattest: p_value <= threshold
    if "p_value" in name or name in ("chisquare", "z", "fisher_exact", "g_test", "t_test"):
        return value < threshold  # chisquare and the other tests: p_value < threshold
    return value >= threshold  # distances (wasserstein, jensenshannon, psi, ...): >= threshold


def contender_evidently(
    ref: pd.DataFrame, cur: pd.DataFrame, repeats: int, variant: str
) -> dict[str, Any]:
    """Evidently ``Report([DataDriftPreset(...)]).run`` (Dataset construction included).

    Args:
        ref: Reference frame.
        cur: Current batch.
        repeats: Timing repeats.
        variant: ``"default"``, ``"psi"`` (PSI, threshold 0.2) or ``"ks"`` (KS and chi-square,
            ``p < 0.05``).

    Returns:
        The child's result record, with each column's method, score and threshold.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    options: dict[str, Any] = {
        "default": {},
        "psi": {"num_method": "psi", "cat_method": "psi", "threshold": PSI_THRESHOLD},
        "ks": {"num_method": "ks", "cat_method": "chisquare", "threshold": ALPHA},
    }[variant]
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)

    def run() -> Any:
        reference = Dataset.from_pandas(ref, data_definition=definition)
        current = Dataset.from_pandas(cur, data_definition=definition)
        return Report([DataDriftPreset(**options)]).run(
            current_data=current, reference_data=reference
        )

    seconds, snapshot = best_of(repeats, run)
    flags, stats = {}, {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        name, method = config["column"], str(config["method"])
        value, threshold = float(metric["value"]), float(config["threshold"])
        flags[name] = _evidently_flag(method, value, threshold)
        stats[name] = {"method": method, "value": value, "threshold": threshold}
    label = {
        "default": "evidently DataDriftPreset default",
        "psi": "evidently DataDriftPreset psi>=0.2",
        "ks": "evidently DataDriftPreset ks+chi2",
    }[variant]
    return {"rows": [_row(label, seconds, flags)], "stats": stats}


def contender_nannyml(
    ref: pd.DataFrame, cur: pd.DataFrame, repeats: int, variant: str
) -> dict[str, Any]:
    """NannyML ``UnivariateDriftCalculator``: ``fit`` on the reference, ``calculate`` the batch.

    Args:
        ref: Reference frame.
        cur: Current batch.
        repeats: Timing repeats (of fit and of calculate, separately).
        variant: ``"default"`` (its default method, Jensen-Shannon for both kinds) or ``"ks"``
            (``kolmogorov_smirnov`` for continuous, ``chi2`` for categorical features).

    Returns:
        The child's result record; a feature is flagged if any chunk raised an alert.
    """
    import nannyml

    methods: dict[str, Any] = {
        "default": {},
        "ks": {"continuous_methods": ["kolmogorov_smirnov"], "categorical_methods": ["chi2"]},
    }[variant]

    def fit() -> Any:
        calculator = nannyml.UnivariateDriftCalculator(column_names=FEATURES, **methods)
        return calculator.fit(ref)

    fit_s, calculator = best_of(repeats, fit)
    calc_s, result = best_of(repeats, lambda: calculator.calculate(cur))
    frame = result.filter(period="analysis").to_df()
    flags, stats = {}, {}
    for column in frame.columns:
        if len(column) != 3 or column[2] != "alert" or column[0] == "chunk":
            continue
        name, method = column[0], column[1]
        flags[name] = bool(frame[column].fillna(False).astype(bool).any())
        values = frame[(name, method, "value")]
        stats[name] = {
            "method": method,
            "max_value": float(values.max()),
            "upper_threshold": _float_or_none(frame[(name, method, "upper_threshold")].iloc[0]),
            "chunks_alerting": int(frame[column].fillna(False).astype(bool).sum()),
            "chunks": len(frame),
        }
    label = "nannyml JS (default)" if variant == "default" else "nannyml ks+chi2"
    return {
        "rows": [_row(f"{label} fit", fit_s), _row(f"{label} calculate", calc_s, flags)],
        "stats": stats,
    }


def _float_or_none(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


#: Contender name -> (runs in the competitor venv, slow, runner).
CONTENDERS: dict[str, tuple[bool, bool, Callable[..., dict[str, Any]]]] = {
    "sort": (False, False, contender_sort),
    "ours-w2": (False, False, lambda r, c, k: contender_ours(r, c, k, workers=2)),
    "ours-w1": (False, False, lambda r, c, k: contender_ours(r, c, k, workers=1)),
    "scipy": (False, True, contender_scipy),
    "evidently": (True, True, lambda r, c, k: contender_evidently(r, c, k, "default")),
    "evidently-psi": (True, True, lambda r, c, k: contender_evidently(r, c, k, "psi")),
    "evidently-ks": (True, True, lambda r, c, k: contender_evidently(r, c, k, "ks")),
    "nannyml": (True, True, lambda r, c, k: contender_nannyml(r, c, k, "default")),
    "nannyml-ks": (True, True, lambda r, c, k: contender_nannyml(r, c, k, "ks")),
}


#: Modules each contender family imports, loaded before the baseline memory is taken.
IMPORTS: dict[str, tuple[str, ...]] = {
    "sort": (),
    "ours": ("retraining_assets.core.drift",),
    "scipy": ("scipy.stats",),
    "evidently": ("evidently", "evidently.presets"),
    "nannyml": ("nannyml",),
}


def run_one(tool: str, size: int, data: Path, repeats: int, out: Path) -> None:
    """Child-process entry: load the data, run one contender, write a JSON record to ``out``.

    Args:
        tool: A key of :data:`CONTENDERS`.
        size: Rows per frame (checked against the data).
        data: Folder written by :func:`write_data`.
        repeats: Timing repeats.
        out: Where to write the record.
    """
    for module in IMPORTS[tool.split("-")[0]]:  # imports count in the baseline, not in +MB
        importlib.import_module(module)
    ref, cur = load_data(data)
    if len(ref) != size or len(cur) != size:
        raise ValueError(f"data has {len(ref)}/{len(cur)} rows, expected {size}")
    loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    record = CONTENDERS[tool][2](ref, cur, repeats)
    record.update(
        tool=tool,
        size=size,
        repeats=repeats,
        loaded_kb=loaded_kb,
        versions=_versions(tool),
    )
    out.write_text(json.dumps(record))


def _versions(tool: str) -> dict[str, str]:
    from importlib import metadata

    names = ["numpy", "pandas", "scipy"]
    names += [tool.split("-")[0]] if CONTENDERS[tool][0] else []
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "?"
    return versions


# ---------------------------------------------------------------------------------------------
# Parent: venv, children, table
# ---------------------------------------------------------------------------------------------


def ensure_venv(venv: Path, base_python: str, log: Path) -> tuple[Path | None, str]:
    """Create (once) the throw-away competitor venv and install the requirements into it.

    The venv is reused while its stamp records the same requirements file hash.

    Args:
        venv: Where the venv lives.
        base_python: Interpreter for ``-m venv``.
        log: Where pip's output goes.

    Returns:
        ``(python, note)``: the venv's interpreter (None if the install failed) and a line
        saying how long the install took, or why it failed.
    """
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    stamp = venv / STAMP
    if python.exists() and stamp.exists():
        info = json.loads(stamp.read_text())
        if info.get("requirements_sha256") == digest:
            return python, (
                f"competitor venv {venv} reused (installed earlier in "
                f"{info['install_seconds']:.0f} s)"
            )
    if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
        return None, f"competitor venv: {venv} exists and is not a virtualenv; not touching it"
    start = time.perf_counter()
    with log.open("w") as handle:
        steps = [
            [base_python, "-m", "venv", "--clear", str(venv)],
            [str(python), "-m", "pip", "install", "-r", str(REQUIREMENTS)],
        ]
        for step in steps:
            print(f"$ {' '.join(step)}", flush=True)
            done = subprocess.run(step, stdout=handle, stderr=subprocess.STDOUT, check=False)
            if done.returncode != 0:
                return None, f"competitor venv install failed ({' '.join(step[:4])}); see {log}"
    seconds = time.perf_counter() - start
    stamp.write_text(json.dumps({"requirements_sha256": digest, "install_seconds": seconds}))
    return python, f"competitor venv {venv} created and installed in {seconds:.0f} s"


def run_child(
    python: Path, tool: str, size: int, data: Path, repeats: int, timeout: float, work: Path
) -> dict[str, Any]:
    """Run :func:`run_one` in a fresh process; add its peak RSS (``os.wait4``) to the record.

    Args:
        python: Interpreter of the child.
        tool: Contender name.
        size: Rows per frame.
        data: Data folder.
        repeats: Timing repeats.
        timeout: Seconds before the child is killed.
        work: Folder for the child's JSON record and log.

    Returns:
        The record, or ``{"error": ...}`` if the child failed or timed out.
    """
    out = work / f"{tool}-{size}.json"
    log = work / f"{tool}-{size}.log"
    out.unlink(missing_ok=True)
    command = [
        str(python), str(Path(__file__).resolve()), "--run-one", tool, "--size", str(size),
        "--data", str(data), "--repeats", str(repeats), "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, **QUIET_ENV}
    start = time.monotonic()
    with log.open("w") as handle:
        proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                os.kill(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = -signal.SIGKILL
                return {"error": f"timed out after {timeout:.0f} s"}
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not out.exists():
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        last = lines[-1][:110] if lines else f"exit code {proc.returncode}"
        return {"error": f"crashed: {last}", "log": str(log)}
    record = json.loads(out.read_text())
    record["peak_kb"] = usage.ru_maxrss  # KiB on Linux; this child (and its own children) only
    record["wall"] = time.monotonic() - start
    return record


def _agreement(flags: dict[str, bool] | None, reference: dict[str, bool] | None) -> str:
    if flags is None or reference is None:
        return "n/a"
    same = sum(bool(flags.get(name)) == reference[name] for name in FEATURES if name in flags)
    missing = sum(name not in flags for name in FEATURES)
    return f"{same}/{len(FEATURES)}" + (f" ({missing} missing)" if missing else "")


def _bits(flags: dict[str, bool] | None) -> str:
    if flags is None:
        return "-"

    def bit(name: str) -> str:
        return "?" if name not in flags else "1" if flags[name] else "."

    return "".join(map(bit, NUMERIC)) + " " + "".join(map(bit, CATEGORICAL))


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:.4f}" if seconds < 1 else f"{seconds:.2f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base <= 0:
        return "n/a"
    ratio = value / base
    return f"{ratio:.2f}" if ratio < 100 else f"{ratio:.0f}"


def report_size(size: int, records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten one size's child records into table rows with ratios and agreements.

    Args:
        size: Rows per frame.
        records: Child records by contender name.

    Returns:
        Table rows (dicts), in contender order.
    """
    ours = records.get("ours-w2", {})
    stats = ours.get("stats") or {}
    psi_ref = {n: s["psi"] is not None and s["psi"] > PSI_THRESHOLD for n, s in stats.items()}
    p_ref = {n: s["p"] is not None and s["p"] < ALPHA for n, s in stats.items()}
    if len(stats) != len(FEATURES):
        psi_ref = p_ref = None  # type: ignore[assignment]
    sort_s = next(iter(records.get("sort", {}).get("rows", [])), {}).get("seconds")
    ours_rows = ours.get("rows", [])
    ours_s = ours_rows[1]["seconds"] if len(ours_rows) > 1 else None
    rows = []
    for tool, record in records.items():
        if "error" in record:
            rows.append({"tool": tool, "N": size, "error": record["error"]})
            continue
        for row in record["rows"]:
            if tool == "ours-w1" and row["label"].startswith("ours build_reference"):
                continue  # one build row (from the workers=2 child) is enough
            rows.append(
                {
                    "tool": row["label"],
                    "N": size,
                    "seconds": row["seconds"],
                    "x_sort": _ratio(row["seconds"], sort_s),
                    "x_ours": _ratio(row["seconds"], ours_s),
                    "peak_mb": record["peak_kb"] / 1024,
                    "work_mb": (record["peak_kb"] - record["loaded_kb"]) / 1024,
                    "psi_agree": _agreement(row["flags"], psi_ref),
                    "ks_agree": _agreement(row["flags"], p_ref),
                    "k": record["repeats"],
                    "flags": row["flags"],
                }
            )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print the main table.

    Args:
        rows: Rows from :func:`report_size`.
    """
    header = (
        f"{'tool':<44}{'N':>9}{'seconds':>10}{'x-vs-sort':>11}{'x-vs-ours':>11}"
        f"{'peak MB':>9}{'+MB':>7}{'PSI agree':>11}{'KS agree':>10}{'k':>3}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        if "error" in row:
            print(f"{row['tool']:<44}{row['N']:>9,}  {row['error']}")
            continue
        print(
            f"{row['tool']:<44}{row['N']:>9,}{_fmt_seconds(row['seconds']):>10}"
            f"{row['x_sort']:>11}{row['x_ours']:>11}{row['peak_mb']:>9.0f}{row['work_mb']:>7.0f}"
            f"{row['psi_agree']:>11}{row['ks_agree']:>10}{row['k']:>3}"
        )


def print_flags(size: int, records: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """Print each tool's per-feature flags next to ours, for one size.

    Args:
        size: Rows per frame.
        records: Child records by contender name.
        rows: That size's table rows.
    """
    stats = records.get("ours-w2", {}).get("stats") or {}
    truth = {name: name in DRIFT_DESIGN for name in FEATURES}
    print(f"\nper-feature flags at N={size:,} (n0..n19 c0..c4; 1 = drifted, . = not)")
    lines: list[tuple[str, dict[str, bool] | None]] = [("drifted by construction", truth)]
    if len(stats) == len(FEATURES):
        psi_flags = {n: (s["psi"] or 0.0) > PSI_THRESHOLD for n, s in stats.items()}
        p_flags = {n: s["p"] is not None and s["p"] < ALPHA for n, s in stats.items()}
        lines += [("ours PSI > 0.2", psi_flags), ("ours raw p < 0.05", p_flags)]
    lines += [(row["tool"], row["flags"]) for row in rows if row.get("flags") is not None]
    for label, flags in lines:
        print(f"  {label:<42}{_bits(flags)}")


def print_stats(size: int, records: dict[str, dict[str, Any]]) -> None:
    """Print the per-feature numbers behind the verdicts (ours, scipy, Evidently, NannyML).

    Args:
        size: Rows per frame.
        records: Child records by contender name.
    """
    ours = records.get("ours-w2", {}).get("stats") or {}
    scipy_p = records.get("scipy", {}).get("stats") or {}
    ev_psi = records.get("evidently-psi", {}).get("stats") or {}
    ev_ks = records.get("evidently-ks", {}).get("stats") or {}
    ev_def = records.get("evidently", {}).get("stats") or {}
    nml = records.get("nannyml", {}).get("stats") or {}
    nml_ks = records.get("nannyml-ks", {}).get("stats") or {}

    def num(value: Any, fmt: str = ".3f") -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return format(value, fmt)

    def chunks(item: dict[str, Any] | None) -> str:
        return f"{item['chunks_alerting']}/{item['chunks']}" if item else "-"

    print(f"\nper-feature statistics at N={size:,}")
    print(
        f"  {'feat':<5}{'design':<9}{'ourPSI':>7}{'evPSI':>7}{'ourD':>7}{'our p':>9}"
        f"{'scipy p':>9}{'ev p':>9}{'ev dflt':>8}{'nmlJS max/thr':>15}{'JS':>6}{'KS/chi2':>8}"
    )
    for name in FEATURES:
        mine = ours.get(name, {})
        js = nml.get(name)
        print(
            f"  {name:<5}{DRIFT_DESIGN.get(name, '-'):<9}{num(mine.get('psi')):>7}"
            f"{num(ev_psi.get(name, {}).get('value')):>7}{num(mine.get('ks_d')):>7}"
            f"{num(mine.get('p'), '.2g'):>9}{num(scipy_p.get(name), '.2g'):>9}"
            f"{num(ev_ks.get(name, {}).get('value'), '.2g'):>9}"
            f"{num(ev_def.get(name, {}).get('value')):>8}"
            f"{(num(js['max_value']) + '/' + num(js['upper_threshold'])) if js else '-':>15}"
            f"{chunks(js):>6}{chunks(nml_ks.get(name)):>8}"
        )
    methods = ", ".join(sorted({str(item.get("method")) for item in ev_def.values()}))
    if methods:
        print(f"  (ev dflt = Evidently default score; methods: {methods})")


def summary_lines(rows: list[dict[str, Any]], sizes: list[int]) -> list[str]:
    """The two target lines, at 1M rows (or the largest size run).

    Args:
        rows: All table rows.
        sizes: Sizes run.

    Returns:
        The lines to print.
    """
    size = 1_000_000 if 1_000_000 in sizes else max(sizes)
    at = {row["tool"]: row for row in rows if row["N"] == size and "error" not in row}
    ours = at.get("ours compute_drift workers=2", {}).get("seconds")
    floor = at.get("np.sort 20 numeric (floor)", {}).get("seconds")
    evidently = at.get("evidently DataDriftPreset default", {}).get("seconds")
    label = "1M" if size == 1_000_000 else f"{size:,} (no 1M run)"
    lines = []
    ours_w1 = at.get("ours compute_drift workers=1", {}).get("seconds")
    if ours and floor:
        ratio = ours / floor
        verdict = "yes" if ratio <= 1.5 else "no"
        w1 = f"; workers=1: {ours_w1 / floor:.2f}x" if ours_w1 else ""
        lines.append(
            f"ours at {label} within 1.5x of the bare sort: {verdict} ({ratio:.2f}x with "
            f"workers=2{w1}; the sort is one thread)"
        )
    else:
        lines.append(f"ours at {label} within 1.5x of the bare sort: n/a (a run failed)")
    if ours and evidently:
        ratio = evidently / ours
        verdict = "yes" if ratio >= 50 else "no"
        lines.append(
            f"ours >= 50x faster than Evidently DataDriftPreset at {label}: {verdict} "
            f"({ratio:.0f}x)"
        )
    else:
        lines.append(f"ours >= 50x faster than Evidently DataDriftPreset at {label}: n/a")
    return lines


def main() -> None:
    """Parse arguments; either run one contender (child) or the whole comparison (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--quick", action="store_true", help="sizes 10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-repeats", type=int, default=1, help="slow tools at N >= 1M")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--base-python", default=shutil.which("python3") or sys.executable)
    parser.add_argument("--tools", default=",".join(CONTENDERS), help="comma-separated subset")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per child")
    parser.add_argument("--workdir", type=Path, default=None, help="data and logs (temp dir)")
    parser.add_argument("--run-one", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run_one:
        run_one(args.run_one, args.size, args.data, args.repeats, args.out)
        return

    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    tools = [tool for tool in args.tools.split(",") if tool]
    unknown = [tool for tool in tools if tool not in CONTENDERS]
    if unknown:
        parser.error(f"unknown tools {unknown}; choose from {list(CONTENDERS)}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="drift-compare-"))
    work.mkdir(parents=True, exist_ok=True)

    competitor_python: Path | None = None
    venv_note = "competitor venv not needed"
    if any(CONTENDERS[tool][0] for tool in tools):
        competitor_python, venv_note = ensure_venv(
            args.venv, args.base_python, work / "venv-install.log"
        )
    print(venv_note, flush=True)

    rows: list[dict[str, Any]] = []
    per_size: dict[int, dict[str, dict[str, Any]]] = {}
    for size in sizes:
        data = work / f"data-{size}"
        start = time.perf_counter()
        write_data(size, data)
        print(f"N={size:,}: data written in {time.perf_counter() - start:.1f} s", flush=True)
        records: dict[str, dict[str, Any]] = {}
        for tool in tools:
            in_venv, slow, _ = CONTENDERS[tool]
            repeats = args.slow_repeats if slow and size >= SLOW_SIZE else args.repeats
            if in_venv and competitor_python is None:
                records[tool] = {"error": f"not run: {venv_note}"}
                continue
            python = competitor_python if in_venv else Path(sys.executable)
            assert python is not None
            record = run_child(python, tool, size, data, repeats, args.timeout, work)
            records[tool] = record
            took = f"{record['wall']:.1f} s" if "wall" in record else record["error"]
            print(f"  {tool:<14} done ({took})", flush=True)
        shutil.rmtree(data, ignore_errors=True)
        per_size[size] = records
        rows += report_size(size, records)

    versions: dict[str, str] = {}
    for records in per_size.values():
        for record in records.values():
            versions.update(record.get("versions", {}))
    print()
    print(venv_note)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    print(
        f"times: best of {args.repeats} ({args.slow_repeats} for scipy/evidently/nannyml at "
        f"N >= {SLOW_SIZE:,}); x-vs-ours = seconds / ours compute_drift workers=2; peak MB = "
        "child ru_maxrss; +MB = peak - RSS after imports and data load"
    )
    print()
    print_table(rows)
    for size, records in per_size.items():
        size_rows = [row for row in rows if row["N"] == size]
        print_flags(size, records, size_rows)
        print_stats(size, records)
    print()
    for line in summary_lines(rows, sizes):
        print(line)
    print(f"(child logs and records in {work})")


if __name__ == "__main__":
    main()
