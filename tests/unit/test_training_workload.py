"""reference_workloads/training without JAX or a cluster: settings from a TrainJob's environment, the deterministic
data split, the atomic checkpoint, and the log analysis the training scenarios rely on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.contract import GPU_RESOURCE, REAL_NODE_LABEL
from reference_workloads.training import checkpoint, logs, train


def _settings(**kw: object) -> train.Settings:
    base: dict[str, object] = {"steps": 20, "global_batch": 8}
    base.update(kw)
    return train.Settings(**base)  # type: ignore[arg-type]


def test_settings_come_from_trainers_jax_environment() -> None:
    env = {"JAX_COORDINATOR_ADDRESS": "job-node-0-0.job:29500", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1",
           "TRAIN_STEPS": "40", "TRAIN_CHECKPOINT_DIR": "/ckpt", "TRAIN_CHECKPOINT_EVERY": "5"}
    s = train.parse_settings([], env)
    assert (s.coordinator, s.num_processes, s.process_id) == ("job-node-0-0.job:29500", 2, 1)
    assert (s.steps, s.checkpoint_dir, s.checkpoint_every) == (40, Path("/ckpt"), 5)
    assert s.validate() == []
    assert train.parse_settings(["--steps", "7"], env).steps == 7  # the command line wins over the environment


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"global_batch": 9, "num_processes": 2, "coordinator": "h:1"}, "does not split evenly"),
    ({"num_processes": 2}, "needs a coordinator"),
    ({"process_id": 2, "num_processes": 2, "coordinator": "h:1"}, "not in 0..1"),
    ({"steps": 0}, "steps must be"),
])
def test_bad_settings_are_named(kw: dict[str, object], fragment: str) -> None:
    assert any(fragment in e for e in _settings(**kw).validate())


def test_bad_settings_exit_with_an_error_line_before_importing_jax(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--steps", "0"]) == train.EXIT_BAD_SETTINGS
    recs = logs.parse(capsys.readouterr().out)
    assert recs[0]["event"] == "error" and "steps must be" in recs[0]["message"]


def test_every_process_sees_the_same_global_batch_and_the_slices_cover_it() -> None:
    s = _settings(global_batch=12)
    x1, y1 = train.global_batch(3, s)
    x2, y2 = train.global_batch(3, s)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, train.global_batch(4, s)[0])  # a new batch every step
    parts = [train.local_slice(x1, r, 3) for r in range(3)]
    assert np.array_equal(np.concatenate(parts), x1)


def test_checkpoint_round_trip_and_schedule(tmp_path: Path) -> None:
    s = _settings(checkpoint_dir=tmp_path, checkpoint_every=5, steps=12)
    assert [n for n in range(1, 13) if train.should_checkpoint(n, s)] == [5, 10, 12]
    assert not train.should_checkpoint(5, _settings())  # no directory: never
    assert checkpoint.load(tmp_path) is None
    params = train.initial_params(s)
    checkpoint.save(tmp_path, checkpoint.Checkpoint(10, 0.25, params))
    back = checkpoint.load(tmp_path)
    assert back is not None and back.step == 10 and back.loss == 0.25
    assert set(back.params) == set(params) and all(np.array_equal(back.params[k], params[k]) for k in params)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]  # no temporary file left behind


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint.save(tmp_path, checkpoint.Checkpoint(5, 1.0, {"w": np.ones(3, np.float32)}))

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(tmp_path, checkpoint.Checkpoint(10, 0.5, {"w": np.zeros(3, np.float32)}))
    back = checkpoint.load(tmp_path)
    assert back is not None and back.step == 5
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_a_corrupt_checkpoint_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.npz").write_bytes(b"not a zip")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read checkpoint"):
        checkpoint.load(tmp_path)


def _log(rank: int, count: int, losses: dict[int, float], resumed: int | None = None) -> list[str]:
    out = [logs.line("start", rank, 100.0, process_count=count, resumed_from=resumed)]
    out += [logs.line("step", rank, 101.0 + s, step=s, loss=v) for s, v in losses.items()]
    return out


def test_log_analysis_accepts_one_group_and_names_what_breaks_it() -> None:
    curve = {1: 1.0, 2: 0.8, 3: 0.5}
    good = logs.attempt(logs.parse(_log(0, 2, curve) + ["jax warning", "{not json"] + _log(1, 2, curve)))
    assert logs.problems(good, 2) == []
    assert good.loss_curve() == [(1, 1.0), (2, 0.8), (3, 0.5)] and logs.falling(good.loss_curve())

    independent = logs.attempt(logs.parse(_log(0, 1, curve) + _log(1, 1, {1: 1.0, 2: 0.7, 3: 0.5})))
    found = " ".join(logs.problems(independent, 2))
    assert "process_count() differs from 2" in found and "loss differs from rank 0 at 1 steps" in found
    assert "ranks [1] never logged" in " ".join(logs.problems(logs.attempt(logs.parse(_log(0, 2, curve))), 2))


def test_resumed_attempt_reports_its_checkpoint_step() -> None:
    att = logs.attempt(logs.parse(_log(0, 2, {31: 0.2, 32: 0.19}, resumed=30) + _log(1, 2, {31: 0.2, 32: 0.19},
                                                                                      resumed=30)))
    assert att.resumed_from == {0: 30, 1: 30} and att.steps == [31, 32]
    assert not logs.falling([(1, 0.5), (2, 0.6)])


def test_runtime_gives_trainers_jax_policy_what_it_looks_for() -> None:
    from reference_workloads.training import manifests

    rt = manifests.training_runtime("jax", "ns", image="img", claim="ckpt", priority_class="pc", max_restarts=2,
                                    node_selector={REAL_NODE_LABEL: "true"})
    assert rt["spec"]["mlPolicy"] == {"numNodes": 2, "jax": {}}
    js = rt["spec"]["template"]["spec"]
    assert js["failurePolicy"] == {"maxRestarts": 2}  # the whole group restarts when one worker fails
    [rj] = js["replicatedJobs"]
    assert rj["template"]["metadata"]["labels"][manifests.ANCESTOR_LABEL] == "trainer"
    pod = rj["template"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["name"] == "node"  # the container Trainer's JAX plugin writes JAX_* into
    assert pod["priorityClassName"] == "pc" and pod["nodeSelector"] == {REAL_NODE_LABEL: "true"}
    assert pod["volumes"] == [{"name": "checkpoints", "persistentVolumeClaim": {"claimName": "ckpt"}}]
    job = manifests.train_job("j", "ns", runtime="jax", gpus_per_node=1, steps=7)
    assert job["spec"]["trainer"]["resourcesPerNode"]["requests"] == {GPU_RESOURCE: "1"}
    assert {"name": "TRAIN_STEPS", "value": "7"} in job["spec"]["trainer"]["env"]
    pv = manifests.checkpoint_volume("pv", path="/x", claim_namespace="ns", claim="ckpt")
    claim = manifests.checkpoint_claim("ckpt", "ns", volume="pv")
    assert pv["spec"]["claimRef"] == {"namespace": "ns", "name": "ckpt"} and claim["spec"]["volumeName"] == "pv"
    assert pv["spec"]["storageClassName"] == claim["spec"]["storageClassName"]  # no provisioner takes the claim


def test_trainer_addon_adapts_upstream_objects_to_the_harness() -> None:
    from harness.addons import trainer
    from harness.addons.base import AddonContext

    upstream = [
        {"kind": "ServiceAccount", "metadata": {"name": trainer.DEPLOYMENT}},
        {"kind": "ClusterRoleBinding", "metadata": {"name": "b"},
         "subjects": [{"kind": "ServiceAccount", "name": trainer.DEPLOYMENT}]},
        {"kind": "ValidatingWebhookConfiguration", "metadata": {"name": trainer.VALIDATING_WEBHOOK},
         "webhooks": [{"name": trainer.TRAINJOB_VALIDATOR,
                       "clientConfig": {"service": {"name": trainer.SERVICE, "namespace": "system"}}}]},
        {"kind": "ConfigMap", "metadata": {"name": trainer.CONFIG_MAP},
         "data": {trainer.CONFIG_KEY: "certManagement: {enable: true}\nleaderElection: {leaderElect: true}\n"}},
        {"kind": "Deployment", "metadata": {"name": trainer.DEPLOYMENT}, "spec": {"template": {"spec": {
            "containers": [{"name": "manager", "image": "upstream/registry/image",
                            "readinessProbe": {"initialDelaySeconds": 10}}]}}}},
    ]
    ctx = AddonContext(image="aiconform.local/trainer-controller-manager:v2.3.0", apiserver_host="h",
                       apiserver_port=1, node_selector={REAL_NODE_LABEL: "true"})
    sa, crb, hook, cm, dep = trainer.adapt(upstream, ctx)
    assert sa["metadata"]["namespace"] == trainer.NAMESPACE and "namespace" not in hook["metadata"]
    assert crb["subjects"][0]["namespace"] == trainer.NAMESPACE
    assert hook["webhooks"][0]["clientConfig"]["service"]["namespace"] == trainer.NAMESPACE
    import yaml

    cfg = yaml.safe_load(cm["data"][trainer.CONFIG_KEY])
    assert cfg["certManagement"]["enable"] is False and cfg["leaderElection"]["leaderElect"] is False
    spec = dep["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == ctx.image and spec["containers"][0]["imagePullPolicy"] == "Never"
    assert spec["nodeSelector"] == {REAL_NODE_LABEL: "true"} and spec["securityContext"]["runAsUser"] == 65532
