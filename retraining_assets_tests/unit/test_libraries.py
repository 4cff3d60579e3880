"""preload: heavy imports run with the cyclic collector paused, then the heap is frozen."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from retraining_assets.libraries import preload

# A module that records, while it is imported, whether the collector was running.
_PROBE = """
import gc
COLLECTOR_ON_DURING_IMPORT = gc.isenabled()
OBJECTS = [{"row": i} for i in range(1000)]
"""


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[Path]:
    """A folder on ``sys.path`` for throw-away modules, removed (with them) afterwards."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in set(sys.modules) - before:
            if name.startswith("probe_"):
                del sys.modules[name]
        gc.enable()


def test_imports_with_the_collector_paused_then_freezes(modules: Path) -> None:
    (modules / "probe_heavy.py").write_text(_PROBE)
    frozen = gc.get_freeze_count()
    assert gc.isenabled()

    preload("probe_heavy")

    module = sys.modules["probe_heavy"]
    assert module.COLLECTOR_ON_DURING_IMPORT is False
    assert gc.isenabled()
    # The module's objects went to the permanent generation with the rest of the heap.
    assert gc.get_freeze_count() >= frozen + len(module.OBJECTS)


def test_an_imported_module_is_not_frozen_again(modules: Path) -> None:
    (modules / "probe_done.py").write_text(_PROBE)
    preload("probe_done")
    garbage = [{"n": i} for i in range(500)]  # new objects that a second freeze would take
    frozen = gc.get_freeze_count()

    preload("probe_done")

    assert gc.get_freeze_count() == frozen
    assert len(garbage) == 500


def test_a_failed_import_raises_and_turns_the_collector_back_on(modules: Path) -> None:
    (modules / "probe_broken.py").write_text("raise RuntimeError('broken on import')\n")

    with pytest.raises(RuntimeError, match="broken on import"):
        preload("probe_broken")

    assert gc.isenabled()
    assert "probe_broken" not in sys.modules


def test_a_collector_the_caller_turned_off_stays_off(modules: Path) -> None:
    (modules / "probe_off.py").write_text(_PROBE)
    gc.disable()

    preload("probe_off")

    assert not gc.isenabled()
    assert sys.modules["probe_off"].COLLECTOR_ON_DURING_IMPORT is False
