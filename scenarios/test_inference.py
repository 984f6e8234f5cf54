"""Inference routing suite (CNCF ``ai_inference``): a real Gateway API implementation splits traffic between two
versions of the real model server by weight and routes it by header.

The model server is the reference serving stack's (reference_workloads/serving: KServe ``ModelServer`` + an int8 ONNX
MiniLM answering the Open Inference Protocol v2, one fake GPU each); the gateway is the cluster's Gateway API
implementation (Traefik on the real node at tier R, the ``gateway-api`` fact: profile ``local-serving``).  Every
routing decision is the gateway's; the check sends bounded requests to the gateway's listener on the real node's own
address and reads which version answered from the OIP v2 response's ``model_version``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness import gateway as gw
from harness.kube import KubeClient
from harness.testing import Evidence, Tenant
from reference_workloads.serving import MODEL_NAME, deploy_model, remove_model
from reference_workloads.serving.manifests import infer_body

SPLIT_REQUESTS = 200
"""Bounded: ≈ 5 s at the model server's 40–50 RPS on 2 cores."""
HEADER_REQUESTS = 40
WEIGHTS = {"v1": 90, "v2": 10}
HEADER = "x-model-version"
NEEDS = ("gateway-api", "model-server")


@pytest.fixture
def models_cleanup(kube: KubeClient, tenant: Tenant) -> Iterator[None]:
    """Delete the model servers before the tenant goes (their ReplicaSets would replace pods a sweep deletes)."""
    yield
    for version in WEIGHTS:
        remove_model(kube, tenant.name, f"model-{version}")


@pytest.mark.aiconform(requirement="ai_inference", tier="R", gpus=2, capabilities=NEEDS,
                       mutations=("endpointslice-controller-off",))
def test_gateway_splits_model_versions_by_weight_and_routes_by_header(
    kube: KubeClient, tenant: Tenant, evidence: Evidence, models_cleanup: None
) -> None:
    """HTTPRoute 90/10 by weight between model v1 and v2: the v2 share of 200 requests lies within binomial tolerance;
    a request with ``x-model-version: v1|v2`` always reaches that version; each version answers with its own
    version in the OIP v2 response."""
    models = {v: deploy_model(kube, tenant.name, v) for v in WEIGHTS}
    tenant.create(gw.gateway("inference"))
    host = gw.route_hostname(tenant.name, MODEL_NAME)
    tenant.create(gw.http_route(MODEL_NAME, gateway_name="inference", hostname=host, rules=[
        *(gw.Rule((gw.Backend(m.service, m.port),), headers=((HEADER, v),)) for v, m in models.items()),
        gw.Rule(tuple(gw.Backend(m.service, m.port, WEIGHTS[v]) for v, m in models.items())),
    ]))
    programmed = gw.wait_programmed(kube, tenant.name, "inference", timeout=60)
    gw.wait_route_accepted(kube, tenant.name, MODEL_NAME, gateway_name="inference", timeout=60)
    target = gw.Target(gw.gateway_address(kube, programmed), gw.WEB_PORT, host)
    body = json.dumps(infer_body(["route me to a model"])).encode()
    call = {"method": "POST", "path": models["v1"].infer_path, "body": body}
    json_headers = {"Content-Type": "application/json"}
    version = gw.json_field("model_version")
    evidence.timing("route_live_s", gw.wait_routed(target, version, lambda label: label in WEIGHTS,
                                                   headers=json_headers, timeout=60, **call))

    split = gw.send(target, SPLIT_REQUESTS, version, headers=json_headers, deadline_s=120, **call)
    by_header = {v: gw.send(target, HEADER_REQUESTS, version, headers={**json_headers, HEADER: v}, deadline_s=60,
                            **call) for v in WEIGHTS}
    lo, hi = gw.binomial_bounds(SPLIT_REQUESTS, WEIGHTS["v2"] / sum(WEIGHTS.values()))
    evidence["gateway"] = {"class": programmed["spec"]["gatewayClassName"], "address": target.address,
                           "port": target.port}
    evidence["weights"] = WEIGHTS
    evidence["split"] = split.summary()
    evidence["v2_bounds"] = [lo, hi]
    evidence["by_header"] = {v: t.summary() for v, t in by_header.items()}
    evidence.timing("split_p99_s", split.quantile(0.99))

    assert not split.errors, f"transport errors through the gateway: {split.summary()}"
    assert set(split.counts) == set(WEIGHTS), f"answers other than the two versions: {split.summary()}"
    assert lo <= split.counts["v2"] <= hi, (
        f"v2 answered {split.counts['v2']} of {SPLIT_REQUESTS} requests, outside the binomial tolerance [{lo}, {hi}] "
        f"of a {WEIGHTS['v2']}% weight")
    for v, tally in by_header.items():
        assert tally.counts == {v: HEADER_REQUESTS}, f"{HEADER}: {v} reached {dict(tally.counts)} ({tally.errors[:2]})"
