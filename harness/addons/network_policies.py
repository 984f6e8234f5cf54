"""SIG Network's kube-network-policies (``sigs.k8s.io/kube-network-policies``): the NetworkPolicy enforcer at tier R.

It runs as a host-network DaemonSet on the real node, programs an nftables ``inet kube-network-policies`` table that
sends the first packet of each new pod connection to an nfqueue, and judges it against the NetworkPolicies it watches.
The verdict is upstream's; the harness only renders the manifests.

Facts that shaped the manifests (checked on this project's machines, kernel 6.18):
- the kernel has nfnetlink_queue and br_netfilter, so bridged pod-to-pod packets reach the inet hooks;
- it reads its API config only in-cluster (``rest.InClusterConfig``): KUBERNETES_SERVICE_HOST/PORT are set to the
  apiserver's own address, which a host-network pod reaches without kube-proxy;
- ``privileged`` containers fail on this VM (its bounding set lacks CAP_SYS_RESOURCE), so the pod asks for
  NET_ADMIN only, which nftables and nfqueue need;
- containerd 1.6 has no NRI (``--disable-nri``); kernels >= 6.12 need no conntrack DNS workaround
  (``--netfilter-bug-1766-fix=false``).
"""

from __future__ import annotations

from harness.addons.base import Addon, AddonContext, Obj

NAMESPACE = "kube-system"
NAME = "kube-network-policies"
TABLE = "kube-network-policies"
QUEUE_ID = 98


def manifests(ctx: AddonContext) -> list[Obj]:
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/managed-by": "aiconform"}
    rules = [
        {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list", "watch"]},
    ]
    container = {
        "name": NAME,
        "image": ctx.image,
        "imagePullPolicy": "Never",
        "args": [
            "--hostname-override=$(NODE_NAME)",
            f"--nfqueue-id={QUEUE_ID}",
            "--disable-nri=true",
            "--netfilter-bug-1766-fix=false",
            "--metrics-bind-address=127.0.0.1:0",
            "--v=2",
        ],
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "KUBERNETES_SERVICE_HOST", "value": ctx.apiserver_host},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(ctx.apiserver_port)},
        ],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
        "resources": {"requests": {"cpu": "50m", "memory": "50Mi"}},
    }
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "serviceAccountName": NAME,
                    "nodeSelector": dict(ctx.node_selector),
                    "tolerations": [{"operator": "Exists"}],
                    "terminationGracePeriodSeconds": 10,
                    "containers": [container],
                },
            },
        },
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": NAME}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": NAME},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]},
        daemonset,
    ]


ADDON = Addon(
    name=NAME,
    binary=NAME,
    path_in_image="bin/netpol",
    manifests=manifests,
    workload=("DaemonSet", NAMESPACE, NAME),
    facts=("networkpolicy",),
    needs_real_node=True,
    host_undo=(("nft", "delete", "table", "inet", TABLE),),
    description="NetworkPolicy enforcement on the real node (nftables + nfqueue)",
)
