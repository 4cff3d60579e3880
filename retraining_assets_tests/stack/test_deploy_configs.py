"""Every shipped dagster.yaml is valid for Dagster 1.13.27's own config schema, and no deploy file
holds a secret. Runs without any service (part of the normal suite)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
INSTANCE_FILES = sorted(DEPLOY.glob("*/dagster.yaml"))
SECRET_KEYS = re.compile(r"(password|secret|token|access_key)", re.IGNORECASE)


def env_refs(node: Any) -> set[str]:
    """Names of every ``{env: NAME}`` source in a config tree."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_refs(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_refs(v) for v in node)) if node else set()
    return set()


def test_every_deployment_ships_an_instance() -> None:
    assert {p.parent.name for p in INSTANCE_FILES} >= {"stack", "k8s", "docker"}


@pytest.mark.parametrize("path", INSTANCE_FILES, ids=lambda p: p.parent.name)
def test_instance_config_is_valid_for_dagster(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_postgres import DagsterPostgresStorage

    raw = yaml.safe_load(path.read_text())
    # The instance schema itself (storage, coordinator, launcher, run monitoring, telemetry).
    (tmp_path / "dagster.yaml").write_text(path.read_text())
    validated, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert validated["telemetry"]["enabled"] is False
    assert validated["run_monitoring"]["enabled"] is True

    # Each configurable class against its own config_type, with every {env: X} resolved.
    for name in env_refs(raw):
        monkeypatch.setenv(name, "5432" if name.endswith("_PORT") else f"value-of-{name}")
    storage = process_config(DagsterPostgresStorage.config_type(), raw["storage"]["postgres"])
    assert storage.success, storage.errors
    assert storage.value["postgres_db"]["port"] == 5432
    for key in ("run_coordinator", "run_launcher"):
        if key not in raw:
            continue
        section = raw[key]
        cls = getattr(importlib.import_module(section["module"]), section["class"])
        result = process_config(cls.config_type(), section.get("config", {}))
        assert result.success, (key, result.errors)
        if key == "run_launcher" and validated["run_monitoring"]["max_resume_run_attempts"]:
            # Resuming a run needs a launcher that can do it.
            assert cls.supports_resume_run.fget(None) is True

    limits = raw["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "retraining", "value": "true", "limit": 1} in limits
    assert raw["concurrency"]["pools"]["default_limit"] == 1


@pytest.mark.parametrize("path", INSTANCE_FILES, ids=lambda p: p.parent.name)
def test_instance_endpoints_and_secrets_come_from_env(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    db = raw["storage"]["postgres"]["postgres_db"]
    for field in ("hostname", "port", "username", "password", "db_name"):
        assert set(db[field]) == {"env"}, f"{path}: {field} must be read from an env var"


def _walk(node: Any, trail: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in _walk(v, f"{trail}.{k}")]
    if isinstance(node, list):
        return [item for i, v in enumerate(node) for item in _walk(v, f"{trail}[{i}]")]
    return [(trail, node)]


def test_no_secret_value_in_any_deploy_file() -> None:
    # Allowed: {env: NAME} sources, names of Kubernetes Secrets, names of variables passed through.
    references = ("env_secrets", "envSecrets", "SecretName", "PasswordSecret")
    for path in [*DEPLOY.rglob("*.yaml")]:
        for trail, value in _walk(yaml.safe_load(path.read_text())):
            if trail.endswith(".env") or any(ref in trail for ref in references):
                continue
            leaf = trail.rsplit(".", 1)[-1]
            assignment = str(value).split("=", 1)
            if SECRET_KEYS.search(leaf) or (
                len(assignment) == 2 and SECRET_KEYS.search(assignment[0])
            ):
                pytest.fail(f"{path}{trail} = {value!r}: secrets come from env or a k8s Secret")
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert not re.search(r"^\s*ENV\s+.*(PASSWORD|SECRET|TOKEN)", dockerfile, re.M | re.I)


# Keys of Dagster's official chart (dagster/dagster 1.x values.yaml) that our values set.
HELM_KEYS = {
    "global": {"postgresqlSecretName"},
    "dagsterWebserver": {"envSecrets"},
    "dagster-user-deployments": {"enabled", "enableSubchart", "deployments"},
    "runLauncher": {"type", "config"},
    "postgresql": {
        "enabled",
        "postgresqlHost",
        "postgresqlUsername",
        "postgresqlDatabase",
        "service",
    },
    "generatePostgresqlPasswordSecret": None,
    "dagsterDaemon": {"enabled", "envSecrets", "runCoordinator", "runMonitoring"},
    "telemetry": {"enabled"},
}
DEPLOYMENT_KEYS = {
    "name",
    "image",
    "dagsterApiGrpcArgs",
    "codeServerArgs",
    "port",
    "envSecrets",
    "env",
    "envConfigMaps",
    "resources",
    "annotations",
    "nodeSelector",
    "affinity",
    "tolerations",
}


def test_helm_values_use_the_charts_keys_and_no_inline_password() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert set(values) <= set(HELM_KEYS), set(values) - set(HELM_KEYS)
    for key, allowed in HELM_KEYS.items():
        if allowed is not None and key in values:
            assert set(values[key]) <= allowed, (key, set(values[key]) - allowed)
    assert values["postgresql"]["enabled"] is False
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert set(deployment) <= DEPLOYMENT_KEYS
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "retraining_assets.definitions"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    limits = coordinator["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert {"key": "retraining", "value": "true", "limit": 1} in limits
