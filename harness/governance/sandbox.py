"""A private pool of simulated GPU nodes on a running cluster, owned by one check (or one simulation).

The pool's nodes carry a taint ``aiconform.io/sandbox=<id>:NoSchedule`` (beside every simulated node's own,
``contract.SIMULATED_TAINT``) and the label ``aiconform.io/pool=<pool>``, so nothing but pods that tolerate both
taints and select the pool lands there; the nodes are labelled with the run id,
so the end-of-run sweep removes them if their owner could not.  KWOK plays their kubelets (the cluster must declare
the ``simulated-nodes`` fact).  Owns creating, growing and removing those nodes; never touches other nodes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from fake_gpu_plugin.config import parse_gpu
from harness.config import Pool, Taint
from harness.contract import POOL_LABEL, SIMULATED_TOLERATION
from harness.errors import KubeError
from harness.kube import KubeClient
from harness.nodes import register_nodes, simulated_node
from harness.testing.tenants import LABEL_RUN, label_value

SANDBOX_TAINT = "aiconform.io/sandbox"


@dataclass
class SandboxPool:
    """Simulated nodes of ``gpus_per_node`` GPUs of ``model`` each; ``add``/``remove`` change the pool."""

    client: KubeClient
    run_id: str
    gpus_per_node: int = 1
    model: str = "A100-SXM4-80GB"
    prefix: str = "sbx"
    id: str = field(default_factory=lambda: secrets.token_hex(3))
    nodes: list[str] = field(default_factory=list)
    _next: int = 0

    @property
    def name(self) -> str:
        """The pool's name: the value of ``aiconform.io/pool`` on its nodes."""
        return f"{self.prefix}-{self.id}"

    def _pool(self) -> Pool:
        spec = parse_gpu({"model": self.model, "count": self.gpus_per_node}) if self.gpus_per_node else None
        return Pool(name=self.name, nodes=1, gpu=spec, labels={LABEL_RUN: label_value(self.run_id)},
                    taints=(Taint(key=SANDBOX_TAINT, value=self.id, effect="NoSchedule"),))

    def add(self, count: int = 1, *, timeout: float = 60.0) -> list[str]:
        """Register ``count`` more nodes and wait until KWOK reports them Ready; returns their names."""
        pool = self._pool()
        objs = [simulated_node(pool, self._next + i, "sandbox") for i in range(count)]
        self._next += count
        register_nodes(self.client, objs, timeout=timeout, workers=8)
        names = [o["metadata"]["name"] for o in objs]
        self.nodes += names
        return names

    def remove(self) -> None:
        """Delete every node of the pool (the pods bound there are orphaned and garbage collected)."""
        for name in self.nodes:
            try:
                self.client.delete("Node", name, grace_period=0)
            except KubeError:
                pass
        self.nodes.clear()

    def node_selector(self) -> dict[str, str]:
        return {POOL_LABEL: self.name}

    def tolerations(self) -> tuple[dict[str, str], ...]:
        """What a pod needs to land on the pool: the toleration of its sandbox taint and of the simulated nodes'."""
        return ({"key": SANDBOX_TAINT, "operator": "Equal", "value": self.id, "effect": "NoSchedule"},
                dict(SIMULATED_TOLERATION))

    def place(self, pod_spec: dict[str, Any]) -> dict[str, Any]:
        """``pod_spec`` (a PodSpec) pinned to this pool: the pool's selector and the tolerations of its taints
        (those it does not carry yet)."""
        pod_spec.setdefault("nodeSelector", {}).update(self.node_selector())
        held = pod_spec.setdefault("tolerations", [])
        held += [t for t in self.tolerations() if t not in held]
        return pod_spec

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
