"""The pytest seam: what a check author imports, and the plugin's parts, one module per concern.

- :mod:`~harness.testing.cluster`: the cluster-info file (:class:`ClusterInfo`), :class:`ClusterHandle`, tier
  detection, the ``aiconform_cluster``, ``kube`` and ``upgrade_phase`` fixtures;
- :mod:`~harness.testing.tenants`: a namespace per check (``tenant``, ``tenants``), the run label, the sweep;
- :mod:`~harness.testing.evidence`: the ``evidence`` recorder;
- :mod:`~harness.testing.requirements`: the ``aiconform`` marker, checked at collection and enforced before a check;
- :mod:`~harness.testing.outcome`: grading (failed = the platform was wrong; error = the run broke), the way a grade
  travels from an xdist worker to the report, and the report.
- :mod:`~harness.testing.clients`: the official ``kubernetes`` client (``k8s_client``, ``core_v1`` …,
  ``dynamic_client``) configured from the run's kubeconfig object.

:mod:`harness.pytest_plugin` (the ``pytest11`` entry point) registers these modules; nothing here runs until pytest
loads it.
"""

from harness.testing.cluster import ClusterHandle, ClusterInfo, UpgradePhase, detect_tier, make_handle, new_run_id
from harness.testing.evidence import Evidence
from harness.testing.requirements import CheckSpec
from harness.testing.tenants import (
    LABEL_RUN,
    LABEL_TENANT,
    Tenant,
    create_run_namespace,
    label_value,
    release_tenant,
    sweep_run,
)

__all__ = [
    "LABEL_RUN",
    "LABEL_TENANT",
    "CheckSpec",
    "ClusterHandle",
    "ClusterInfo",
    "Evidence",
    "Tenant",
    "UpgradePhase",
    "create_run_namespace",
    "detect_tier",
    "label_value",
    "make_handle",
    "new_run_id",
    "release_tenant",
    "sweep_run",
]
