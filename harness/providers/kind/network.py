"""Pod networking of a kind cluster without kindnetd (not served by any registry here): one static CNI config per
node (ptp + host-local over the node's podCIDR, portmap) and a route on every node to each other node's podCIDR via
that node's address on the kind network.

Owns the conflist text and the routes; writes them into the node containers through the Docker SDK.  The pod
CIDRs come from the Node objects (the controller-manager allocates them), the addresses from their InternalIP.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass

import docker.errors

from harness.errors import ClusterError
from harness.providers.kind.engine import Engine

CONF_DIR = "/etc/cni/net.d"
CONF_NAME = "10-aiconform-ptp.conflist"


@dataclass(frozen=True)
class NodeNet:
    name: str
    address: str
    """InternalIP on the kind network."""
    pod_cidr: str


def conflist(pod_cidr: str) -> str:
    """The node's CNI config (pure): point-to-point veths, addresses from the node's podCIDR."""
    doc = {
        "cniVersion": "1.0.0",
        "name": "aiconform-ptp",
        "plugins": [
            {"type": "ptp", "ipMasq": False, "mtu": 1500,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]], "routes": [{"dst": "0.0.0.0/0"}],
                      "dataDir": "/run/cni-ipam-state"}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def route_argvs(node: NodeNet, all_nodes: list[NodeNet]) -> list[list[str]]:
    """``ip route replace`` commands for ``node``: every other node's podCIDR via that node (pure)."""
    return [["ip", "route", "replace", peer.pod_cidr, "via", peer.address]
            for peer in all_nodes if peer.name != node.name]


def _tar_one(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    data = text.encode()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def configure(engine: Engine, nodes: list[NodeNet]) -> None:
    """Write each node's CNI config and its routes to the other nodes' pods."""
    for node in nodes:
        try:
            container = engine.client.containers.get(node.name)
            for argv in [["mkdir", "-p", CONF_DIR], *route_argvs(node, nodes)]:
                res = container.exec_run(argv)
                if res.exit_code != 0:
                    out = res.output.decode(errors="replace").strip() if isinstance(res.output, bytes) else ""
                    raise ClusterError(f"node {node.name}: {' '.join(argv)} failed: {out}")
            if not container.put_archive(CONF_DIR, _tar_one(CONF_NAME, conflist(node.pod_cidr))):
                raise ClusterError(f"node {node.name}: cannot write {CONF_DIR}/{CONF_NAME}")
        except docker.errors.DockerException as err:
            raise ClusterError(f"node {node.name}: {err}") from err
