"""A small seeded daily history as a user brings it (CSV + ``dataset:`` mapping), in batches."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retraining_assets.core.dataset import build_batches, load_dataset_config, schema_file_for
from retraining_assets.core.synthetic import make_history


def daily_batches(folder: Path, days: int, rows: int, seed: int) -> tuple[Path, Path]:
    """Write ``days`` daily batches of ``rows`` rows under ``folder``; (batch folder, schema)."""
    history = make_history(days, rows, seed=seed, freq_days=1)
    pd.concat(history.values()).to_csv(folder / "days.csv", index=False)
    config = folder / "days.yaml"
    config.write_text(
        "dataset:\n  name: days\n  source: days.csv\n  timestamp: ts\n  target: label\n"
        "  id_column: row_id\n  categorical: [c0, c1]\n  frequency: daily\n  min_rows: 100\n"
        "triggers:\n  min_labelled_rows: 100\n"
    )
    dataset = load_dataset_config(config)
    build_batches(dataset, folder / "batches", schema_file=schema_file_for(dataset))
    return folder / "batches", schema_file_for(dataset)
