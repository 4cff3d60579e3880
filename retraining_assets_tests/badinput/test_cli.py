"""CLI arguments are checked before anything runs: one clear line, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from retraining_assets.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["restore-data", "", "--out", "x.parquet"], "'' is not a dataset version"),
        (["restore-data", "abc", "--out", "x.parquet"], "expected the 32 hex digits"),
        (["restore-data", "../../etc/passwd", "--out", "x"], "is not a dataset version"),
        (["restore-data", "g" * 32, "--out", "x.parquet"], "expected the 32 hex digits"),
        (["restore-data", "a" * 32, "--out", ""], "--out: empty path"),
        (["build-batches", "--out", ""], "--out: empty path"),
        (["build-batches", "--out", "OUT", "--max-weeks", "0"], "--max-weeks must be at least 1"),
        (["build-batches", "--out", "OUT", "--dataset", " "], "--dataset: empty path"),
        (["build-batches", "--out", "FILE"], "exists and is not a folder"),
        (["build-batches", "--out", "OUT", "--dataset", "missing.yaml"], "cannot read dataset"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], project
) -> None:
    (tmp_path / "FILE").write_text("not a folder")
    argv = [str(tmp_path / a) if a in ("OUT", "FILE", "missing.yaml") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "OUT").exists()


def test_restore_data_into_a_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], project
) -> None:
    assert main(["restore-data", "a" * 32, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
