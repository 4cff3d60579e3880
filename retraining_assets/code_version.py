"""Which code produced an asset: a per-asset code version and the checkout's git commit.

An asset's ``code_version`` is a short hash of what changes its output: the source of the core
modules its body calls, and the defaults of its run configuration. Dagster compares it with the
version that produced the current materialization (the asset then shows "code version changed"),
and it is recorded with the commit on every materialization and MLflow run. Hashing a few source
files is cheap: nothing here imports the modules it hashes, and nothing imports Dagster.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGE = "retraining_assets"

#: The core modules each asset body calls (what changes its output besides its config).
ASSET_MODULES: Mapping[str, tuple[str, ...]] = {
    "raw_batches": ("batches", "validation", "versioning", "dataset"),
    "training_dataset": ("batches", "strategies", "versioning", "dataset", "dataset_build"),
    "validated_dataset": ("validation", "dataset"),
    "candidate_model": ("training", "dask_training", "versioning"),
    "evaluation_report": ("evaluation", "delong", "promotion", "training"),
    "production_model": ("registry", "promotion", "model_card"),
    "batch_drift": (
        "drift",
        "drift_assessment",
        "drift_matters",
        "monitoring",
        "validation",
        "batches",
    ),
    "batch_performance": (
        "monitoring",
        "evaluation",
        "batches",
        "performance_estimation",
        "score_cache",
    ),
    "degradation_analysis": ("analysis", "change_points", "series", "monitoring"),
    "batch_estimated_performance": (
        "performance_estimation",
        "drift_assessment",
        "training",
        "batches",
        "score_cache",
    ),
}


def module_file(module: str) -> Path:
    """The source file of ``module`` (a name under ``retraining_assets.core``), not imported.

    For a package this is its ``__init__.py``; :func:`module_source` reads all of its files.
    """
    spec = importlib.util.find_spec(f"{PACKAGE}.core.{module}")
    if spec is None or spec.origin is None:
        raise ValueError(f"no core module named {module!r}")
    return Path(spec.origin)


def module_source(module: str) -> bytes:
    """The source of a core module; for a package, every ``.py`` file in it, in name order."""
    path = module_file(module)
    if path.name != "__init__.py":
        return path.read_bytes()
    files = sorted(path.parent.rglob("*.py"))
    return b"".join(
        f.relative_to(path.parent).as_posix().encode() + b"\0" + f.read_bytes() for f in files
    )


def source_hash(sources: Iterable[bytes], defaults: Mapping[str, Any] | None = None) -> str:
    """A 12-hex-digit version of some source texts plus configuration defaults.

    Args:
        sources: the bytes of each source file, in a fixed order.
        defaults: configuration defaults that change the output (hashed by their ``repr``).

    Returns:
        The first 12 hex digits of a SHA-256 over the sources and the sorted defaults.
    """
    digest = hashlib.sha256()
    for text in sources:
        digest.update(hashlib.sha256(text).digest())
    for key in sorted(defaults or {}):
        digest.update(f"{key}={(defaults or {})[key]!r}\n".encode())
    return digest.hexdigest()[:12]


def asset_code_version(asset: str, defaults: Mapping[str, Any] | None = None) -> str:
    """The code version of ``asset``: its core modules' source plus its config defaults.

    Args:
        asset: an asset name of :data:`ASSET_MODULES`.
        defaults: the asset's run-configuration defaults (see :func:`config_defaults`).

    Returns:
        A 12-hex-digit version; it changes only when one of those modules or defaults changes.
    """
    modules = sorted(ASSET_MODULES[asset])
    return source_hash((module_source(m) for m in modules), defaults)


def config_defaults(config_class: Any) -> dict[str, Any]:
    """The default of every field of a pydantic (``dg.Config``) class, by field name."""
    return {name: field.default for name, field in config_class.model_fields.items()}


@functools.cache
def code_commit() -> str:
    """The git commit of the checkout the package runs from, else the package version.

    ``<sha>`` in a clean checkout, ``<sha>-dirty`` with uncommitted changes to tracked files,
    ``package-<version>`` outside git or when git is missing. Never raises.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        sha = _git(root, "rev-parse", "HEAD")
        if sha:
            dirty = _git(root, "status", "--porcelain", "--untracked-files=no", "--", PACKAGE)
            return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return f"package-{version(PACKAGE)}"
    except Exception:
        return "unknown"


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else ""
