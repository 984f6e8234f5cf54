"""Pure argv pieces of the local control plane that a profile or the real node decides: where kube-apiserver listens
and what it advertises, the aggregation layer, feature gates, ``--runtime-config`` and a profile's extra flags.

Owns only computing flags and addresses from settings (no files written, nothing started): cluster.py inserts
these lists into its argv, so the argv builders stay where they are.  Also owns the names of the flags the harness
sets itself per component (``HARNESS_FLAGS``), which a profile's ``extraArgs`` may not override;
tests/unit/test_controlplane_flags.py checks that list against the argv cluster.py really builds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from harness.errors import ConfigError
from harness.pki import FRONT_PROXY_CLIENT, Pki

LOOPBACK = "127.0.0.1"

HARNESS_FLAGS: dict[str, frozenset[str]] = {
    "kube-apiserver": frozenset({
        "etcd-servers", "bind-address", "advertise-address", "secure-port", "tls-cert-file", "tls-private-key-file",
        "client-ca-file", "service-cluster-ip-range", "service-account-issuer", "service-account-key-file",
        "service-account-signing-key-file", "authorization-mode", "enable-admission-plugins",
        "endpoint-reconciler-type", "allow-privileged", "cert-dir", "kubelet-client-certificate",
        "kubelet-client-key", "kubelet-preferred-address-types", "profiling", "event-ttl", "max-requests-inflight",
        "max-mutating-requests-inflight", "enable-priority-and-fairness", "requestheader-client-ca-file",
        "requestheader-allowed-names", "requestheader-extra-headers-prefix", "requestheader-group-headers",
        "requestheader-username-headers", "proxy-client-cert-file", "proxy-client-key-file",
        "enable-aggregator-routing", "feature-gates", "runtime-config", "permit-port-sharing",
    }),
    "kube-controller-manager": frozenset({
        "kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig", "bind-address", "secure-port",
        "leader-elect", "service-account-private-key-file", "root-ca-file", "cluster-signing-cert-file",
        "cluster-signing-key-file", "use-service-account-credentials", "cert-dir", "profiling", "kube-api-qps",
        "kube-api-burst", "feature-gates",
    }),
    "kube-scheduler": frozenset({
        "config", "authentication-kubeconfig", "authorization-kubeconfig", "bind-address", "secure-port",
        "cert-dir", "profiling", "feature-gates",
        # set through its --config file (kubeconfig, client QPS, leader election): flags would fight the file
        "kubeconfig", "kube-api-qps", "kube-api-burst", "leader-elect",
    }),
    "kubelet": frozenset({
        "config", "config-dir", "kubeconfig", "root-dir", "hostname-override", "node-ip", "v", "feature-gates",
        # fields the harness writes into the kubelet's config file (a flag would silently override the file)
        "address", "port", "read-only-port", "healthz-bind-address", "healthz-port", "tls-cert-file",
        "tls-private-key-file", "client-ca-file", "anonymous-auth", "authentication-token-webhook",
        "authorization-mode", "cgroup-driver", "fail-cgroupv1", "fail-swap-on", "container-runtime-endpoint",
        "node-status-update-frequency", "node-status-report-frequency", "eviction-hard",
        "image-gc-high-threshold", "image-gc-low-threshold", "make-iptables-util-chains", "pod-logs-dir",
        "register-with-taints", "rotate-certificates", "rotate-server-certificates", "resolv-conf", "max-pods",
    }),
}
"""Flags the harness sets itself, per component: never taken from a profile's ``extraArgs``."""


def first_service_ip(service_cidr: str) -> str:
    """The ``kubernetes`` Service's ClusterIP: the first address of the service range (10.96.0.1 for 10.96.0.0/16)."""
    try:
        net = ipaddress.ip_network(service_cidr, strict=False)
    except ValueError as err:
        raise ConfigError(f"controlPlane.serviceCIDR: {err}") from None
    if net.num_addresses < 4:
        raise ConfigError(f"controlPlane.serviceCIDR: {service_cidr} is too small")
    return str(net[1])


def apiserver_host(node_ip: str | None) -> str:
    """The one address kube-apiserver binds to and every kubeconfig names: the real node's own address when the
    cluster has one (pods reach it through the bridge; host processes reach it as a local address), else loopback."""
    return node_ip or LOOPBACK


def apiserver_serving_ips(service_cidr: str, node_ip: str | None) -> tuple[str, ...]:
    """IP SANs of the apiserver's serving certificate: loopback, the ``kubernetes`` Service IP, the node address."""
    ips = [LOOPBACK, first_service_ip(service_cidr)]
    if node_ip:
        ips.append(node_ip)
    return tuple(ips)


def apiserver_address_args(node_ip: str | None) -> list[str]:
    """Where kube-apiserver listens and what it advertises.

    Tier S (no real node): 127.0.0.1 only, and no endpoint reconciler (the apiserver refuses a loopback address in
    the ``kubernetes`` Service's endpoints).  Tier R: the real node's address, advertised, and the lease reconciler
    keeps the ``kubernetes`` Service's endpoints pointing at it, so pods reach the API through that Service.
    ``--bind-address`` takes a single address, so the apiserver does not also listen on loopback then.
    """
    if node_ip is None:
        return [f"--bind-address={LOOPBACK}", f"--advertise-address={LOOPBACK}", "--endpoint-reconciler-type=none"]
    return [f"--bind-address={node_ip}", f"--advertise-address={node_ip}", "--endpoint-reconciler-type=lease"]


def aggregation_args(pki: Pki) -> list[str]:
    """The aggregation layer: the front-proxy CA and client certificate (Pki.create_front_proxy) and the request
    headers extension apiservers read the user from.  ``--enable-aggregator-routing``: the apiserver is a host
    process that cannot reach Service IPs (no kube-proxy in the host's path, and a Service IP must never leave the
    machine), so it proxies to the APIService's endpoint addresses instead."""
    return [
        f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--proxy-client-cert-file={pki.dir / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki.dir / 'front-proxy-client.key'}",
        "--enable-aggregator-routing=true",
    ]


def feature_gate_args(gates: Mapping[str, bool]) -> list[str]:
    """``--feature-gates=A=true,B=false`` (sorted), or nothing."""
    if not gates:
        return []
    return ["--feature-gates=" + ",".join(f"{k}={str(v).lower()}" for k, v in sorted(gates.items()))]


def runtime_config_args(runtime_config: Mapping[str, str]) -> list[str]:
    if not runtime_config:
        return []
    return ["--runtime-config=" + ",".join(f"{k}={v}" for k, v in sorted(runtime_config.items()))]


def extra_args(component: str, argv: list[str], extra: Mapping[str, str]) -> list[str]:
    """A profile's extra flags for ``component`` as ``--name=value``; refuses a flag already in ``argv`` (the
    harness's own: checked before anything starts by harness/flags.py, and here again against the real argv)."""
    have = flag_names(argv)
    for name in extra:
        if name in have or name in HARNESS_FLAGS.get(component, frozenset()):
            raise ConfigError(f"extraArgs.{component}.{name}: --{name} is set by the harness and cannot be "
                              "overridden")
    return [f"--{k}={v}" for k, v in sorted(extra.items())]


def flag_names(argv: list[str]) -> set[str]:
    """The long flags in an argv (``--name=value`` or ``--name``), without dashes."""
    return {a[2:].split("=", 1)[0] for a in argv if a.startswith("--")}


def kubelet_feature_gates(config: dict[str, Any], gates: Mapping[str, bool]) -> dict[str, Any]:
    """The kubelet config with ``featureGates`` (the kubelet takes gates from its config file)."""
    return {**config, "featureGates": dict(sorted(gates.items()))} if gates else config

