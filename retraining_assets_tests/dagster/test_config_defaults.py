"""One settings source: every run-config field and core policy takes its default from settings.

The classes and their fields are found by walking the package, so a new ``dg.Config`` class, a
new field or a new core policy is checked without touching this file. A field whose default is
not a setting must be allow-listed below with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Any

import dagster as dg

import retraining_assets.core
import retraining_assets.defs
from retraining_assets import settings
from retraining_assets.core.promotion import decide_shadow

#: Sections of settings.py whose fields are defaults of same-named config and policy fields.
SECTIONS = (settings.DEFAULT_POLICY, settings.DEFAULT_TRAINING, settings.DEFAULT_TRIGGERS)

#: ``Class.field`` -> the setting it takes its default from, where the names differ.
RENAMED = {
    "ShadowDecisionConfig.min_positives": "shadow_min_positives",
    "decide_shadow.min_positives": "shadow_min_positives",
}

#: ``Class.field`` -> why its default is not a setting.
NO_SETTING = {
    "TrainingDatasetConfig.as_of_batch": "a per-run choice (empty: the newest batch), no policy",
    "RollbackConfig.to_version": "a per-run choice (empty: the version before), no policy",
    "RollbackConfig.reason": "free text recorded in the production history",
    "CandidateModelConfig.training_cache": "where trained boosters are kept (a replay sets it)",
    "ValidatedDatasetConfig.validation_cache": "where passing validations are kept (replay)",
    "RawBatchesConfig.validation_cache": "where passing batch validations are kept (replay)",
    "GateConfig.champion_latency": "a replay turns it off; no setting (the report shows it)",
    "ChartConfig.chart": "output only (a replay turns it off), no policy",
    "GateConfig.roc_plot": "output only (a replay turns it off), no policy",
    "TrainParams.valid_fraction": "not a launchpad knob: the early-stopping split of core training",
    "DriftPolicy.chi2_min_tvd": "statistic-level floor of the drift library, no trigger setting",
    "DriftPolicy.missing_rate_threshold": "statistic-level rule of the drift library",
    "DriftPolicy.rule": "the library's verdict; the trigger's is TriggerPolicy.drift_rule",
    "DriftPolicy.use_ks": "statistic switch of the drift library (the matters rule turns it off)",
    "DriftPolicy.use_chi2": "statistic switch of the drift library (the matters rule turns it off)",
    "DriftPolicy.missing_column_forces_drift": "statistic-level rule of the drift library",
}


def _modules(package: ModuleType) -> list[ModuleType]:
    names = [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    return [importlib.import_module(name) for name in sorted(names)]


def _settings() -> dict[str, Any]:
    """Every setting by name; a name in two sections would make the lookup ambiguous."""
    merged: dict[str, Any] = {}
    for section in SECTIONS:
        values = dataclasses.asdict(section)
        clash = set(values) & set(merged)
        assert not clash, f"{sorted(clash)} in two settings sections"
        merged.update(values)
    return merged


def _run_configs() -> list[type[dg.Config]]:
    """The package's run configurations (resources are configured by their environment)."""
    found = {
        cls
        for module in _modules(retraining_assets.defs)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, dg.Config)
        and not issubclass(cls, (dg.ConfigurableResource, dg.ConfigurableIOManager))
        and cls.__module__.startswith("retraining_assets.")
    }
    return sorted(found, key=lambda cls: cls.__name__)


def _core_policies() -> list[type]:
    """The core's policy and parameter dataclasses (``*Policy``, ``*Params``)."""
    found = {
        cls
        for module in _modules(retraining_assets.core)
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if dataclasses.is_dataclass(cls)
        and name.endswith(("Policy", "Params"))
        and cls.__module__.startswith("retraining_assets.core")
    }
    return sorted(found, key=lambda cls: cls.__name__)


def _defaults() -> dict[str, Any]:
    """``Class.field`` -> default, for every run-config field and core policy field."""
    out: dict[str, Any] = {}
    for config in _run_configs():
        for name, field in config.model_fields.items():
            out[f"{config.__name__}.{name}"] = field.default
    for policy in _core_policies():
        for field in dataclasses.fields(policy):
            if field.default is not dataclasses.MISSING:
                out[f"{policy.__name__}.{field.name}"] = field.default
    # The shadow decision's rule is a function's keyword defaults, not a dataclass.
    for name, parameter in inspect.signature(decide_shadow).parameters.items():
        if parameter.kind is parameter.KEYWORD_ONLY:
            out[f"decide_shadow.{name}"] = parameter.default
    return out


def test_the_walk_finds_the_configs_and_policies() -> None:
    configs = {cls.__name__ for cls in _run_configs()}
    policies = {cls.__name__ for cls in _core_policies()}
    assert {"TrainingDatasetConfig", "CandidateModelConfig", "GateConfig"} <= configs
    assert {"TrainParams", "GatePolicy", "DriftPolicy"} <= policies


def test_every_default_is_its_setting() -> None:
    known = _settings()
    defaults = _defaults()
    wrong, unknown = [], []
    for key, default in sorted(defaults.items()):
        if key in NO_SETTING:
            continue
        setting = RENAMED.get(key, key.rsplit(".", 1)[1])
        if setting not in known:
            unknown.append(key)
        elif (type(default), default) != (type(known[setting]), known[setting]):
            wrong.append(f"{key} = {default!r}, settings.{setting} = {known[setting]!r}")
    assert not wrong, f"defaults that disagree with settings.py: {wrong}"
    assert not unknown, (
        f"{unknown} have no setting: define the default once in settings.py, or add the field "
        "to NO_SETTING in this file with the reason"
    )


def test_every_setting_is_used_and_the_allow_lists_are_current() -> None:
    defaults = _defaults()
    stale = sorted((set(NO_SETTING) | set(RENAMED)) - set(defaults))
    assert not stale, f"allow-listed fields that no longer exist: {stale}"
    used = {RENAMED.get(key, key.rsplit(".", 1)[1]) for key in defaults if key not in NO_SETTING}
    for section in (settings.DEFAULT_POLICY, settings.DEFAULT_TRAINING):
        unused = sorted({f.name for f in dataclasses.fields(section)} - used)
        assert not unused, f"settings no config or policy takes its default from: {unused}"
