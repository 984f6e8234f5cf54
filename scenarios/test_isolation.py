"""Isolation suite: per-tenant GPU quotas and LimitRanges, RBAC between tenants, Pod Security admission, secure
accelerator access (tier R), and NetworkPolicy where the CNI enforces it.

Admission verdicts come from the real kube-apiserver (ResourceQuota, LimitRanger, PodSecurity admission plugins);
RBAC verdicts from its authorizer, asked as the tenant's own service account with a token from the TokenRequest API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.contract import FAKE_GPU_LABEL, SIMULATED_LABEL
from harness.errors import Forbidden
from harness.images import probe_image
from harness.kube import KubeClient
from harness.testing import ClusterHandle, Evidence, Tenant
from harness.workloads import GPU, gpu_pod, gpu_quota, logs_until, pod, real_node_selector, wait_bound, wait_quota_published


@pytest.mark.aiconform(requirement="aiconform.quota", tier="S", gpus=4)
def test_gpu_quota_is_per_tenant_and_counts_running_pods(
    kube: KubeClient, tenants: Callable[..., Tenant], evidence: Evidence
) -> None:
    """Tenant A (quota 4 GPUs) runs 2+2 and is refused a third; tenant B's quota is untouched by A's pods."""
    a, b = tenants("team-a"), tenants("team-b")
    for t in (a, b):
        t.create(gpu_quota("gpu", 4))
        wait_quota_published(kube, t.name, "gpu")
    a.create(gpu_pod("a1", 2))
    a.create(gpu_pod("a2", 2))
    with pytest.raises(Forbidden) as refused:
        a.create(gpu_pod("a3", 1))
    b.create(gpu_pod("b1", 4))
    wait_bound(kube, a.name, ["a1", "a2"])
    used = kube.get("ResourceQuota", "gpu", a.name)["status"].get("used", {})
    evidence["tenant_a_refusal"] = refused.value.message
    evidence["tenant_a_used"] = used
    assert "exceeded quota" in refused.value.message
    assert used.get(f"requests.{GPU}") == "4"


@pytest.mark.aiconform(requirement="aiconform.quota", tier="S")
def test_limitrange_caps_gpus_per_container(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """A LimitRange with max nvidia.com/gpu: 2 per container rejects a 4-GPU container at admission."""
    tenant.create({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "gpu-max"},
        "spec": {"limits": [{"type": "Container", "max": {GPU: "2"}}]},
    })
    with pytest.raises(Forbidden) as refused:
        tenant.create(gpu_pod("too-big", 4))
    tenant.create(gpu_pod("fits", 2))
    evidence["refusal"] = refused.value.message
    assert f"maximum {GPU} usage per Container is 2" in refused.value.message


@pytest.mark.aiconform(requirement="aiconform.tenant_isolation", tier="S")
def test_rbac_tenant_cannot_touch_another_tenant(
    aiconform_cluster: ClusterHandle, tenants: Callable[..., Tenant], evidence: Evidence
) -> None:
    """Tenant A's service account (with edit in A) can create in A, but can neither read nor create in tenant B,
    nor read B's secrets."""
    a, b = tenants("rbac-a"), tenants("rbac-b")
    a.create({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "runner-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": a.name}],
    })
    b.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "weights-key"},
              "stringData": {"key": "do-not-leak"}})
    as_a = aiconform_cluster.as_user(a.service_account_token("runner"))
    as_a.create(pod("own-pod", resources={"cpu": "10m"}), namespace=a.name)
    verdicts: dict[str, str] = {}
    for what, call in {
        "list pods in B": lambda: as_a.list("Pod", b.name),
        "create pod in B": lambda: as_a.create(pod("intruder", resources={"cpu": "10m"}), namespace=b.name),
        "read B's secret": lambda: as_a.get("Secret", "weights-key", b.name),
        "list B's secrets": lambda: as_a.list("Secret", b.name),
    }.items():
        try:
            call()
            verdicts[what] = "allowed"
        except Forbidden:
            verdicts[what] = "forbidden"
    evidence["verdicts"] = verdicts
    assert set(verdicts.values()) == {"forbidden"}, verdicts


@pytest.mark.aiconform(requirement="aiconform.tenant_isolation", tier="S")
def test_pod_security_restricted_rejects_privileged_pod(
    kube: KubeClient, tenants: Callable[..., Tenant], evidence: Evidence
) -> None:
    """In a namespace labelled pod-security.kubernetes.io/enforce=restricted, a privileged GPU pod is refused and a
    compliant one is admitted."""
    t = tenants("psa", labels={"pod-security.kubernetes.io/enforce": "restricted"})
    with pytest.raises(Forbidden) as refused:
        t.create(gpu_pod("privileged", 1, security_context={"privileged": True}))
    compliant = gpu_pod("compliant", 1, security_context={
        "allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 1000,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    })
    t.create(compliant)
    evidence["refusal"] = refused.value.message
    assert 'violates PodSecurity "restricted' in refused.value.message


REAL_NODE_SELECTOR = real_node_selector()  # traffic-carrying pods never land on simulated nodes


def _client_exit(kube: KubeClient, t: Tenant, name: str, url: str, image: str,
                 labels: dict[str, str] | None = None) -> str:
    """Run a one-shot wget from tenant ``t`` on the real node and return the pod's final phase (Succeeded or
    Failed)."""
    t.create(pod(name, image=image, tolerate_gpu=False, labels=labels, node_selector=REAL_NODE_SELECTOR,
                 # busybox's own deadline: Debian's static busybox segfaults on `wget -T`
                 command=["timeout", "5", "wget", "-q", "-O-", url]))
    final = kube.wait_for("Pod", namespace=t.name, name=name, timeout=60, what=f"client pod {name} to finish",
                          condition=lambda s: bool(s) and next(iter(s.values()))["status"].get("phase")
                          in ("Succeeded", "Failed"))
    return str(next(iter(final.values()))["status"]["phase"])


@pytest.mark.aiconform(requirement="aiconform.tenant_isolation", tier="R", capabilities=("networkpolicy",))
def test_networkpolicy_default_deny_blocks_cross_tenant_traffic(
    kube: KubeClient, tenants: Callable[..., Tenant], evidence: Evidence
) -> None:
    """Tenant A reaches tenant B's server until B applies a default-deny ingress NetworkPolicy; then it cannot.  An
    allow rule for one labelled pod of tenant A admits exactly that pod.  Runs only where the cluster declares the
    ``networkpolicy`` fact (an enforcing implementation: on ``local-real``, kube-router's firewall)."""

    image = probe_image()
    a, b = tenants("np-a"), tenants("np-b")
    b.create(pod("server", image=image, tolerate_gpu=False, labels={"app": "server"}, node_selector=REAL_NODE_SELECTOR,
                 command=["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && httpd -f -p 8080 -h /www"]))
    server = kube.wait_for("Pod", namespace=b.name, name="server", timeout=60, what="server pod Running",
                           condition=lambda s: bool(s) and bool(next(iter(s.values()))["status"].get("podIP"))
                           and next(iter(s.values()))["status"].get("phase") == "Running")
    url = f"http://{next(iter(server.values()))['status']['podIP']}:8080/"
    before = _client_exit(kube, a, "client-before", url, image)
    b.create({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-all"},
              "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    denied = _client_exit(kube, a, "client-denied", url, image, labels={"role": "allowed"})
    b.create({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "allow-one"},
              "spec": {"podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Ingress"],
                       "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                                                  "kubernetes.io/metadata.name": a.name}},
                                              "podSelector": {"matchLabels": {"role": "allowed"}}}],
                                    "ports": [{"protocol": "TCP", "port": 8080}]}]}})
    allowed = _client_exit(kube, a, "client-allowed", url, image, labels={"role": "allowed"})
    other = _client_exit(kube, a, "client-other", url, image, labels={"role": "other"})
    evidence["before_policy"] = before
    evidence["after_default_deny"] = denied
    evidence["allowed_pod_after_allow_rule"] = allowed
    evidence["other_pod_after_allow_rule"] = other
    assert before == "Succeeded", "the baseline request failed, so the policy check would prove nothing"
    assert denied == "Failed", "default-deny ingress did not block a pod of another tenant"
    assert allowed == "Succeeded", "the allow rule did not admit the pod it names"
    assert other == "Failed", "the allow rule admitted a pod it does not name"


def _start_and_log(kube: KubeClient, t: Tenant, manifest: dict[str, Any], timeout: float = 90) -> dict[str, str]:
    """Start a pod whose containers print, then stay running, and return each container's output (read through
    the apiserver → kubelet log API) once every container has printed its END marker."""

    name = manifest["metadata"]["name"]
    t.create(manifest)

    def failed(s: dict[str, dict[str, Any]]) -> str | None:
        obj = next(iter(s.values()), None)
        if obj is None:
            return None
        if obj["status"].get("phase") in ("Succeeded", "Failed"):
            return f"pod {name} ended ({obj['status']['phase']}) before it could be read"
        for cs in obj.get("status", {}).get("containerStatuses", []) or []:
            reason = (cs.get("state", {}).get("waiting") or {}).get("reason", "")
            if reason in ("ErrImagePull", "ImagePullBackOff", "CreateContainerError", "InvalidImageName"):
                return f"container {cs['name']}: {reason}"
        return None

    kube.wait_for("Pod", namespace=t.name, name=name, timeout=timeout, failure=failed,
                  what=f"pod {name} to run",
                  condition=lambda s: bool(s) and next(iter(s.values()))["status"].get("phase") == "Running")
    return logs_until(kube, t.name, name, [c["name"] for c in manifest["spec"]["containers"]])


def _accelerator_pod(name: str, containers: list[tuple[str, int]], image: str, selector: dict[str, str]) -> dict[str, Any]:
    script = ("nvidia-smi -L 2>&1; echo ---; ls /dev/ 2>&1 | grep -i nvidia; echo ---; "
              "env | grep NVIDIA_VISIBLE; echo END; exec sleep 3600")
    spec_containers = []
    for cname, gpus in containers:
        c: dict[str, Any] = {"name": cname, "image": image, "imagePullPolicy": "IfNotPresent",
                             "command": ["sh", "-c", script]}
        if gpus:
            c["resources"] = {"limits": {GPU: str(gpus)}}
        spec_containers.append(c)
    # Simulated nodes carry the same GPU labels as real ones (aiconform.io/fake-gpu included): keep off them, since
    # only a kubelet runs containers.
    off_simulated = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": SIMULATED_LABEL, "operator": "DoesNotExist"}]}]}}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Always", "nodeSelector": selector, "affinity": off_simulated,
                     "containers": spec_containers, "tolerations": [{"operator": "Exists"}],
                     "terminationGracePeriodSeconds": 0}}


# exclusive: it needs two of the real node's few GPUs, which GPU pods of other checks may land on.
@pytest.mark.aiconform(requirement="secure_accelerator_access", tier="R", gpus=2, exclusive=True,
                       mutations=("gpu-handed-to-many",))
def test_container_sees_only_its_allocated_accelerators(
    kube: KubeClient, tenant: Tenant, evidence: Evidence, aiconform_cluster: ClusterHandle
) -> None:
    """In real containers running side by side: two 1-GPU pods see one distinct GPU each (nvidia-smi and
    /dev/nvidiaN agree); a container that asked for none, even beside one that did in the same pod, sees no GPU."""
    import re

    image = probe_image()
    selector = ({FAKE_GPU_LABEL: "true"} if aiconform_cluster.tier == "R"
                else {"nvidia.com/gpu.present": "true"})
    uuid = re.compile(r"UUID: ((?:GPU|MIG)-[0-9a-fA-F-]+)")
    logs_a = _start_and_log(kube, tenant, _accelerator_pod("gpu-a", [("main", 1)], image, selector))
    logs_b = _start_and_log(kube, tenant, _accelerator_pod("gpu-b", [("main", 1), ("sidecar", 0)], image, selector))
    seen_a = uuid.findall(logs_a["main"])
    seen_b = uuid.findall(logs_b["main"])
    sidecar = logs_b["sidecar"]
    evidence["pod_a_uuids"] = seen_a
    evidence["pod_b_uuids"] = seen_b
    dev_a = [ln for ln in logs_a["main"].split("---")[1].split() if ln]
    evidence["pod_a_dev"] = dev_a
    evidence["sidecar_output"] = sidecar.strip()[:300]
    assert len(seen_a) == 1 and len(seen_b) == 1, (logs_a, logs_b)
    assert seen_a != seen_b, "two pods running side by side were given the same GPU"
    assert len([d for d in dev_a if re.fullmatch(r"nvidia\d+", d)]) == 1, dev_a
    assert not uuid.findall(sidecar)
    assert not re.search(r"\bnvidia\d+\b", sidecar.split("---")[1]), sidecar
