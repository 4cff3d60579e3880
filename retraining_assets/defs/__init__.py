"""The thin Dagster layer: assets, checks, jobs, resources, run configuration."""
