"""Code versions: a hash of what changes an asset's output, and the commit that produced it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from retraining_assets import code_version as cv


def _versions(sources: dict[str, bytes]) -> dict[str, str]:
    """Each asset's version computed from in-memory module sources (the real asset->module map)."""
    return {
        asset: cv.source_hash(sources[m] for m in sorted(modules))
        for asset, modules in cv.ASSET_MODULES.items()
    }


def test_changing_one_core_module_changes_only_its_dependents() -> None:
    sources = {m: cv.module_source(m) for ms in cv.ASSET_MODULES.values() for m in ms}
    before = _versions(sources)
    assert before == {a: cv.asset_code_version(a) for a in cv.ASSET_MODULES}
    sources["training"] = sources["training"] + b"\n# a change\n"
    after = _versions(sources)
    changed = {a for a in before if before[a] != after[a]}
    assert changed == {a for a, ms in cv.ASSET_MODULES.items() if "training" in ms}
    assert changed == {"candidate_model", "evaluation_report", "batch_estimated_performance"}


def test_config_defaults_are_part_of_the_version() -> None:
    base = cv.source_hash([b"x"], {"learning_rate": 0.05, "num_leaves": 31})
    assert base == cv.source_hash([b"x"], {"num_leaves": 31, "learning_rate": 0.05})
    assert base != cv.source_hash([b"x"], {"learning_rate": 0.1, "num_leaves": 31})
    assert base != cv.source_hash([b"y"], {"learning_rate": 0.05, "num_leaves": 31})
    assert len(base) == 12 and int(base, 16) >= 0


def test_every_mapped_module_exists() -> None:
    for modules in cv.ASSET_MODULES.values():
        for module in modules:
            assert cv.module_file(module).is_file(), module
    with pytest.raises(ValueError, match="no core module"):
        cv.module_file("no_such_module")


def test_commit_is_the_checkout_head_or_the_package_version(monkeypatch) -> None:
    root = Path(cv.__file__).resolve().parent.parent
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    cv.code_commit.cache_clear()
    commit = cv.code_commit()
    if head.returncode == 0:
        assert commit.removesuffix("-dirty") == head.stdout.strip()
    # Without git on PATH: the package version, never an error.
    monkeypatch.setenv("PATH", "/nonexistent")
    cv.code_commit.cache_clear()
    try:
        assert cv.code_commit().startswith("package-")
    finally:
        cv.code_commit.cache_clear()


def test_a_package_version_covers_every_file_of_the_package() -> None:
    source = cv.module_source("dataset")
    for name in ("__init__.py", "config.py", "resolve.py", "build.py", "schema_files.py"):
        assert name.encode() + b"\0" in source
    assert cv.module_source("training") == cv.module_file("training").read_bytes()
