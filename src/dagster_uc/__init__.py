"""dagster-uc: deploy any git branch as its own Dagster code location on Kubernetes."""

__version__ = "0.7.0"
