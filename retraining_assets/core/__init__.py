"""Pure logic: no Dagster or MLflow import, no environment reads, no I/O at import."""
