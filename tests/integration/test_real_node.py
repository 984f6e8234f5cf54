"""Tier R against the real kubelet: one ``local-real`` cluster (kubelet + containerd + runc + CNI, fake GPUs from
fake_gpu_plugin) for the module.  Every verdict comes from the real kubelet, device manager, runtime and apiserver;
container output is read through the pod log API (apiserver -> kubelet).

Needs root and Debian's runc, containernetworking-plugins and busybox-static (.ci/run installs them); containerd is
the pinned v2 (harness/versions.toml).
"""

from __future__ import annotations

import calendar
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import images
from harness.config import Profile, load_profile, parse_profile
from harness.contract import DRA_DRIVER, FAKE_GPU_LABEL, GPU_RESOURCE
from harness.errors import ApiError, ClusterError, UnsupportedCapability
from harness.kube import KubeClient, is_running, unschedulable_message
from harness.nodes import node_ready
from harness.proc import pid_alive
from harness.providers.local import LocalCluster, linuxhost, realnode
from tests.integration.conftest import running_cluster

NODE = "aiconform-real-0"
REAL_GPUS = 8  # harness/profiles/local-real.yaml
UUID_RE = re.compile(r"\(UUID: ((?:GPU|MIG)-[0-9a-f-]+)\)")


def _skip_reason() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "tier R needs root on Linux (a real kubelet, containerd and network interfaces)"
    missing = realnode.missing_packages()
    if missing:
        return f"the real node needs packages that are not installed: apt-get install {' '.join(missing)}"
    return None


pytestmark = [pytest.mark.upstream("kube-router", "jobset"),
              pytest.mark.realnode, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]


# -- fixtures and helpers ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rn")


@pytest.fixture(scope="module")
def cluster(state_root: Path) -> Iterator[LocalCluster]:
    with running_cluster("rn", state_root, load_profile("local-real")) as c:
        yield c


@pytest.fixture(scope="module")
def record(cluster: LocalCluster) -> dict[str, Any]:
    rec = realnode.load_record(cluster)
    assert rec is not None
    return rec


@pytest.fixture(scope="module")
def namespace(client: KubeClient) -> str:
    name = f"rn-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": {"aiconform.io/test": "realnode"}}})
    client.wait_for("ServiceAccount", namespace=name, name="default", condition=bool, timeout=30)
    return name


def container(name: str, script: str, gpus: int = 0, resource: str = GPU_RESOURCE) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": images.BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                         "command": ["sh", "-c", script]}
    if gpus:
        c["resources"] = {"limits": {resource: str(gpus)}}
    return c


def pod(name: str, containers: list[dict[str, Any]], *, restart: str = "Never") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": NODE}, "restartPolicy": restart,
                     "terminationGracePeriodSeconds": 0, "containers": containers}}


def _pod_failure(state: dict[str, Any]) -> str | None:
    for p in state.values():
        msg = unschedulable_message(p)
        if msg:
            return f"unschedulable: {msg}"
        if p.get("status", {}).get("phase") == "Failed":
            return f"pod {p['metadata']['name']} failed: {p.get('status')}"
        for cs in p.get("status", {}).get("containerStatuses", []) or []:
            waiting = cs.get("state", {}).get("waiting", {})
            if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "CreateContainerError",
                                         "CreateContainerConfigError", "RunContainerError"):
                return f"container {cs['name']}: {waiting}"
    return None


def run_pods(client: KubeClient, ns: str, pods: list[dict[str, Any]], phase: str, timeout: float = 60) -> None:
    for p in pods:
        client.create(p, namespace=ns)
    names = {f"{ns}/{p['metadata']['name']}" for p in pods}

    def reached(state: dict[str, Any]) -> bool:
        got = {k: v for k, v in state.items() if k in names}
        if len(got) != len(names):
            return False
        if phase == "Running":
            return all(is_running(p) and all(cs.get("ready") for cs in p["status"].get("containerStatuses", []))
                       for p in got.values())
        return all(p.get("status", {}).get("phase") == phase for p in got.values())

    client.wait_for("Pod", namespace=ns, condition=reached, failure=_pod_failure, timeout=timeout,
                    what=f"pods {sorted(names)} to be {phase}")


def delete_pods(client: KubeClient, ns: str, names: list[str]) -> None:
    for n in names:
        client.delete("Pod", n, namespace=ns, grace_period=0)
    client.wait_for("Pod", namespace=ns, condition=lambda s: not any(k.split("/")[1] in names for k in s),
                    timeout=60, what=f"pods {names} to be gone")


def pod_log(client: KubeClient, ns: str, name: str, container_name: str, *, until: str = "END",
            timeout: float = 15) -> str:
    """The container's log through the apiserver (which asks the kubelet); bounded wait for the ``until`` line
    (a running container may not have written it yet; no watch exists for log content)."""
    deadline = time.monotonic() + timeout
    while True:
        text: str = client.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}/log",
                                   params={"container": container_name}, raw=True)
        if until in text.split("\n") or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def gpu_uuids(text: str) -> list[str]:
    return UUID_RE.findall(text)


def device_nodes(text: str) -> list[str]:
    return sorted(ln.strip() for ln in text.splitlines() if ln.strip().startswith("/dev/nvidia"))


def node(client: KubeClient) -> dict[str, Any]:
    return client.get("Node", NODE)


def wait_allocatable(client: KubeClient, resource: str, value: str, timeout: float = 30,
                     since: float | None = None) -> dict[str, Any]:
    """Watch the node until its allocatable ``resource`` is ``value`` (and, with ``since``, the kubelet has
    posted a heartbeat at or after that time)."""

    def ok(state: dict[str, Any]) -> bool:
        n = state.get(NODE)
        if n is None or n["status"].get("allocatable", {}).get(resource) != value or not node_ready(n):
            return False
        if since is None:
            return True
        ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
        beat = calendar.timegm(time.strptime(ready["lastHeartbeatTime"], "%Y-%m-%dT%H:%M:%SZ"))
        return beat >= int(since)

    return client.wait_for("Node", name=NODE, condition=ok, timeout=timeout,
                           what=f"node {NODE} allocatable {resource}={value}")[NODE]


def plugin_inventory(rec: dict[str, Any]) -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-m", "fake_gpu_plugin", "inventory", "--config", rec["plugin_config"],
                          "--node-name", rec["node"]], capture_output=True, text=True, check=True, timeout=30)
    resources: dict[str, list[str]] = json.loads(out.stdout)["resources"]
    return resources


def set_health(rec: dict[str, Any], device: str, healthy: bool) -> None:
    subprocess.run([sys.executable, "-m", "fake_gpu_plugin", "health", "--state-dir", rec["plugin_state_dir"],
                    "--device", device, "--healthy" if healthy else "--unhealthy"],
                   check=True, capture_output=True, timeout=30)


def component_pids(c: LocalCluster) -> list[int]:
    return [pid for comp, pid in c.running_components().items() if comp in realnode.COMPONENTS]


# -- the node ----------------------------------------------------------------------------------------------------------


def test_node_is_real_and_its_gpus_come_from_the_plugin(client: KubeClient, record: dict[str, Any]) -> None:
    n = node(client)
    status = n["status"]
    assert node_ready(n)
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert {"type": "InternalIP", "address": realnode.NODE_IP} in status["addresses"]
    inventory = plugin_inventory(record)
    assert status["capacity"][GPU_RESOURCE] == status["allocatable"][GPU_RESOURCE] == \
        str(len(inventory[GPU_RESOURCE])) == str(REAL_GPUS)
    labels = n["metadata"]["labels"]
    assert labels[FAKE_GPU_LABEL] == "true"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert labels["nvidia.com/gpu.count"] == str(REAL_GPUS)
    # the kubelet's device-plugin registry holds the plugin's socket
    assert any(p.name.startswith("aiconform-fakegpu") for p in realnode.DEVICE_PLUGIN_DIR.iterdir())


def test_gpu_pods_get_exactly_their_devices_and_metrics_name_them(
        client: KubeClient, namespace: str, record: dict[str, Any]) -> None:
    script = "nvidia-smi -L; ls /dev/nvidia*; echo END; sleep 3600"
    pods = [pod(name, [container("main", script, gpus=2)], restart="Always") for name in ("gpu-a", "gpu-b")]
    run_pods(client, namespace, pods, "Running")
    seen: dict[str, list[str]] = {}
    for name in ("gpu-a", "gpu-b"):
        out = pod_log(client, namespace, name, "main")
        uuids = gpu_uuids(out)
        assert len(uuids) == 2 and len(set(uuids)) == 2, out
        nodes = device_nodes(out)
        assert "/dev/nvidiactl" in nodes and "/dev/nvidia-uvm" in nodes, out
        assert len([d for d in nodes if re.fullmatch(r"/dev/nvidia\d+", d)]) == 2, out
        seen[name] = uuids
    assert not set(seen["gpu-a"]) & set(seen["gpu-b"]), f"two pods share a GPU: {seen}"
    assert set(seen["gpu-a"]) | set(seen["gpu-b"]) <= set(plugin_inventory(record)[GPU_RESOURCE])

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{record['metrics_port']}/metrics", timeout=10).read().decode()
    for uuid in seen["gpu-a"]:
        line = next(ln for ln in metrics.splitlines() if ln.startswith("DCGM_FI_DEV_GPU_UTIL{") and
                    f'UUID="{uuid}"' in ln)
        assert 'pod="gpu-a"' in line and f'namespace="{namespace}"' in line and 'container="main"' in line, line
    delete_pods(client, namespace, ["gpu-a", "gpu-b"])


def test_pod_without_gpus_sees_none(client: KubeClient, namespace: str) -> None:
    script = "ls /dev/nvidia* 2>&1; command -v nvidia-smi || echo no-nvidia-smi; echo END"
    run_pods(client, namespace, [pod("no-gpu", [container("main", script)])], "Succeeded")
    out = pod_log(client, namespace, "no-gpu", "main")
    assert "no-nvidia-smi" in out and not device_nodes(out), out


def test_only_the_container_that_asked_sees_a_gpu(client: KubeClient, namespace: str) -> None:
    script = "nvidia-smi -L 2>&1; ls /dev/nvidia* 2>&1; echo END"
    p = pod("two-ctr", [container("with-gpu", script, gpus=1), container("without", script)])
    run_pods(client, namespace, [p], "Succeeded")
    with_gpu = pod_log(client, namespace, "two-ctr", "with-gpu")
    without = pod_log(client, namespace, "two-ctr", "without")
    assert len(gpu_uuids(with_gpu)) == 1 and len(device_nodes(with_gpu)) == 3, with_gpu
    assert not gpu_uuids(without) and not device_nodes(without), without
    delete_pods(client, namespace, ["two-ctr"])


def test_pod_answers_from_the_host_on_its_ip(client: KubeClient, namespace: str) -> None:
    script = "echo hello-from-pod > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
    run_pods(client, namespace, [pod("web", [container("web", script)], restart="Always")], "Running")
    ip = client.get("Pod", "web", namespace=namespace)["status"]["podIP"]
    assert ip.startswith("10.244.0.")
    deadline = time.monotonic() + 15
    while True:  # the server binds right after the container starts; bounded retry
        try:
            body = urllib.request.urlopen(f"http://{ip}:8080/index.html", timeout=2).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert body.strip() == "hello-from-pod"
    delete_pods(client, namespace, ["web"])


def test_unhealthy_device_lowers_allocatable_and_healthy_restores_it(
        client: KubeClient, record: dict[str, Any]) -> None:
    uuid = plugin_inventory(record)[GPU_RESOURCE][1]
    set_health(record, uuid, healthy=False)
    try:
        n = wait_allocatable(client, GPU_RESOURCE, str(REAL_GPUS - 1))
        assert n["status"]["capacity"][GPU_RESOURCE] == str(REAL_GPUS)
    finally:
        set_health(record, uuid, healthy=True)
    wait_allocatable(client, GPU_RESOURCE, str(REAL_GPUS))


# -- the DRA driver beside the device plugin (realNode.dra: GPUs 8 and 9, the second carved into MIG partitions) --------

DRA_SLICES = "resource.k8s.io/v1"


def dra_devices(client: KubeClient) -> dict[str, dict[str, Any]]:
    items = client.list("ResourceSlice", api_version=DRA_SLICES)["items"]
    return {d["name"]: d for s in items if s["spec"].get("nodeName") == NODE for d in s["spec"].get("devices") or []}


def dra_claim_pod(name: str, template: str, script: str) -> dict[str, Any]:
    p = pod(name, [container("main", script), container("side", script)])
    p["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": template}]
    p["spec"]["containers"][0]["resources"] = {"claims": [{"name": "gpu"}]}
    return p


def test_dra_pool_is_beside_the_device_plugin_pool(client: KubeClient, record: dict[str, Any]) -> None:
    """Two pools on one node, no GPU in both: the plugin's 8 GPUs and the DRA driver's own (host GPUs 8, 9)."""
    devices = dra_devices(client)
    gpus = {n: d for n, d in devices.items() if d["attributes"]["type"]["string"] == "gpu"}
    assert sorted(gpus) == ["gpu-8", "gpu-9"]
    assert sorted(n for n in devices if "-mig-" in n) == ["gpu-9-mig-0-3g-40gb", "gpu-9-mig-1-2g-20gb",
                                                          "gpu-9-mig-2-1g-10gb", "gpu-9-mig-3-1g-10gb"]
    plugin = set(plugin_inventory(record)[GPU_RESOURCE])
    assert not plugin & {d["attributes"]["uuid"]["string"] for d in devices.values()}
    assert node(client)["status"]["allocatable"][GPU_RESOURCE] == str(REAL_GPUS)


def test_dra_claim_injects_its_gpu_through_cdi_and_unprepare_removes_the_spec(
        client: KubeClient, namespace: str, record: dict[str, Any]) -> None:
    """A claim for a MIG partition: the real kubelet calls Prepare, containerd v2 injects the CDI devices into the
    claiming container only; deleting the pod unprepares (the CDI spec is gone)."""
    client.create({"apiVersion": DRA_SLICES, "kind": "ResourceClaimTemplate", "metadata": {"name": "mig-3g"},
                   "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                       "deviceClassName": "3g.40gb.mig.nvidia.com"}}]}}}}, namespace=namespace)
    script = "nvidia-smi -L 2>&1; ls /dev/nvidia* 2>&1; env | grep NVIDIA_VISIBLE; echo END; exec sleep 3600"
    run_pods(client, namespace, [dra_claim_pod("dra-mig", "mig-3g", script)], "Running")
    main = pod_log(client, namespace, "dra-mig", "main")
    side = pod_log(client, namespace, "dra-mig", "side")
    mig_uuid = dra_devices(client)["gpu-9-mig-0-3g-40gb"]["attributes"]["uuid"]["string"]
    # nvidia-smi -L lists the parent GPU and, under it, the one MIG device the claim holds
    assert [u for u in gpu_uuids(main) if u.startswith("MIG-")] == [mig_uuid], main
    assert "/dev/nvidia9" in device_nodes(main), main
    assert f"NVIDIA_VISIBLE_DEVICES={mig_uuid}" in main
    assert not gpu_uuids(side) and not device_nodes(side), side
    cdi_dir = Path(record["dra"]["cdi_dir"])
    assert len(list(cdi_dir.glob("*.json"))) == 1
    delete_pods(client, namespace, ["dra-mig"])
    deadline = time.monotonic() + 30  # Unprepare follows the pod's deletion (kubelet pod cleanup)
    while list(cdi_dir.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(cdi_dir.glob("*.json"))


def test_unhealthy_dra_gpu_is_tainted_and_not_allocated(
        client: KubeClient, namespace: str, record: dict[str, Any]) -> None:
    """The health control file of the DRA pool: an unhealthy GPU gets the device taint in its slice and a claim
    for exactly that GPU is not allocated; healthy again, the taint goes and the claim is allocated."""
    uuid = dra_devices(client)["gpu-8"]["attributes"]["uuid"]["string"]
    state = {"plugin_state_dir": record["dra"]["state_dir"]}
    set_health(state, uuid, healthy=False)
    try:
        client.wait_for("ResourceSlice", api_version=DRA_SLICES, timeout=15, what="gpu-8 tainted",
                        condition=lambda _s: bool(dra_devices(client)["gpu-8"].get("taints")))
        client.create({"apiVersion": DRA_SLICES, "kind": "ResourceClaim", "metadata": {"name": "exact"},
                       "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                           "deviceClassName": DRA_DRIVER, "selectors": [{"cel": {"expression":
                               f'device.attributes["{DRA_DRIVER}"].uuid == "{uuid}"'}}]}}]}}}, namespace=namespace)
        p = pod("dra-exact", [container("main", "sleep 3600")], restart="Always")
        p["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": "exact"}]
        p["spec"]["containers"][0]["resources"] = {"claims": [{"name": "gpu"}]}
        client.create(p, namespace=namespace)
        client.wait_for("Pod", namespace=namespace, name="dra-exact", timeout=30, what="dra-exact Unschedulable",
                        condition=lambda s: any(unschedulable_message(o) for o in s.values()))
    finally:
        set_health(state, uuid, healthy=True)
    client.wait_for("Pod", namespace=namespace, name="dra-exact", timeout=60, what="dra-exact Running",
                    condition=lambda s: any(is_running(o) for o in s.values()))
    delete_pods(client, namespace, ["dra-exact"])


def test_kubelet_restart_plugin_reregisters(cluster: LocalCluster, client: KubeClient, namespace: str) -> None:
    log = cluster.logfile("realnode-plugin")
    registrations = log.read_text().count("registered with the kubelet")
    t0 = time.time()
    cluster.restart_node(NODE)
    wait_allocatable(client, GPU_RESOURCE, str(REAL_GPUS), timeout=60, since=t0)
    deadline = time.monotonic() + 10  # the plugin logs its new registration within ~50 ms of the new socket
    while log.read_text().count("registered with the kubelet") <= registrations and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log.read_text().count("registered with the kubelet") > registrations
    # and the restarted kubelet still allocates devices.  (2, not 4: until its pod sources are synced, a restarted
    # kubelet still counts the devices of pods in its checkpoint; a 4-GPU pod admitted in that window fails with
    # UnexpectedAdmissionError.  That is upstream kubelet behaviour, observed here, not something to paper over.)
    script = "nvidia-smi -L; echo END"
    run_pods(client, namespace, [pod("after-restart", [container("main", script, gpus=2)])], "Succeeded")
    assert len(gpu_uuids(pod_log(client, namespace, "after-restart", "main"))) == 2
    with pytest.raises(UnsupportedCapability):
        cluster.restart_node("a100-0")
    # the restarted kubelet deleted the DRA driver's slices at its start; the driver publishes them again
    client.wait_for("ResourceSlice", api_version=DRA_SLICES, timeout=30, what="the DRA slices re-published",
                    condition=lambda _s: "gpu-8" in dra_devices(client))


def test_networkpolicy_is_enforced_by_the_installed_enforcer(cluster: LocalCluster, tmp_path: Path) -> None:
    """local-real installs kube-router's firewall on the real node and so declares the ``networkpolicy`` fact; the
    isolation suite's NetworkPolicy check (default-deny, then an allow rule for exactly one pod) runs and passes."""
    info = cluster.info()
    assert "networkpolicy" in info.facts
    ds = cluster.client().get("DaemonSet", "kube-router", namespace="kube-system")
    assert ds["status"]["numberAvailable"] == ds["status"]["desiredNumberScheduled"] == 1
    repo = Path(__file__).resolve().parents[2]
    from harness.testing.cluster import ClusterInfo

    cluster_info = ClusterInfo(kubeconfig=str(cluster.kubeconfig()), run_id=f"np-{secrets.token_hex(2)}",
                               provider="local", profile="local-real", tier="R",
                               capabilities=info.facts).write(tmp_path / "cluster-info.json")
    argv = [sys.executable, "-m", "pytest", str(repo / "scenarios" / "test_isolation.py"), "-k", "networkpolicy",
            "-p", "no:cacheprovider", "-q", f"--rootdir={repo}", f"--aiconform-cluster-info={cluster_info}",
            f"--aiconform-report-dir={tmp_path}"]
    res = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    checks = json.loads((tmp_path / "results.json").read_text())["checks"]
    [check] = [c for c in checks if "networkpolicy" in c["id"]]
    assert check["status"] == "passed", check
    assert check["evidence"]["other_pod_after_allow_rule"] == "Failed"


def test_jobset_installed_through_the_installer_serves_webhooks_the_apiserver_calls(
    cluster: LocalCluster, client: KubeClient, namespace: str
) -> None:
    """JobSet v0.12.0 through the one installer at tier R: its controller pod on the real node serves its webhooks
    with the harness CA's certificate; the apiserver calls them, an invalid JobSet is refused with JobSet's own
    message, and a valid one's pods run on the real node."""
    from harness.providers import ensure_addons
    from harness.workloads import pin_to_real_node

    assert ensure_addons(cluster, "jobset") == []
    [manager] = client.list("Pod", "jobset-system", label_selector="control-plane=controller-manager")["items"]
    assert manager["spec"]["nodeName"] == NODE and is_running(manager)
    hooks = client.get("ValidatingWebhookConfiguration", "jobset-validating-webhook-configuration")
    assert all(wh["clientConfig"].get("caBundle") for wh in hooks["webhooks"])

    def jobset(name: str, **spec: Any) -> dict[str, Any]:
        template = {"spec": {"parallelism": 1, "completions": 1, "backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
            "containers": [container("w", "echo jobset-worker-ran")]}}}}
        return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicatedJobs": [{"name": "workers", "replicas": 2, "template": template}], **spec}}

    with pytest.raises(ApiError) as err:
        client.create(jobset("bad", successPolicy={"operator": "All", "targetReplicatedJobs": ["drivers"]}))
    assert 'admission webhook "vjobset.kb.io" denied the request' in err.value.message
    assert "invalid replicatedJob name 'drivers' does not appear in .spec.ReplicatedJobs" in err.value.message

    client.create(pin_to_real_node(jobset("good")))
    sel = "jobset.sigs.k8s.io/jobset-name=good"
    pods = client.wait_for("Pod", namespace=namespace, label_selector=sel, failure=_pod_failure, timeout=90,
                           condition=lambda st: len(st) == 2 and all(
                               p.get("status", {}).get("phase") == "Succeeded" for p in st.values()),
                           what="JobSet good's two pods to succeed on the real node")
    for p in pods.values():
        assert p["spec"]["nodeName"] == NODE
        assert "jobset-worker-ran" in pod_log(client, namespace, p["metadata"]["name"], "w", until="jobset-worker-ran")
    client.wait_for("JobSet", namespace=namespace, name="good", timeout=60, what="JobSet good to complete",
                    condition=lambda st: any(c["type"] == "Completed" and c["status"] == "True" for js in st.values()
                                             for c in js.get("status", {}).get("conditions", [])))


def test_load_image_makes_an_archive_runnable_on_the_real_node(
    cluster: LocalCluster, client: KubeClient, namespace: str, tmp_path: Path
) -> None:
    """The LoadsImages ability: an image built here, never in any registry, runs once loaded (pull policy Never)."""
    image = images.static_binary_image(f"loaded-{secrets.token_hex(3)}", images.BUSYBOX_BINARY, dest="bin/busybox",
                                       args=("echo", "loaded-image-ran"))
    cluster.load_image(images.build(image, progress=lambda line: None).archive)
    loaded = {"name": "main", "image": image.ref, "imagePullPolicy": "Never"}
    run_pods(client, namespace, [pod("loaded", [loaded])], "Succeeded")
    assert "loaded-image-ran" in pod_log(client, namespace, "loaded", "main", until="loaded-image-ran")


def test_second_real_node_on_this_host_is_refused(cluster: LocalCluster, state_root: Path) -> None:
    other = LocalCluster("rn-other", root=state_root, progress=lambda m: None)
    with pytest.raises(ClusterError, match="one real node per host"):
        other.create(load_profile("local-real"))
    assert not other.dir.exists()  # refused before anything started
    assert realnode.load_record(cluster) is not None and cluster.is_up()


def test_down_leaves_nothing(cluster: LocalCluster, record: dict[str, Any], state_root: Path) -> None:
    pids = component_pids(cluster)
    assert len(pids) == 4  # containerd, kubelet, the device plugin, the DRA driver
    env = {**os.environ, "AICONFORM_STATE_DIR": str(state_root)}
    cli = str(Path(sys.executable).parent / "aiconform")
    assert "KUBE-ROUTER-FORWARD" in iptables_filter()  # the enforcer's chains, made by its pod on this host
    subprocess.run([cli, "down", "--name", cluster.name], env=env, check=True, capture_output=True, timeout=120)
    assert realnode.host_leftovers(record, cluster.dir, pids) == []
    assert "KUBE-ROUTER" not in iptables_filter() and "KUBE-POD-FW" not in iptables_filter()


def iptables_filter() -> str:
    return subprocess.run(["iptables-save", "-t", "filter"], check=True, capture_output=True, text=True,
                          timeout=30).stdout


# -- MIG (mixed) on a second, smaller cluster: after the first is gone (one real node per host) -------------------


def mig_profile() -> Profile:
    return parse_profile({
        "name": "local-real-mig", "provider": "local",
        "realNode": {"enabled": True, "name": NODE, "gpu": {
            "model": "A100-SXM4-80GB", "count": 1,
            "mig": {"strategy": "mixed", "layout": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}}}},
    }, name="local-real-mig")


def test_mixed_mig_resources_on_the_real_node(state_root: Path, first_cluster_down: None) -> None:
    c = LocalCluster(f"rnm-{secrets.token_hex(2)}", root=state_root)
    c.create(mig_profile())
    rec = realnode.load_record(c)
    assert rec is not None
    try:
        client = c.client()
        alloc = node(client)["status"]["allocatable"]
        assert alloc.get("nvidia.com/mig-3g.40gb") == "1"
        assert alloc.get("nvidia.com/mig-2g.20gb") == "1"
        assert alloc.get("nvidia.com/mig-1g.10gb") == "2"
        assert GPU_RESOURCE not in alloc or alloc[GPU_RESOURCE] == "0"
        client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mig"}})
        client.wait_for("ServiceAccount", namespace="mig", name="default", condition=bool, timeout=30)
        p = pod("mig", [container("main", "nvidia-smi -L; echo END", gpus=1, resource="nvidia.com/mig-1g.10gb")])
        run_pods(client, "mig", [p], "Succeeded")
        out = pod_log(client, "mig", "mig", "main")
        migs = [u for u in gpu_uuids(out) if u.startswith("MIG-")]
        assert len(migs) == 1 and "1g.10gb" in out, out
    finally:
        pids = component_pids(c)
        c.delete()
    assert realnode.host_leftovers(rec, c.dir, pids) == []


@pytest.fixture
def first_cluster_down(cluster: LocalCluster) -> None:
    """Orders the MIG cluster after the module's cluster is down (one real node per host)."""
    if cluster.dir.exists():
        cluster.delete()


def _crash(c: LocalCluster, rec: dict[str, Any]) -> None:
    """Every process of the cluster killed at once, as a machine restart or an OOM kill of the CLI's whole session
    would leave it: no teardown runs, the run dir, the host claim and every host change stay behind."""
    pids = [p for name in c.procs.recorded() if (p := c.procs.pid(name)) is not None]
    pids += linuxhost.pids_with_arg(rec["containerd"]["socket"])  # the container shims
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_the_next_bring_up_undoes_what_a_crashed_real_node_left(state_root: Path, first_cluster_down: None) -> None:
    """A crashed tier R cluster leaves its routes (the unreachable podCIDR route), links, iptables chains and host
    claim; the next tier R bring-up says so and undoes them (as that cluster's `down` would) instead of refusing
    with "podCIDR overlaps"."""
    crashed = LocalCluster(f"rnc-{secrets.token_hex(2)}", root=state_root, progress=lambda m: None)
    crashed.create(mig_profile())
    rec = realnode.load_record(crashed)
    assert rec is not None
    pids = component_pids(crashed)
    _crash(crashed, rec)
    assert realnode.host_leftovers(rec, crashed.dir, pids), "the crash left nothing: the test proves nothing"
    lines: list[str] = []
    after = LocalCluster(f"rnc-{secrets.token_hex(2)}", root=state_root, progress=lines.append)
    try:
        after.create(mig_profile())
        assert any(f"the real node of cluster {crashed.name!r}" in line and "crashed" in line for line in lines), lines
        assert not crashed.dir.exists() and node_ready(node(after.client()))
    finally:
        after_rec, after_pids = realnode.load_record(after), component_pids(after)
        after.delete()
    # Both clusters use the same host paths (kubelet root, links, cgroups): judged once the second is gone too.
    assert after_rec is not None and realnode.host_leftovers(after_rec, after.dir, after_pids) == []
    assert realnode.host_leftovers(rec, crashed.dir, pids) == []
