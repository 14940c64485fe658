"""The local test stack: Kubernetes API emulator, tools, registry, chart (not shipped)."""
