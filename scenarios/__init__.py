"""aiconform's conformance suites: one pytest module per concern.  Each check names the requirement it evidences
with ``@pytest.mark.aiconform(requirement=..., tier=...)``; see harness/testing/requirements.py."""
