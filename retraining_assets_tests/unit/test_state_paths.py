"""Only the resources layer knows where run-time state lives (issue 10: no hidden shared folder).

Dagster's usual deployment runs the daemon, the code server and each run worker on different
hosts. A module that builds a path under ``RETRAINING_HOME`` shares state through a folder that
the other processes do not see. This test reads the package's source (AST, no import) and fails
on any such path outside the resources/storage layer and the few call sites listed below with
their reason.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "retraining_assets"

#: The resources/storage layer: the one place allowed to resolve state locations.
RESOURCE_LAYER = {
    "storage.py",
    "settings.py",
    "defs/state.py",
    "defs/resources.py",
}

#: Call sites outside that layer that may still name a folder under RETRAINING_HOME, and why.
#: Keys are ``(module, function)``. An entry that no longer matches anything fails the test
#: (unless it is marked as being converted), so the list only shrinks.
JUSTIFIED: dict[tuple[str, str], str] = {
    ("cli.py", "_dagster_home"): (
        "DAGSTER_HOME defaults to <home>/dagster: the Dagster instance's own folder, whose"
        " storage (SQLite or Postgres) dagster.yaml decides; the CLI runs on one host"
    ),
    ("cli.py", "prepare_data"): (
        "the embedded default DVC remote (<home>/dvc-remote) is created before `dvc push`"
        " of the demo data; a deployment sets an S3 remote instead"
    ),
    ("cli.py", "cmd_doctor"): "prints where the state folder is",
    ("replay.py", "ReplayHarness"): (
        "a replay is a sandbox on one host: its harness lays out its own work folder (Dagster"
        " instance, MLflow SQLite store, DVC repository and remote, production area) and hands"
        " each location to the resources it builds, never through the environment"
    ),
}

#: Call sites left to other work of issue 10 (not the monitoring store's). They are allowed
#: while they exist and may disappear without editing this test.
BEING_CONVERTED: dict[tuple[str, str], str] = {
    ("defs/assets.py", "evaluation_report"): (
        "ROC chart written into the DVC repository's reports/ folder, then logged to MLflow"
        " and embedded in metadata from that path; belongs to the evaluation_report/IO work"
        " (the fix: render to bytes in memory as the monitoring charts do)"
    ),
}

#: Names of state areas under RETRAINING_HOME: ``x / "production"`` builds a state path.
STATE_AREAS = {
    "production",
    "monitoring",
    "profiles",
    "shadow",
    "errors",
    "reports",
    "current.json",
    "challenger.json",
    "history.jsonl",
    "mlflow",
    "dvc-remote",
    "store",
    "dagster",
    "var",
}

#: What the converted monitoring code must never do again: touch a local file at all.
FILESYSTEM_NAMES = {"Path", "open", "os", "tempfile", "shutil"}
FILESYSTEM_ATTRS = {
    "glob",
    "rglob",
    "iterdir",
    "mkdir",
    "unlink",
    "write_bytes",
    "read_bytes",
    "write_text",
    "read_text",
    "to_npz",
    "from_npz",
    "root",
    "monitoring_dir",
    "state_dir",
    "model_path",  # the registry's local-file alias: monitoring loads boosters from bytes
}
NUMPY_FILE_CALLS = {"save", "savez", "savez_compressed", "load", "fromfile", "tofile"}
#: Calls that write or read a file unless their first argument is an in-memory buffer.
BUFFER_CALLS = {"savefig", *NUMPY_FILE_CALLS}

#: Code converted to the monitoring store: strict (no local file operation whatsoever).
CONVERTED: dict[str, set[str] | None] = {
    "monitoring_store.py": None,  # the whole module
    "defs/monitoring.py": {
        "_reference_profile",
        "batch_drift",
        "batch_performance",
        "degradation_analysis",
    },
    "defs/sensors.py": {"concept_drift_sensor", "_error_stream", "shadow_sensor"},
    "defs/estimated.py": {"_calibrator", "batch_estimated_performance"},
    "core/drift_assessment.py": None,
    "defs/production.py": {"decide_challenger"},
    "core/monitoring.py": {"plot_drift"},
    "core/analysis.py": {"render_degradation"},
}


@dataclass(frozen=True)
class Finding:
    module: str
    function: str
    line: int
    what: str


def _is_bytesio(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "BytesIO") or (
        isinstance(func, ast.Attribute) and func.attr == "BytesIO"
    )


class _Scanner(ast.NodeVisitor):
    def __init__(self, module: str, tree: ast.Module) -> None:
        self.module = module
        # Names bound to an in-memory buffer anywhere in the module (coarse, but a file path
        # is never called ``buffer``).
        self.buffers = {
            target.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and _is_bytesio(node.value)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        self.stack: list[str] = []
        self.home: list[Finding] = []
        self.files: list[Finding] = []

    @property
    def function(self) -> str:
        return self.stack[0] if self.stack else "<module>"

    def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = _scope
    visit_AsyncFunctionDef = _scope
    visit_ClassDef = _scope

    def _home(self, node: ast.AST, what: str) -> None:
        self.home.append(Finding(self.module, self.function, getattr(node, "lineno", 0), what))

    def _file(self, node: ast.AST, what: str) -> None:
        self.files.append(Finding(self.module, self.function, getattr(node, "lineno", 0), what))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name == "state_dir":
            self._home(node, "calls state_dir()")
        if isinstance(func, ast.Attribute) and func.attr in BUFFER_CALLS:
            numpy = isinstance(func.value, ast.Name) and func.value.id in ("np", "numpy")
            if (numpy or func.attr == "savefig") and not self._in_memory(node.args[:1]):
                self._file(node, f"{func.attr}() on something other than a BytesIO")
        self.generic_visit(node)

    def _in_memory(self, args: list[ast.expr]) -> bool:
        """The first argument is ``io.BytesIO(...)`` or a name assigned from it."""
        if not args:
            return False
        arg = args[0]
        if isinstance(arg, ast.Call):
            return _is_bytesio(arg)
        return isinstance(arg, ast.Name) and arg.id in self.buffers

    def visit_Constant(self, node: ast.Constant) -> None:
        if node.value == "RETRAINING_HOME":
            self._home(node, "names RETRAINING_HOME")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "HOME_ENV":
            self._home(node, "names settings.HOME_ENV")
        if node.id in FILESYSTEM_NAMES:
            self._file(node, node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "HOME_ENV":
            self._home(node, "names settings.HOME_ENV")
        if node.attr == "monitoring_dir":
            self._home(node, "uses monitoring_dir()")
        if node.attr in FILESYSTEM_ATTRS:
            self._file(node, f".{node.attr}")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and side.value in STATE_AREAS:
                    self._home(node, f'joins a state folder name "{side.value}"')
        self.generic_visit(node)


def _scan() -> list[_Scanner]:
    scanners = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        scanner = _Scanner(module, tree)
        scanner.visit(tree)
        scanners.append(scanner)
    return scanners


SCANNED = _scan()


def test_the_scan_sees_the_package() -> None:
    """The scanner finds what the resources layer does legitimately, so it can find it elsewhere."""
    by_module = {s.module: s for s in SCANNED}
    assert {"storage.py", "defs/sensors.py", "monitoring_store.py"} <= set(by_module)
    resources = {f.what for f in by_module["defs/resources.py"].home}
    assert "calls state_dir()" in resources
    assert 'joins a state folder name "mlflow"' in resources


def test_no_module_outside_the_resources_layer_builds_a_path_under_the_home() -> None:
    findings = [f for s in SCANNED if s.module not in RESOURCE_LAYER for f in s.home]
    unexpected = [
        f"{f.module}:{f.line} in {f.function}: {f.what}"
        for f in findings
        if (f.module, f.function) not in JUSTIFIED and (f.module, f.function) not in BEING_CONVERTED
    ]
    assert not unexpected, (
        "run-time state must go through a resource (StateStoreResource / MonitoringStoreResource"
        " / the registry), never a folder under RETRAINING_HOME:\n" + "\n".join(unexpected)
    )


def test_the_justified_list_only_shrinks() -> None:
    """An entry whose call site is gone must be removed, so the exceptions never grow stale."""
    seen = {(f.module, f.function) for s in SCANNED for f in s.home}
    stale = sorted(set(JUSTIFIED) - seen)
    assert not stale, f"remove these entries from JUSTIFIED: {stale}"


@pytest.mark.parametrize("module", sorted(CONVERTED))
def test_converted_monitoring_code_touches_no_local_file(module: str) -> None:
    """Profiles, error streams, shadow scores and charts: store keys and bytes, never a path."""
    scanner = next(s for s in SCANNED if s.module == module)
    functions = CONVERTED[module]
    if functions is not None:
        defined = {
            n.name
            for n in ast.walk(ast.parse((PACKAGE / module).read_text()))
            if isinstance(n, ast.FunctionDef)
        }
        assert functions <= defined, f"{module} no longer defines {functions - defined}"
    hits = [
        f"{f.module}:{f.line} in {f.function}: {f.what}"
        for f in scanner.files + scanner.home
        if functions is None or f.function in functions
    ]
    assert not hits, "local file access in converted monitoring code:\n" + "\n".join(hits)
