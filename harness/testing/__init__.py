"""The pytest seam of aiconform, split by concern; harness/pytest_plugin.py registers it."""
