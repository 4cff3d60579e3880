"""Three random SIGKILLs of retraining_job (``benchmarks/kill_trials.py``): nothing breaks."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from retraining_assets.settings import project_root

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_three_random_kills_leave_production_stores_and_next_run_sound(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETRAINING_", "DAGSTER_"))}
    out = subprocess.run(
        [
            sys.executable,
            str(project_root() / "benchmarks" / "kill_trials.py"),
            "--trials",
            "3",
            "--seed",
            "3",
            "--workdir",
            str(tmp_path / "state"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(out.stdout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "3/3 trials: pointer old-or-new" in out.stdout
    rows = [line for line in out.stdout.splitlines() if re.match(r"\s*\d+\s+[\d.]+s ", line)]
    assert len(rows) == 3 and all("FAIL" not in row for row in rows)
