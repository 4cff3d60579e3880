"""requirements.lock: each declared dependency is locked, pinned, hashed and installed as locked."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _locked() -> dict[str, tuple[str, list[str]]]:
    """Package name -> (version, hashes) from requirements.lock."""
    text = (ROOT / "requirements.lock").read_text()
    entries: dict[str, tuple[str, list[str]]] = {}
    # One entry: "name==version \" followed by "--hash=sha256:..." continuation lines.
    for match in re.finditer(
        r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)((?:\s*\\\n\s+--hash=\S+)*)", text, re.M
    ):
        name = canonicalize_name(match.group(1).split("[")[0])
        hashes = re.findall(r"--hash=(sha256:[0-9a-f]{64})", match.group(3))
        entries[name] = (match.group(2), hashes)
    return entries


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]


def test_every_declared_dependency_is_locked_within_its_specifier() -> None:
    locked = _locked()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, (
            f"{name} is in pyproject.toml but not in requirements.lock: make lock"
        )
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} in requirements.lock does not satisfy {requirement}: make lock"
        )


def test_every_locked_package_has_hashes() -> None:
    locked = _locked()
    assert len(locked) > 100
    missing = [name for name, (_, hashes) in locked.items() if not hashes]
    assert not missing, f"no --hash for {missing}"


def test_antlr_runtime_forced_to_4_13_in_the_lock() -> None:
    # DVC pulls antlr4 4.9, which breaks Dagster's string asset selections (TypeError: ord()).
    assert _locked()[canonicalize_name("antlr4-python3-runtime")][0] == "4.13.2"


def test_installed_versions_match_the_lock() -> None:
    """The environment running the tests is the locked one (`make install` after a lock change)."""
    wrong = {}
    for name, (version, _) in _locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong[name] = (version, None)
            continue
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, (
        f"installed packages differ from requirements.lock (locked, installed): {wrong}"
    )
