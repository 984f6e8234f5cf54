"""The training workload's Kubernetes objects as plain dicts (pure: no client, no I/O).

- :func:`training_runtime`: a namespaced Kubeflow Trainer ``TrainingRuntime`` with the JAX ML policy: one replicated
  job ``node`` whose pods run the training image, mount the checkpoint claim at :data:`CHECKPOINT_MOUNT`, carry the
  tenant's PriorityClass, and whose JobSet ``failurePolicy.maxRestarts`` restarts the whole group when one worker
  fails (a killed JAX worker takes its peers down: PLATFORM-NOTES 2026-11-27);
- :func:`train_job`: a ``TrainJob`` of that runtime (node count, GPUs per node, training settings as env);
- :func:`checkpoint_volume`: a ``hostPath`` PersistentVolume object pre-bound (``claimRef``) to the claim of
  :func:`checkpoint_claim`, so the claim is Bound by the real PV controller to exactly this volume.
"""

from __future__ import annotations

from typing import Any

from harness.contract import GPU_RESOURCE
from harness.images import pull_policy

Obj = dict[str, Any]
TRAINER_API = "trainer.kubeflow.org/v1alpha1"
CHECKPOINT_MOUNT = "/checkpoints"
STORAGE_CLASS = "aiconform-training-checkpoints"
"""The PV and PVC name this class so no default StorageClass's provisioner takes the claim."""
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
JOB_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
"""JobSet labels every pod with its JobSet's name, which Trainer sets to the TrainJob's name."""


def training_runtime(name: str, namespace: str, *, image: str, claim: str, max_restarts: int = 3,
                     priority_class: str | None = None, node_selector: dict[str, str] | None = None,
                     heartbeat_seconds: int = 10) -> Obj:
    env = [{"name": "TRAIN_CHECKPOINT_DIR", "value": CHECKPOINT_MOUNT},
           {"name": "TRAIN_HEARTBEAT_SECONDS", "value": str(heartbeat_seconds)},
           {"name": "JAX_PLATFORMS", "value": "cpu"}]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 2,
        "containers": [{
            "name": "node",
            "image": image,
            "imagePullPolicy": pull_policy(image),
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "command": ["python3", "-m", "reference_workloads.training.train"],
            "env": env,
            "volumeMounts": [{"name": "checkpoints", "mountPath": CHECKPOINT_MOUNT}],
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        }],
        "volumes": [{"name": "checkpoints", "persistentVolumeClaim": {"claimName": claim}}],
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
    }
    if priority_class:
        pod_spec["priorityClassName"] = priority_class
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    return {
        "apiVersion": TRAINER_API,
        "kind": "TrainingRuntime",
        "metadata": {"name": name, "namespace": namespace, "labels": {"trainer.kubeflow.org/framework": "jax"}},
        "spec": {
            "mlPolicy": {"numNodes": 2, "jax": {}},
            "template": {"spec": {
                "failurePolicy": {"maxRestarts": max_restarts},
                "replicatedJobs": [{
                    "name": "node",
                    "template": {
                        "metadata": {"labels": {ANCESTOR_LABEL: "trainer"}},
                        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}},
                    },
                }],
            }},
        },
    }


def train_job(name: str, namespace: str, *, runtime: str, num_nodes: int = 2, steps: int = 60,
              checkpoint_every: int = 5, min_step_seconds: float = 0.0, gpus_per_node: int = 0,
              image: str | None = None, global_batch: int = 256, active_deadline_seconds: int | None = None,
              labels: dict[str, str] | None = None) -> Obj:
    env = [{"name": "TRAIN_STEPS", "value": str(steps)},
           {"name": "TRAIN_CHECKPOINT_EVERY", "value": str(checkpoint_every)},
           {"name": "TRAIN_GLOBAL_BATCH", "value": str(global_batch)},
           {"name": "TRAIN_MIN_STEP_SECONDS", "value": str(min_step_seconds)}]
    trainer: dict[str, Any] = {"numNodes": num_nodes, "env": env}
    if image:
        trainer["image"] = image
    if gpus_per_node:
        gpu = {GPU_RESOURCE: str(gpus_per_node)}
        trainer["resourcesPerNode"] = {"limits": dict(gpu), "requests": dict(gpu)}
    spec: dict[str, Any] = {"runtimeRef": {"name": runtime, "apiGroup": "trainer.kubeflow.org",
                                           "kind": "TrainingRuntime"},
                            "trainer": trainer}
    if active_deadline_seconds:
        spec["activeDeadlineSeconds"] = active_deadline_seconds
    return {"apiVersion": TRAINER_API, "kind": "TrainJob",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})}, "spec": spec}


def checkpoint_volume(name: str, *, path: str, claim_namespace: str, claim: str, size: str = "64Mi",
                      path_type: str = "DirectoryOrCreate") -> Obj:
    """A hostPath PV object (``DirectoryOrCreate`` on the real node) reserved for one claim."""
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"aiconform.io/training-checkpoints": "true"}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": STORAGE_CLASS,
            "hostPath": {"path": path, "type": path_type},
            "claimRef": {"namespace": claim_namespace, "name": claim},
        },
    }


def checkpoint_claim(name: str, namespace: str, *, volume: str, size: str = "64Mi") -> Obj:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": STORAGE_CLASS, "volumeName": volume,
                 "resources": {"requests": {"storage": size}}},
    }


def cleanup_pod(name: str, namespace: str, *, image: str, claim: str,
                node_selector: dict[str, str] | None = None) -> Obj:
    """A pod that empties the checkpoint volume (so deleting the claim and PV leaves no data behind)."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "wipe", "image": image, "imagePullPolicy": pull_policy(image),
                        "command": ["sh", "-c", f"rm -rf {CHECKPOINT_MOUNT}/* {CHECKPOINT_MOUNT}/.[!.]*"],
                        "volumeMounts": [{"name": "checkpoints", "mountPath": CHECKPOINT_MOUNT}]}],
        "volumes": [{"name": "checkpoints", "persistentVolumeClaim": {"claimName": claim}}],
        "tolerations": [{"operator": "Exists"}],
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
