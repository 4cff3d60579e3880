"""Code versions: a hash of what changes an asset's output, and the commit that produced it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from retraining_assets import code_version as cv


def _versions(sources: dict[str, bytes]) -> dict[str, str]:
    """Each asset's version computed from in-memory module sources (the real asset->module map)."""
    return {
        asset: cv.source_hash([*(sources[m] for m in sorted(modules)), cv.definition_source(asset)])
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


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the package's sources to edit (the definitions cache cleared around it)."""
    source = Path(cv.__file__).resolve().parent
    copy = tmp_path / "retraining_assets"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    cv._module_definitions.cache_clear()
    yield copy
    cv._module_definitions.cache_clear()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    cv._module_definitions.cache_clear()


def _definitions(root: Path) -> dict[str, bytes]:
    return {a: cv.definition_source(a, root) for a in cv.ASSET_MODULES}


def test_an_asset_body_or_its_helpers_in_defs_change_its_version(package_copy: Path) -> None:
    before = _definitions(package_copy)
    assert before == _definitions(Path(cv.__file__).resolve().parent)
    # A helper only training_dataset calls.
    _edit(
        package_copy / "defs" / "assets.py",
        "    known = sorted(context.instance.get_dynamic_partitions(BATCH_PARTITIONS))",
        "    known = sorted(context.instance.get_dynamic_partitions(BATCH_PARTITIONS))[:5]",
    )
    after = _definitions(package_copy)
    assert {a for a in before if before[a] != after[a]} == {"training_dataset"}
    # A resource method, through the annotated argument: every asset using that resource.
    _edit(
        package_copy / "defs" / "resources.py",
        "class DvcResource(",
        "class DvcResource(  # noqa\n",
    )
    again = _definitions(package_copy)
    changed = {a for a in after if after[a] != again[a]}
    assert {"training_dataset", "validated_dataset", "candidate_model"} <= changed
    assert "raw_batches" not in changed and "batch_performance" not in changed


def test_comment_and_blank_lines_do_not_change_a_definition(package_copy: Path) -> None:
    before = _definitions(package_copy)
    _edit(
        package_copy / "defs" / "monitoring.py",
        "def batch_drift(",
        "# A comment above, and a blank line.\n\ndef batch_drift(",
    )
    assert _definitions(package_copy) == before


def test_an_upstream_asset_is_not_part_of_a_downstream_version(package_copy: Path) -> None:
    before = _definitions(package_copy)
    assert b"def raw_batches(" not in before["training_dataset"]
    _edit(
        package_copy / "defs" / "assets.py",
        "    schema, frequency = batch_source.resolved()",
        "    schema, frequency = batch_source.resolved()\n    frequency = str(frequency)",
    )
    after = _definitions(package_copy)
    assert {a for a in before if before[a] != after[a]} == {"raw_batches"}


def test_every_asset_has_a_definition_and_an_unknown_one_fails() -> None:
    for asset in cv.ASSET_MODULES:
        assert f"def {asset}(".encode() in cv.definition_source(asset)
    with pytest.raises(ValueError, match="no function"):
        cv.definition_source("no_such_asset")
