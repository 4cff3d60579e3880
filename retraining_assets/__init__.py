"""retraining_assets: keep a model fresh by itself, as Dagster software-defined assets."""
