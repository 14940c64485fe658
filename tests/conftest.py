pytest_plugins = ["stack.pytest_plugin", "stack.controlplane.fixtures"]
