pytest_plugins = ["backbone.testing.fixtures"]
