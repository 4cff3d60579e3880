"""Which code produced an asset: a per-asset code version and the checkout's git commit.

An asset's ``code_version`` is a short hash of what changes its output: the source of the core
modules its body calls, its own function in ``defs/`` with the project definitions that function
reaches (helpers, resource classes, config classes), and the defaults of its run configuration.
Dagster compares it with the version that produced the current materialization (the asset then
shows "code version changed"), and it is recorded with the commit on every materialization and
MLflow run. Nothing here imports the modules it hashes, and nothing imports Dagster; the
definitions are read with ``ast`` (~0.1-0.2 s for every asset, once per process).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
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
    """The code version of ``asset``: its core modules, its own definition, its config defaults.

    Args:
        asset: an asset name of :data:`ASSET_MODULES`.
        defaults: the asset's run-configuration defaults (see :func:`config_defaults`).

    Returns:
        A 12-hex-digit version; it changes only when one of its core modules, the code of
        :func:`definition_source` or a default changes.
    """
    modules = sorted(ASSET_MODULES[asset])
    sources = [module_source(m) for m in modules]
    return source_hash([*sources, definition_source(asset)], defaults)


def definition_source(asset: str, root: Path | None = None) -> bytes:
    """The asset's function in ``defs/`` and every project definition it reaches, normalized.

    The decorated function, found by name among the modules of ``retraining_assets/defs``,
    and, followed by name through the project's own modules (but not ``core``, which
    :data:`ASSET_MODULES` covers whole): the module-level functions, classes and constants
    it refers to, their own references in turn (a resource class an argument is annotated
    with, a helper in ``defs/production.py``); other assets are not followed. Blank and
    comment-only lines change nothing; the caches that key on code versions (the
    training, validation and monitoring caches of a replay) then miss when the body of an
    asset or one of its helpers changes, not only when a core module does.

    Args:
        asset: the asset's function name.
        root: the package folder (default: this one; tests pass a modified copy).

    Raises:
        ValueError: no module of ``defs/`` defines ``asset``.
    """
    root = root or Path(__file__).resolve().parent
    defs_dir = root / "defs"
    for path in sorted(defs_dir.glob("*.py")):
        if f"def {asset}(" in path.read_text() and asset in _module_definitions(path, root)[0]:
            return _closure(path, asset, root)
    raise ValueError(f"no function {asset!r} in {defs_dir}")


@functools.cache
def _module_definitions(
    path: Path, root: Path
) -> tuple[dict[str, tuple[str, frozenset[str], bool]], dict[str, tuple[Path, str]]]:
    """A module's top-level definitions and its imports of project modules.

    Returns:
        name -> (source without blank and comment lines, identifiers in it, whether it is a
        Dagster asset), and
        local name -> (project module file, name there) for every ``from retraining_assets...
        import`` (module level or inside functions), ``core`` modules and this one left out.
    """
    import ast

    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    definitions: dict[str, tuple[str, frozenset[str], bool]] = {}
    for node in tree.body:
        names: list[str] = []
        is_asset = False
        first = node.lineno
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
            is_asset = any(_decorator_name(d) in _ASSET_DECORATORS for d in node.decorator_list)
            first = min([first, *(d.lineno for d in node.decorator_list)])
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        if names:
            # The text as written, without blank and comment-only lines (cheaper than
            # ``ast.unparse`` at import time; an inline comment still counts as a change).
            text = "\n".join(
                line
                for line in lines[first - 1 : node.end_lineno]
                if line.strip() and not line.lstrip().startswith("#")
            )
            # Every identifier in the text (a superset of the names it uses: following one too
            # many only makes the version change more often, never less).
            refs = frozenset(_IDENTIFIER.findall(text))
            for name in names:
                definitions[name] = (text, refs, is_asset)
    imports: dict[str, tuple[Path, str]] = {}
    for found in _statements(tree.body):
        if not isinstance(found, ast.ImportFrom) or not found.module:
            continue
        parts = found.module.split(".")
        if parts[0] != PACKAGE or parts[1:2] == ["core"] or parts[1:] == ["code_version"]:
            continue
        target = root.joinpath(*parts[1:])
        file = target / "__init__.py" if target.is_dir() else target.with_suffix(".py")
        if file.is_file():
            for alias in found.names:
                imports[alias.asname or alias.name] = (file, alias.name)
    return definitions, imports


def _statements(body: list[Any]) -> Iterator[Any]:
    """Every statement in ``body`` and in the blocks nested in it.

    No expressions: imports are statements, and walking every expression node costs 5x more.
    """
    for statement in body:
        yield statement
        for block in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(statement, block, None)
            if isinstance(inner, list):
                yield from _statements(inner)


def _decorator_name(node: Any) -> str:
    """``dg.asset`` for ``@dg.asset(...)``, ``asset`` for ``@asset``; "" for anything else."""
    import ast

    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
        return f"{target.value.id}.{target.attr}"
    return target.id if isinstance(target, ast.Name) else ""


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Decorators that make a function an asset: another asset's code is not part of a version
#: (Dagster follows upstream changes through data versions).
_ASSET_DECORATORS = frozenset({"dg.asset", "asset", "dg.multi_asset", "multi_asset"})


def _closure(path: Path, name: str, root: Path) -> bytes:
    """``name``'s source in ``path`` and that of every project definition it reaches."""
    seen: set[tuple[Path, str]] = set()
    texts: list[str] = []
    todo = [(path, name)]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        file, symbol = key
        definitions, imports = _module_definitions(file, root)
        if symbol in imports and symbol not in definitions:  # re-exported: follow it
            todo.append(imports[symbol])
            continue
        if symbol not in definitions:
            continue
        text, refs, is_asset = definitions[symbol]
        if is_asset and key != (path, name):
            continue
        texts.append(f"{file.relative_to(root).as_posix()}:{symbol}\n{text}")
        for ref in refs - {symbol}:
            if ref in definitions:
                todo.append((file, ref))
            elif ref in imports:
                todo.append(imports[ref])
    return "\n\n".join(sorted(texts)).encode()


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
