"""The aiconform pytest plugin (entry point ``pytest11``): options, the ``aiconform`` marker, and the modules of
:mod:`harness.testing` that hold the fixtures and hooks (cluster, tenants, evidence, requirements, outcome).

Loaded for every pytest run in this environment, so it does nothing until a test asks for a cluster fixture or the
report options are given.  ``aiconform run`` passes ``--aiconform-cluster-info`` (one JSON file, see
:class:`harness.testing.ClusterInfo`) and ``--aiconform-report-dir``; by hand, ``--aiconform-kubeconfig`` is enough.

The fixtures (``aiconform_cluster``, ``kube``, ``tenant``, ``tenants``, ``evidence``) and hooks live in
:mod:`harness.testing`; importing them here is what registers them (pytest reads a plugin module's attributes).
The names check authors import live in :mod:`harness.testing` too; they are re-exported here for checks written
against this module.
"""

from __future__ import annotations

import pytest

from harness.testing import requirements
from harness.testing.cluster import ClusterHandle, ClusterInfo, detect_tier, make_handle, new_run_id
from harness.testing.cluster import aiconform_cluster as aiconform_cluster
from harness.testing.cluster import configure as _configure_cluster
from harness.testing.cluster import kube as kube
from harness.testing.cluster import pytest_configure_node as pytest_configure_node
from harness.testing.cluster import upgrade_phase as upgrade_phase
from harness.testing.evidence import Evidence
from harness.testing.evidence import evidence as evidence
from harness.testing.outcome import configure as _configure_outcome
from harness.testing.outcome import pytest_runtest_makereport as pytest_runtest_makereport
from harness.testing.requirements import _aiconform_requirements as _aiconform_requirements
from harness.testing.requirements import pytest_collection_modifyitems as pytest_collection_modifyitems
from harness.testing.tenants import LABEL_RUN, LABEL_TENANT, Tenant, create_run_namespace, label_value, release_tenant
from harness.testing.tenants import tenant as tenant
from harness.testing.tenants import tenants as tenants

pytest_plugins = ["harness.testing.clients"]  # the official kubernetes client (typed and dynamic), configured for the run

__all__ = [
    "LABEL_RUN",
    "LABEL_TENANT",
    "ClusterHandle",
    "ClusterInfo",
    "Evidence",
    "Tenant",
    "create_run_namespace",
    "detect_tier",
    "label_value",
    "make_handle",
    "new_run_id",
    "release_tenant",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("aiconform")
    g.addoption("--aiconform-cluster-info", default=None, metavar="PATH",
                help="the cluster under test as `aiconform run` describes it (cluster-info.json)")
    g.addoption("--aiconform-kubeconfig", default=None, metavar="PATH",
                help="kubeconfig of the cluster under test (the rest is detected); or $AICONFORM_KUBECONFIG")
    g.addoption("--aiconform-report-dir", default=None, metavar="DIR", help="write the conformance report here")
    g.addoption("--aiconform-product", default=None, metavar="FILE",
                help="the vendor's CNCF metadata (examples/product.yaml) for the submission folder cncf/v1.X/<product>/")
    g.addoption("--aiconform-results-from", default=None, metavar="PATH",
                help="start the report from an earlier session of the same run (its results.json)")
    g.addoption("--aiconform-select", default="all", choices=requirements.SELECT_CHOICES,
                help="run all checks, only exclusive ones (they need the cluster to themselves), or only the rest")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", requirements.MARKER_HELP)
    _configure_cluster(config)
    _configure_outcome(config)
