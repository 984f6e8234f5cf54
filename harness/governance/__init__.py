"""GPU governance on a cluster: who gets GPUs, when, and all at once or not at all.

- :mod:`~harness.governance.sandbox`: a private pool of simulated GPU nodes (tainted, selected by label) that a check
  or a simulation owns, grows and removes;
- :mod:`~harness.governance.gang`: the native gang API of Kubernetes 1.37 (``scheduling.k8s.io/v1beta1`` Workload and
  PodGroup, pods linked by ``spec.schedulingGroup.podGroupName``), as manifests and a reader of what was bound;
- :mod:`~harness.governance.kueue`: Kueue queues from plain frozen dataclasses (ResourceFlavors, cohorts,
  ClusterQueues with nominal quota and borrowing/lending limits, LocalQueues), applied to a cluster and read back.

Every decision (binding, admission, preemption) is the real component's; these modules only write what a user
would write and read back what the cluster did.  Installing Kueue itself is the addon installer's
(``harness/addons/kueue.py``).
"""
