"""Heavy libraries imported once per process, without the cyclic garbage collector in the way.

Great Expectations, MLflow, matplotlib, DVC and LightGBM leave ~390k long-lived Python objects
behind when they are imported (Great Expectations alone ~254k, on top of Dagster's ~118k).
CPython's cyclic collector runs a full collection whenever the long-lived heap has grown by a
quarter since the last one, and imports of that size grow it that fast: one process that imports
the definitions and runs two 8-week retraining cycles made ten full collections, most of them
while these libraries imported, and each later one walked all their objects again (up to 0.75 s
each on a 2-core VM). The objects are module state that lives as long as the process, so
nothing is gained by scanning them.

:func:`preload` imports the libraries a step needs with the collector paused, then moves every
object alive at that point into the collector's permanent generation (``gc.freeze``), which later
collections skip. This is the practice CPython's documentation gives for pre-fork servers.
Measured with ``benchmarks/cycle_vs_script.py``'s Dagster contender, side by side: the whole
process 21.6 -> 16.6 s, of it in the collector 2.8 -> 0.9 s, full collections 10 -> 7
(``benchmarks/README.md``, "The cyclic collector and the heavy imports").

What it costs: cyclic garbage alive at the moment of a freeze is never reclaimed. A freeze
happens only when an import actually ran, so a process freezes a handful of times (the first
use of each library), and the rest of the heap is module state anyway.

Call it on the line before a function-level import of such a library (imports stay inside the
functions that need them, so loading the code location stays fast). An import without it still
works, only with the collector running.
"""

from __future__ import annotations

import gc
import importlib
import sys


def preload(*modules: str) -> None:
    """Import ``modules`` with the cyclic collector paused, then freeze what is on the heap.

    A no-op (a dictionary lookup per name) once every module is imported. The collector is
    switched back on even if an import fails, and left off if the caller had it off.

    Args:
        modules: Dotted module names, e.g. ``"great_expectations"``, ``"mlflow"``.
    """
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in missing:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
