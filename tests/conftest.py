"""Shared by every test of the project: pytester, for the unit tests that run the aiconform plugin in an inner
pytest session (tests/unit/test_pytest_seam.py).  Declared here, in the top-level conftest, because pytest accepts
``pytest_plugins`` only there."""

pytest_plugins = ["pytester"]
