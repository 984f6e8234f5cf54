"""Reading the cluster's Prometheus (harness/addons/prometheus.py) through its HTTP API, from this host.

Prometheus listens on the real node's own address; :func:`prometheus_url` finds it.  Prometheus has no watch, so
:func:`wait_query` polls with a deadline (and says what it last saw when the deadline passes).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from harness.contract import PROMETHEUS_PORT
from harness.errors import WaitTimeout, WorkloadError
from harness.kube import KubeClient
from harness.proc import poll_until
from reference_workloads.serving.deploy import real_node_ip

PORT = PROMETHEUS_PORT
Sample = dict[str, Any]
"""One instant-vector element: ``{"metric": {labels}, "value": [ts, "value"]}``."""


def prometheus_url(client: KubeClient) -> str:
    return f"http://{real_node_ip(client)}:{PORT}"


def _get(url: str, timeout: float) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:300]
        raise WorkloadError(f"Prometheus answered {err.code} to {url}: {detail}") from err
    except (urllib.error.URLError, OSError) as err:
        raise WorkloadError(f"Prometheus at {url} did not answer: {err}") from err
    if body.get("status") != "success":
        raise WorkloadError(f"Prometheus query failed: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def query(base: str, promql: str, *, timeout: float = 10.0) -> list[Sample]:
    """An instant query; the result vector."""
    data = _get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}", timeout)
    result: list[Sample] = data.get("result", [])
    return result


def targets(base: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The active scrape targets (job, labels, health, lastError)."""
    active: list[dict[str, Any]] = _get(f"{base}/api/v1/targets?state=active", timeout).get("activeTargets", [])
    return active


def value(sample: Sample) -> float:
    return float(sample["value"][1])


def wait_query(base: str, promql: str, condition: Callable[[list[Sample]], bool], *, timeout: float = 60.0,
               interval: float = 1.0, what: str = "") -> list[Sample]:
    """Poll ``promql`` until ``condition(result)`` holds; WaitTimeout naming the query and the last result."""
    last: list[Sample] = []

    def holds() -> bool:
        nonlocal last
        last = query(base, promql)
        return condition(last)

    try:  # Prometheus has no watch: a bounded poll
        poll_until(holds, timeout=timeout, interval=interval, what=what or promql)
    except WaitTimeout as err:
        shown = [{**s["metric"], "value": s["value"][1]} for s in last][:5]
        raise WaitTimeout(f"{err}; last result: {shown}") from None
    return last
