"""The demo Dagster project deployed by `make demo`."""
