"""retraining_assets: keep a model fresh by itself, as Dagster software-defined assets."""

import os

# Arrow's default (mimalloc) pool keeps freed pages, so reading a window of batches and writing it
# back costs about twice the frame in resident memory. Arrow reads this variable once, when pyarrow
# is imported; ``pa.set_memory_pool`` later only reaches the Python-level default, not the parquet
# reader's internal buffers (benchmarks/dataset_memory.py: 8-week window 3.3x -> 2.6x the frame).
# Nothing in the package imports pyarrow at load, and a value the user chose is kept.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
