"""The DVC stage that builds the demo batches: declared, and its lock file current."""

from __future__ import annotations

import yaml

from retraining_assets.core.versioning import file_md5
from retraining_assets.settings import project_root


def test_stage_declares_the_batches() -> None:
    stages = yaml.safe_load((project_root() / "dvc.yaml").read_text())["stages"]
    stage = stages["prepare_flights"]
    assert stage["outs"] == ["data/batches"]
    assert "build-batches" in stage["cmd"]


def test_lock_matches_the_code_it_depends_on() -> None:
    """A stale dvc.lock makes `dvc repro` rebuild and dirties every fresh clone: keep it current
    (run `retraining prepare-data` and commit dvc.lock)."""
    lock = yaml.safe_load((project_root() / "dvc.lock").read_text())
    deps = lock["stages"]["prepare_flights"]["deps"]
    assert deps
    for dep in deps:
        assert file_md5(project_root() / dep["path"]) == dep["md5"], dep["path"]
    outs = lock["stages"]["prepare_flights"]["outs"]
    assert outs[0]["path"] == "data/batches" and outs[0]["nfiles"] == 53


def test_example_config_matches_the_defaults() -> None:
    """The documented example must load and equal the built-in defaults."""
    from retraining_assets.settings import DEFAULT_TRIGGERS, load_trigger_policy

    assert load_trigger_policy(project_root() / "retraining.example.yaml") == DEFAULT_TRIGGERS
