"""Import time of the code location vs Dagster itself, side by side in one run.

Each contender is imported in a fresh interpreter (``python -c "import X"``); its cost is the wall
time minus that of ``python -c "pass"`` measured in the same round. Rounds alternate the contenders
(pass, dagster, definitions, pass, dagster, ...) so that load from other processes on the host hits
all alike. Two conditions alternate as well: with a bytecode cache (``PYTHONPYCACHEPREFIX`` in the
temporary folder, filled before timing: how an installed venv with ``.pyc`` files behaves), and as
this environment is configured (``PYTHONDONTWRITEBYTECODE=1`` and no ``.pyc`` in the venv, so
every import compiles its module from source). Prints the medians and the ratio
definitions / dagster (target: <= 2), then, from one ``python -X importtime`` run, the packages
that ``retraining_assets.definitions`` imports on top of ``dagster``.

    .venv/bin/python benchmarks/import_time.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONTENDERS = {
    "pass": "pass",
    "dagster": "import dagster",
    "definitions": "import retraining_assets.definitions",
}
CONDITIONS = {"with .pyc": True, "no .pyc": False}
PYCACHE = Path(tempfile.gettempdir()) / "retraining-bench-pycache"


def _env(pyc: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    if pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def wall_time(code: str, pyc: bool) -> float:
    """Seconds of wall time of ``python -c code`` in a fresh interpreter."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(pyc))
    return time.perf_counter() - started


def import_times(code: str, pyc: bool) -> dict[str, tuple[float, float]]:
    """Per-module (self, cumulative) import seconds of ``python -X importtime -c code``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        check=True,
        env=_env(pyc),
        capture_output=True,
        text=True,
    )
    out: dict[str, tuple[float, float]] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        out[name.strip()] = (int(self_us) / 1e6, int(cumulative_us) / 1e6)
    return out


def extra_packages(
    base: dict[str, tuple[float, float]], full: dict[str, tuple[float, float]]
) -> list[tuple[str, float, int]]:
    """Top-level packages imported by ``full`` but not ``base``: (name, self seconds, modules)."""
    totals: dict[str, tuple[float, int]] = {}
    for name, (self_s, _) in full.items():
        if name in base:
            continue
        top = name.split(".")[0]
        seconds, count = totals.get(top, (0.0, 0))
        totals[top] = (seconds + self_s, count + 1)
    return sorted(((k, s, n) for k, (s, n) in totals.items()), key=lambda r: -r[1])


def main() -> None:
    """Measure and print the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    for code in CONTENDERS.values():  # fill the bytecode cache and the OS file cache, untimed
        wall_time(code, pyc=True)
        wall_time(code, pyc=False)
    raw = {(c, n): [] for c in CONDITIONS for n in CONTENDERS}
    net = {(c, n): [] for c in CONDITIONS for n in CONTENDERS if n != "pass"}
    for _ in range(args.repeats):
        for condition, pyc in CONDITIONS.items():
            times = {name: wall_time(code, pyc) for name, code in CONTENDERS.items()}
            for name, seconds in times.items():
                raw[(condition, name)].append(seconds)
                if name != "pass":
                    net[(condition, name)].append(seconds - times["pass"])

    print(f"import time, {args.repeats} alternating rounds, fresh interpreter each (seconds)")
    print(
        f"{'condition':10} {'contender':38} {'median wall':>11} {'median net':>10} {'min net':>8}"
    )
    for condition in CONDITIONS:
        for name, code in CONTENDERS.items():
            wall = statistics.median(raw[(condition, name)])
            if name == "pass":
                print(f"{condition:10} {code:38} {wall:11.3f} {'-':>10} {'-':>8}")
                continue
            values = net[(condition, name)]
            print(
                f"{condition:10} {code:38} {wall:11.3f} {statistics.median(values):10.3f}"
                f" {min(values):8.3f}"
            )
    for condition in CONDITIONS:
        defs, dag = net[(condition, "definitions")], net[(condition, "dagster")]
        ratios = [d / g for d, g in zip(defs, dag, strict=True)]
        ratio = statistics.median(defs) / statistics.median(dag)
        print(
            f"{condition}: ratio definitions / dagster {ratio:.2f}"
            f" (median of per-round ratios {statistics.median(ratios):.2f}; target <= 2);"
            f" definitions adds {statistics.median(defs) - statistics.median(dag):.3f} s"
        )
    nopyc = statistics.median(net[("no .pyc", "dagster")])
    pyc = statistics.median(net[("with .pyc", "dagster")])
    print(f"compiling from source costs `import dagster` {nopyc - pyc:.2f} s ({nopyc / pyc:.1f}x)")

    base = import_times(CONTENDERS["dagster"], pyc=True)
    full = import_times(CONTENDERS["definitions"], pyc=True)
    extra = extra_packages(base, full)
    total = sum(s for _, s, _ in extra)
    print()
    print(
        f"imported by definitions on top of dagster (-X importtime self time, .pyc): {total:.3f} s"
    )
    print(f"{'package':30} {'self s':>8} {'modules':>8}")
    for name, seconds, count in extra[:15]:
        print(f"{name:30} {seconds:8.3f} {count:8d}")
    own = sorted(
        ((n, s) for n, (s, _) in full.items() if n.startswith("retraining_assets")),
        key=lambda r: -r[1],
    )
    print("slowest project modules (self s): " + ", ".join(f"{n} {s:.3f}" for n, s in own[:5]))
    heavy = ("pandas", "numpy", "pyarrow", "lightgbm", "mlflow", "great_expectations", "dvc")
    loaded = [h for h in heavy if h in full]
    print(f"heavy libraries loaded by `import retraining_assets.definitions`: {loaded or 'none'}")


if __name__ == "__main__":
    main()
