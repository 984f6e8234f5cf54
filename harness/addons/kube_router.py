"""kube-router's NetworkPolicy firewall (``github.com/cloudnativelabs/kube-router/v2``): the enforcer at tier R.

Only its firewall controller runs (``--run-firewall``; no BGP router, no service proxy): a host-network DaemonSet on
the real node that turns NetworkPolicies into iptables chains and ipsets in the FORWARD path of the pod bridge.  The
verdict on every packet is the kernel's, following upstream's rules; the harness only renders the manifests.

Why this enforcer, and the facts that shaped the manifests (checked on this project's machines, kernel 6.18):
- SIG Network's kube-network-policies was the first choice, but it steers packets with the nftables ``queue``
  expression, which this kernel lacks (``CONFIG_NFT_QUEUE`` is not set): its table never loads (ENOENT);
- the kernel has ip_set, xt_set and br_netfilter (``bridge-nf-call-iptables=1``), which kube-router's firewall needs;
- kube-router shells out to ``iptables``/``ipset``, so its image is Debian minbase + those packages (the host's
  iptables is the nf_tables flavour, as is Debian's default in the image);
- it reads its API config in-cluster: KUBERNETES_SERVICE_HOST/PORT point at the apiserver's own address, which a
  host-network pod reaches without kube-proxy;
- ``privileged`` containers fail on this VM (its bounding set lacks CAP_SYS_RESOURCE): the pod asks for NET_ADMIN
  and NET_RAW only;
- its health and metrics listeners default to every interface: health is turned off and metrics stay off.
"""

from __future__ import annotations

from pathlib import Path

from harness import images
from harness.addons.base import Addon, AddonContext, Obj, apiserver_env, cluster_rbac, host_network_workload
from harness.errors import ConfigError

NAMESPACE = "kube-system"
NAME = "kube-router"
BINARY_IN_IMAGE = "/usr/local/bin/kube-router"
# Its iptables chains (KUBE-ROUTER-*, KUBE-POD-FW-*, KUBE-NWPLCY-*) and ipsets stay on the host when its pod is
# killed: ``kube-router --cleanup-config`` on the host removes them at teardown (it needs the host's iptables and ipset).


def image(binary: Path | None, version: str) -> images.DebianImage:
    if binary is None:
        raise ConfigError("kube-router's image needs its pinned binary")
    return images.DebianImage(
        NAME, f"{images.REGISTRY_HOST}/{NAME}:v{version}",
        f"kube-router v{version} (firewall only) on Debian minbase with iptables and ipset",
        packages=("iptables", "ipset"),
        files=((BINARY_IN_IMAGE, binary),),
        config=images.ImageConfig(entrypoint=(BINARY_IN_IMAGE,)),
    )


def manifests(ctx: AddonContext) -> list[Obj]:
    rules = [
        {"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
    ]
    container = {
        "name": NAME,
        "image": ctx.image,
        "imagePullPolicy": "Never",
        "args": [
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            "--hostname-override=$(NODE_NAME)",
            "--health-port=0",
            "--metrics-port=0",
            "--enable-ipv6=false",
            "--v=1",
        ],
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            *apiserver_env(ctx),
        ],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
    }
    return [*cluster_rbac(NAME, NAMESPACE, rules),
            host_network_workload("DaemonSet", NAME, NAMESPACE, ctx, container)]


ADDON = Addon(
    name=NAME,
    binary=NAME,
    image=image,
    manifests=manifests,
    workload=("DaemonSet", NAMESPACE, NAME),
    facts=("networkpolicy",),
    needs_real_node=True,
    host_undo=lambda binary: ((str(binary), "--cleanup-config"),),
    host_tools=(("iptables", "iptables"), ("ipset", "ipset")),
    description="NetworkPolicy enforcement on the real node (kube-router's firewall: iptables + ipsets)",
)
