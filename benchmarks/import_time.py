"""Import time of the code location vs Dagster itself, side by side in one run.

Each contender is imported in a fresh interpreter (``python -c "import X"``); its cost is the wall
time minus that of ``python -c "pass"`` measured in the same round. Rounds alternate the contenders
(pass, dagster, definitions, pass, dagster, ...) so that load from other processes on the host hits
both alike. Prints the medians and the ratio definitions / dagster (target: <= 2), then, from one
``python -X importtime`` run, the packages that ``retraining_assets.definitions`` imports on top of
``dagster`` with their cumulative import time.

    .venv/bin/python benchmarks/import_time.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CONTENDERS = {
    "pass": "pass",
    "dagster": "import dagster",
    "definitions": "import retraining_assets.definitions",
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def wall_time(code: str) -> float:
    """Seconds of wall time of ``python -c code`` in a fresh interpreter."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())
    return time.perf_counter() - started


def import_times(code: str) -> dict[str, tuple[float, float]]:
    """Per-module (self, cumulative) import seconds of ``python -X importtime -c code``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        check=True,
        env=_env(),
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

    for code in CONTENDERS.values():  # warm the OS file cache once, untimed
        wall_time(code)
    raw: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    net: dict[str, list[float]] = {name: [] for name in CONTENDERS if name != "pass"}
    for _ in range(args.repeats):
        round_times = {name: wall_time(code) for name, code in CONTENDERS.items()}
        for name, seconds in round_times.items():
            raw[name].append(seconds)
            if name != "pass":
                net[name].append(seconds - round_times["pass"])

    print(f"import time, {args.repeats} alternating rounds, fresh interpreter each")
    print(f"{'contender':40} {'median wall s':>14} {'median net s':>13} {'min net s':>10}")
    for name, code in CONTENDERS.items():
        wall = statistics.median(raw[name])
        if name == "pass":
            print(f"{code:40} {wall:14.3f} {'-':>13} {'-':>10}")
        else:
            print(
                f"{code:40} {wall:14.3f} {statistics.median(net[name]):13.3f}"
                f" {min(net[name]):10.3f}"
            )
    ratios = [d / g for d, g in zip(net["definitions"], net["dagster"], strict=True)]
    ratio = statistics.median(net["definitions"]) / statistics.median(net["dagster"])
    print(
        f"ratio definitions / dagster: {ratio:.2f} (median of per-round ratios "
        f"{statistics.median(ratios):.2f}; target <= 2)"
    )

    base = import_times(CONTENDERS["dagster"])
    full = import_times(CONTENDERS["definitions"])
    extra = extra_packages(base, full)
    total = sum(s for _, s, _ in extra)
    print()
    print(f"imported by definitions on top of dagster (-X importtime self time): {total:.3f} s")
    print(f"{'package':30} {'self s':>8} {'modules':>8}")
    for name, seconds, count in extra[:15]:
        print(f"{name:30} {seconds:8.3f} {count:8d}")
    top = sorted(
        ((n, c) for n, (_, c) in full.items() if n.startswith("retraining_assets")),
        key=lambda r: -r[1],
    )
    print()
    print(f"{'retraining_assets module':45} {'cumulative s':>12}")
    for name, cumulative in top[:10]:
        print(f"{name:45} {cumulative:12.3f}")


if __name__ == "__main__":
    main()
