"""Load on the model server with locust (PyPI), used as a library, headless, with bounded users and duration.

Locust patches the standard library for gevent when imported, so it never runs inside the harness's process: the
harness starts ``python -m reference_workloads.serving.load`` (:func:`start_load` / :func:`run_load`), which
writes a JSON result (totals, percentiles, and a per-second timeline of sent / served / failed requests and p99)
that :class:`LoadResult` reads.

Targets are checked before anything is sent: only loopback, the real node's own address (its NodePorts) or pod
addresses on the harness's bridge (harness.workloads.REAL_NODE_IP, REAL_POD_CIDR) are allowed; any other address is refused
in one line.  Users and duration are bounded (``MAX_USERS``, ``MAX_DURATION_S``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.errors import ConfigError, WorkloadError

MAX_USERS = 200
MAX_DURATION_S = 600.0
PAYLOAD = ["The quick brown fox jumps over the lazy dog near the river bank."]


def allowed_networks() -> list[ipaddress.IPv4Network]:
    from harness.workloads import REAL_NODE_IP, REAL_NODE_PREFIX, REAL_POD_CIDR

    return [ipaddress.IPv4Network("127.0.0.0/8"),
            ipaddress.IPv4Network(f"{REAL_NODE_IP}/{REAL_NODE_PREFIX}", strict=False), ipaddress.IPv4Network(REAL_POD_CIDR)]


def check_target(url: str) -> None:
    """ConfigError unless ``url`` is http(s) to an address this machine's harness created (or loopback)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"load target {url!r} is not an http URL")
    try:
        addr = ipaddress.ip_address(parts.hostname)
    except ValueError:
        raise ConfigError(f"load target {url!r}: give an IP address (loopback, the real node's, or a pod's on the "
                          "harness bridge), not a host name") from None
    if not any(addr in net for net in allowed_networks()):
        raise ConfigError(f"load target {addr} is outside loopback, the real node's address and the harness's pod "
                          f"network ({', '.join(map(str, allowed_networks()))}); refusing to send load there")


@dataclass(frozen=True)
class LoadSpec:
    """One bounded load run."""

    url: str
    """Base URL of the model server (``http://<node ip>:<nodePort>`` or ``http://127.0.0.1:<port>``)."""
    users: int = 8
    rate_per_user: float = 0.0
    """Requests per second per user (locust ``constant_throughput``); 0: back to back (closed loop)."""
    duration_s: float = 20.0
    path: str = "/v2/models/minilm/infer"
    headers: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        check_target(self.url)
        if not 1 <= self.users <= MAX_USERS:
            raise ConfigError(f"load users must be 1..{MAX_USERS}, got {self.users}")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ConfigError(f"load duration must be in (0, {MAX_DURATION_S:.0f}] s, got {self.duration_s}")
        if self.rate_per_user < 0:
            raise ConfigError("rate_per_user must be >= 0")

    @property
    def offered_rps(self) -> float | None:
        return self.users * self.rate_per_user if self.rate_per_user else None


@dataclass(frozen=True)
class LoadResult:
    """What locust measured."""

    requests: int
    failures: int
    rps: float
    """Successful responses per second over the run."""
    p50_s: float
    p95_s: float
    p99_s: float
    duration_s: float
    timeline: list[dict[str, float]]
    """Per second since the start: ``t``, ``sent``, ``served`` (successful responses), ``failed``, ``p99_s``."""
    errors: dict[str, int]
    started: float
    """Wall-clock time (``time.time()``) of the first request."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _argv(spec: LoadSpec, out: Path) -> list[str]:
    argv = [sys.executable, "-m", "reference_workloads.serving.load", "--url", spec.url, "--users", str(spec.users),
            "--rate-per-user", str(spec.rate_per_user), "--duration", str(spec.duration_s), "--path", spec.path,
            "--out", str(out)]
    for k, v in sorted(spec.headers.items()):
        argv += ["--header", f"{k}={v}"]
    return argv


class LoadRun:
    """A locust run in a child process; :meth:`result` waits for it (deadline: duration + 60 s)."""

    def __init__(self, spec: LoadSpec, out: Path) -> None:
        spec.validate()
        self.spec = spec
        self.out = out
        self.log = out.with_suffix(".log")
        self._log = self.log.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(_argv(spec, out), stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def result(self) -> LoadResult:
        try:
            rc = self.proc.wait(timeout=self.spec.duration_s + 60)
        except subprocess.TimeoutExpired:
            self.stop()
            raise WorkloadError(f"locust did not finish within {self.spec.duration_s + 60:.0f}s" + self._tail()) from None
        finally:
            self._log.close()
        if rc != 0 or not self.out.is_file():
            raise WorkloadError(f"locust exited {rc}" + self._tail())
        return LoadResult.from_json(json.loads(self.out.read_text()))

    def interrupt(self) -> None:
        """Ask locust to stop now (SIGTERM): it stops its users and writes its result; then call :meth:`result`."""
        if self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self) -> str:
        return self._tail()

    def _tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()[-15:] if self.log.is_file() else []
        return "\n--- locust log:\n" + "\n".join(lines) if lines else ""


def start_load(spec: LoadSpec, out: Path) -> LoadRun:
    return LoadRun(spec, out)


def run_load(spec: LoadSpec, out: Path) -> LoadResult:
    """Run locust to completion; WorkloadError (with its log lines) when it fails; a result with failures is
    returned as is (the caller judges)."""
    run = LoadRun(spec, out)
    try:
        return run.result()
    finally:
        run.stop()


# -- the child process (locust imported here only) -------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def _child(spec: LoadSpec, out: Path) -> int:
    import signal

    import gevent
    from gevent.event import Event
    from locust import FastHttpUser, constant, constant_throughput, events, task
    from locust.env import Environment

    body = json.dumps({"inputs": [{"name": "text", "shape": [len(PAYLOAD)], "datatype": "BYTES",
                                   "data": PAYLOAD}]})
    # A new connection per request: kube-proxy balances connections, not requests, so kept-alive connections made
    # while one replica existed would pin every user to it after a scale-out.
    headers = {"Content-Type": "application/json", "Connection": "close", **spec.headers}
    latencies: list[float] = []
    seconds: dict[int, dict[str, Any]] = {}
    errors: dict[str, int] = {}
    start = time.time()

    def bucket(t: float) -> dict[str, Any]:
        return seconds.setdefault(int(t - start), {"sent": 0, "served": 0, "failed": 0, "lat": []})

    class ModelUser(FastHttpUser):
        wait_time = constant_throughput(spec.rate_per_user) if spec.rate_per_user else constant(0)
        host = spec.url

        @task
        def infer(self) -> None:
            sent = time.time()
            bucket(sent)["sent"] += 1
            self.client.post(spec.path, data=body, headers=headers, name="infer")

    def on_request(response_time: float, exception: BaseException | None, **_kw: Any) -> None:
        b = bucket(time.time())
        if exception is None:
            b["served"] += 1
            b["lat"].append(response_time / 1000.0)
            latencies.append(response_time / 1000.0)
        else:
            b["failed"] += 1
            key = str(exception)[:120]
            errors[key] = errors.get(key, 0) + 1

    events.request.add_listener(on_request)  # type: ignore[no-untyped-call]
    env = Environment(user_classes=[ModelUser], events=events)
    runner = env.create_local_runner()
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    runner.start(spec.users, spawn_rate=spec.users)
    stop.wait(timeout=spec.duration_s)
    runner.quit()
    took = time.time() - start
    served = sum(b["served"] for b in seconds.values())
    failed = sum(b["failed"] for b in seconds.values())
    timeline = [{"t": float(t), "sent": float(b["sent"]), "served": float(b["served"]), "failed": float(b["failed"]),
                 "p99_s": _percentile(b["lat"], 0.99)} for t, b in sorted(seconds.items())]
    result = {"requests": served + failed, "failures": failed, "rps": served / took if took else 0.0,
              "p50_s": _percentile(latencies, 0.50), "p95_s": _percentile(latencies, 0.95),
              "p99_s": _percentile(latencies, 0.99), "duration_s": took, "timeline": timeline, "errors": errors,
              "started": start}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reference_workloads.serving.load", description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--rate-per-user", type=float, default=0.0)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--path", default="/v2/models/minilm/infer")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    from gevent import monkey  # before anything imports ssl/socket users (locust would patch them late)

    monkey.patch_all()
    spec = LoadSpec(a.url, a.users, a.rate_per_user, a.duration, a.path,
                    dict(h.split("=", 1) for h in a.header))
    try:
        spec.validate()
    except ConfigError as err:
        print(f"aiconform: {err}", file=sys.stderr)
        return 2
    return _child(spec, a.out)


if __name__ == "__main__":
    sys.exit(main())
