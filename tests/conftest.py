pytest_plugins = ["stack.pytest_plugin"]
