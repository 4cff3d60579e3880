"""Settings: tests run on the defaults, never on the user's settings; the strategy catalogue."""

from __future__ import annotations

import os
import re

from retraining_assets.core.strategies import STRATEGIES, STRATEGY_HELP
from retraining_assets.settings import (
    DEFAULT_POLICY,
    DEFAULT_TRIGGERS,
    config_file,
    load_trigger_policy,
    project_root,
)
from retraining_assets_tests.conftest import USER_SETTINGS_ENV

# A quoted variable name in the package's source: how every module names what it reads.
_ENV_NAME = re.compile(r"""["'](RETRAINING_[A-Z0-9_]+)["']""")


def test_every_variable_the_package_reads_is_cleared_for_tests() -> None:
    package = project_root() / "retraining_assets"
    read = {
        name
        for path in package.rglob("*.py")
        for name in _ENV_NAME.findall(path.read_text(encoding="utf-8"))
    }
    assert read, "no RETRAINING_* variable found: the scan is broken"
    missing = sorted(read - set(USER_SETTINGS_ENV))
    assert not missing, f"add {missing} to USER_SETTINGS_ENV in retraining_assets_tests/conftest.py"


def test_a_test_sees_the_defaults_not_the_users_configuration() -> None:
    for name in USER_SETTINGS_ENV:
        if name != "RETRAINING_CONFIG":
            assert name not in os.environ, name
    assert config_file().read_text() == ""
    assert load_trigger_policy() == DEFAULT_TRIGGERS


def test_every_strategy_has_its_launchpad_help() -> None:
    assert sorted(STRATEGY_HELP) == sorted(STRATEGIES)
    assert DEFAULT_POLICY.strategy in STRATEGIES
