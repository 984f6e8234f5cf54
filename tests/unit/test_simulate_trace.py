"""The simulator's traces: the seeded generator, and a user's CSV/YAML trace whose bad row is one line naming the
row and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.contract import GPU_RESOURCE
from harness.errors import ConfigError
from harness.simulate import policies, trace


def test_generated_trace_is_seeded_and_within_the_rules() -> None:
    a = trace.generate(seed=7, jobs=300, teams=4, cluster_gpus=128)
    b = trace.generate(seed=7, jobs=300, teams=4, cluster_gpus=128)
    c = trace.generate(seed=8, jobs=300, teams=4, cluster_gpus=128)
    assert a == b and a != c
    assert a.teams == ["team-a", "team-b", "team-c", "team-d"]
    assert abs(sum(a.entitlements.values()) - 1) < 1e-6
    arrivals = [j.arrival_s for j in a.jobs]
    assert arrivals == sorted(arrivals)
    for j in a.jobs:
        assert 1 <= j.gpus <= 64 and (j.gpus <= 8 or j.gpus % 8 == 0)
        assert j.pods * j.gpus_per_pod == j.gpus
        assert 300 <= j.duration_s <= 8 * 3600 and j.priority in trace.PRIORITIES
    sizes = {j.gpus for j in a.jobs}
    assert 1 in sizes and 64 in sizes, "the trace must mix single GPUs and multi-node gangs"
    counts = {t: sum(1 for j in a.jobs if j.team == t) for t in a.teams}
    assert counts["team-a"] > max(counts[t] for t in a.teams if t != "team-a")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_trace_loads(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.csv", "name,team,gpus,duration,priority,arrival\n"
               "train-1,research,16,3600,high,0\ninfer-1,serving,1,600,low,30\n")
    t = trace.load(p)
    assert [j.name for j in t.jobs] == ["train-1", "infer-1"]
    assert t.jobs[0].pods == 2 and t.jobs[0].gpus_per_pod == 8
    assert t.entitlements == {"research": 0.5, "serving": 0.5}


@pytest.mark.parametrize(("row", "message"), [
    ("j1,research,12,3600,high,0", "row 2: field gpus"),
    ("j1,research,0,3600,high,0", "row 2: field gpus"),
    ("j1,research,two,3600,high,0", "row 2: field gpus"),
    ("j1,research,1,-5,high,0", "row 2: field duration"),
    ("j1,research,1,60,urgent,0", "row 2: field priority"),
    ("J_1,research,1,60,high,0", "row 2: field name"),
    ("j1,research,1,60,high,soon", "row 2: field arrival"),
])
def test_a_bad_csv_row_names_the_row_and_the_field(tmp_path: Path, row: str, message: str) -> None:
    p = _write(tmp_path, "t.csv", f"name,team,gpus,duration,priority,arrival\n{row}\n")
    with pytest.raises(ConfigError, match=message) as err:
        trace.load(p)
    assert "\n" not in str(err.value)


def test_a_bad_yaml_job_names_its_index_and_field(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.yaml", "teams: {a: 3, b: 1}\njobs:\n"
               "  - {name: j1, team: a, gpus: 8, duration: 60, arrival: 0}\n"
               "  - {name: j2, team: b, gpus: 100, duration: 60, arrival: 5}\n")
    with pytest.raises(ConfigError, match=r"jobs\[1\]: field gpus"):
        trace.load(p)
    ok = _write(tmp_path, "ok.yaml", "teams: {a: 3, b: 1}\njobs:\n"
                "  - {name: j1, team: a, gpus: 8, duration: 60, arrival: 0}\n")
    assert trace.load(ok).entitlements == {"a": 0.75, "b": 0.25}


def test_duplicate_names_and_unknown_fields_are_refused(tmp_path: Path) -> None:
    dup = _write(tmp_path, "d.csv", "name,team,gpus,duration,priority,arrival\nj,a,1,6,low,0\nj,a,1,6,low,1\n")
    with pytest.raises(ConfigError, match="row 3: field name: duplicate"):
        trace.load(dup)
    extra = _write(tmp_path, "e.yaml", "jobs:\n  - {name: j, team: a, gpus: 1, duration: 6, arrival: 0, gpu: 2}\n")
    with pytest.raises(ConfigError, match="unknown field 'gpu'"):
        trace.load(extra)


def test_unknown_policy_is_one_line_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown policy 'lottery'; known policies: .*fifo"):
        policies.lookup(["fifo", "lottery"])


def test_policies_submit_real_objects() -> None:
    job = trace.TraceJob("big", "team-a", 32, 3600, "high", 0)
    ctx = policies.JobContext(namespace="team-a", compression=100)
    fifo = policies.job_objects(policies.POLICIES["fifo"], job, ctx)
    assert [o["kind"] for o in fifo] == ["Job"]
    spec = fifo[0]["spec"]
    assert spec["parallelism"] == spec["completions"] == 4
    tmpl = spec["template"]
    assert tmpl["metadata"]["annotations"][policies.ANNOTATION_DURATION] == "36000ms"
    assert tmpl["spec"]["containers"][0]["resources"]["limits"][GPU_RESOURCE] == "8"
    assert "priorityClassName" not in tmpl["spec"]
    prio = policies.job_objects(policies.POLICIES["priority"], job, ctx)
    assert prio[0]["spec"]["template"]["spec"]["priorityClassName"] == "sim-high"
    gang = policies.job_objects(policies.POLICIES["gang"], job, ctx)
    assert [o["kind"] for o in gang] == ["PodGroup", "Job"]
    assert gang[0]["spec"]["schedulingPolicy"]["gang"]["minCount"] == 4
    assert gang[1]["spec"]["template"]["spec"]["schedulingGroup"] == {"podGroupName": "big"}


def test_kueue_policy_queues_each_team_at_its_entitlement() -> None:
    from harness.simulate import kueue_policy

    assert kueue_policy.nominal_quotas({"a": 0.5, "b": 0.25, "c": 0.25}, 10) == {"a": 5, "b": 3, "c": 2}
    assert sum(kueue_policy.nominal_quotas({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 1024).values()) == 1024
    tr = trace.Trace((trace.TraceJob("j", "a", 8, 60, "high", 0),), {"a": 0.75, "b": 0.25})
    cfg = kueue_policy.queue_config(tr, 32)
    assert [(t.name, t.namespace, t.gpus) for t in cfg.teams] == [("a", "a", 24), ("b", "b", 8)]
    job = policies.job_objects(policies.lookup(["kueue"])[0], tr.jobs[0],
                               policies.JobContext(namespace="a", compression=10))[-1]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "a" and job["spec"]["suspend"] is True
    assert job["spec"]["template"]["spec"]["priorityClassName"] == "sim-high"
