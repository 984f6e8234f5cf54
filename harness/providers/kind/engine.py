"""The Docker engine the kind provider runs its nodes on, and the Docker SDK client.

Which engine, as kind itself would pick it: the user's own Docker where one answers (``DOCKER_HOST``, else the
default socket ``/var/run/docker.sock``: Docker Desktop on a laptop, a hosted CI runner), else a harness-managed
``dockerd`` started here (a machine with Docker installed but no engine running, like this project's VMs).
``AICONFORM_KIND_ENGINE=own`` always uses the harness's own, ``=user`` refuses to start one.  ``aiconform status``
and the bring-up's progress say which one a cluster runs on.  On the user's engine nothing is configured: its
runtime, data root and networks are the user's.

Owns the harness engine's directory ``<state root>/.docker`` (data root, socket, pidfile, log, the runc wrapper) and
starting ``dockerd`` there when it is not running.  It is started so that it leaves the host alone: its own data
root and exec root, ``--iptables=false --ip-masq=false``, no default bridge (kind makes its own network).  Its
default runtime is a small wrapper around runc that removes CAP_SYS_RESOURCE from each container's OCI spec: this
project's VMs lack that capability in their bounding set, so runc cannot apply it and every ``--privileged``
container (every kind node) fails with "unable to apply caps: operation not permitted" without the wrapper.

The harness's engine is left running after ``down`` (other clusters and the node-image cache use it).  It never
starts, stops or configures the user's Docker (its socket, data root or service).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from harness import proc
from harness.errors import ClusterError, CommandError, ConfigError, PrivilegeError, WaitTimeout
from harness.providers.base import Progress, stderr_progress
from harness.providers.common import state_root

ENGINE_DIR = ".docker"
"""Under the state root; a leading dot keeps it apart from cluster names."""
EXEC_ROOT_BASE = "/run/aiconform-docker-"
"""``+ <8 hex of the engine directory>``: one per state root (two state roots, two engines, no shared sockets), and
short on purpose: containerd's sockets live below it and unix socket paths are limited to 107 bytes."""
DEFAULT_SOCKET = Path("/var/run/docker.sock")
"""Where the docker CLI and kind look for the engine when ``DOCKER_HOST`` is not set."""
ENGINE_ENV = "AICONFORM_KIND_ENGINE"
"""``auto`` (default): the user's engine when one answers, else the harness's own; ``own``; ``user``."""
ENGINE_CHOICES = ("auto", "own", "user")
RUNTIME_NAME = "aiconform-runc"
START_TIMEOUT = 60.0
DROPPED_CAPS = ("CAP_SYS_RESOURCE",)

_WRAPPER = '''#!{python} -I
"""runc wrapper written by aiconform (harness/providers/kind/engine.py): drops {caps} from the OCI spec of every
container and exec process, then runs {runc}.  This VM cannot grant those capabilities."""
import json, os, sys

DROP = {caps!r}
args = sys.argv[1:]


def strip(path):
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return
    caps = (doc.get("process", doc) or {{}}).get("capabilities") or {{}}
    changed = False
    for key, values in list(caps.items()):
        if isinstance(values, list) and any(c in DROP for c in values):
            caps[key] = [c for c in values if c not in DROP]
            changed = True
    if changed:
        tmp = path + ".aiconform"
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, path)


for flag, name in (("--bundle", "config.json"), ("-b", "config.json"), ("--process", ""), ("-p", "")):
    if flag in args[:-1]:
        value = args[args.index(flag) + 1]
        strip(os.path.join(value, name) if name else value)
    for arg in args:
        if arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
            strip(os.path.join(value, name) if name else value)
os.execv({runc!r}, [{runc!r}, *args])
'''


@dataclass(frozen=True)
class EngineSettings:
    """Where the harness-managed dockerd keeps its state."""

    root: Path
    """``<state root>/.docker``."""

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        """The ``DOCKER_HOST`` value for the kind CLI and the SDK."""
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return Path(EXEC_ROOT_BASE + hashlib.sha256(str(self.root).encode()).hexdigest()[:8])

    @property
    def wrapper(self) -> Path:
        return self.root / "runc-wrapper"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.proc"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"


def engine_settings(root: Path | None = None) -> EngineSettings:
    return EngineSettings((root or state_root()) / ENGINE_DIR)


def wrapper_script(runc: str, python: str = "/usr/bin/python3") -> str:
    """The runc wrapper's text (pure)."""
    return _WRAPPER.format(python=python, runc=runc, caps=DROPPED_CAPS)


def dockerd_argv(dockerd: str, s: EngineSettings) -> list[str]:
    """The dockerd command line (pure)."""
    return [dockerd, "--host", s.host, "--data-root", str(s.data_root), "--exec-root", str(s.exec_root),
            "--pidfile", str(s.root / "dockerd.pid"), "--iptables=false", "--ip-masq=false", "--bridge=none",
            "--add-runtime", f"{RUNTIME_NAME}={s.wrapper}", "--default-runtime", RUNTIME_NAME,
            "--log-level", "warn"]


def _client(host: str, timeout: int = 120) -> docker.DockerClient:
    return docker.DockerClient(base_url=host, timeout=timeout)


def _host_answers(host: str) -> bool:
    try:
        client = _client(host, timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (docker.errors.DockerException, OSError):
        return False


def _answers(s: EngineSettings) -> bool:
    return s.socket.exists() and _host_answers(s.host)


def user_engine(env: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """The engine the user's docker CLI (and kind) would use, as (``DOCKER_HOST`` value, where it came from), or None
    when neither ``DOCKER_HOST`` is set nor the default socket exists."""
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"], "DOCKER_HOST"
    if DEFAULT_SOCKET.exists():
        return f"unix://{DEFAULT_SOCKET}", "the default socket"
    return None


def engine_choice(env: Mapping[str, str] = os.environ) -> str:
    choice = env.get(ENGINE_ENV, "auto").strip() or "auto"
    if choice not in ENGINE_CHOICES:
        raise ConfigError(f"{ENGINE_ENV}={choice!r}: give one of {', '.join(ENGINE_CHOICES)}")
    return choice


def _log_tail(s: EngineSettings) -> str:
    try:
        lines = [ln for ln in s.log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    bad = [ln for ln in lines if "level=error" in ln or "level=fatal" in ln or "failed" in ln.lower()]
    return f"{((bad or lines or ['(empty log)'])[-1])[:400]} (log: {s.log})"


def ensure_engine(root: Path | None = None, progress: Progress = stderr_progress) -> Engine:
    """The engine to run kind nodes on: the user's where one answers (unless ``AICONFORM_KIND_ENGINE=own``), else
    the harness-managed one, started now when it is not running.  ClusterError (one line) when Docker is not
    installed, dockerd does not come up, or ``=user`` finds no engine answering; PrivilegeError when not root."""
    choice = engine_choice()
    if choice != "own":
        found = user_engine()
        if found is not None and _host_answers(found[0]):
            return Engine(found[0], f"your Docker engine ({found[1]}, {found[0]})")
        if choice == "user":
            where = f"{found[0]} ({found[1]})" if found else f"DOCKER_HOST is not set and {DEFAULT_SOCKET} does not exist"
            raise ClusterError(f"{ENGINE_ENV}=user: no Docker engine answers: {where}")
    s = engine_settings(root)
    if _answers(s):
        return Engine.own(s)
    dockerd = shutil.which("dockerd")
    runc = shutil.which("runc")
    if dockerd is None or runc is None:
        missing = "dockerd" if dockerd is None else "runc"
        raise ClusterError(f"the kind provider needs Docker: {missing} is not installed (Debian: apt-get install "
                           "docker.io)")
    if os.geteuid() != 0:
        raise PrivilegeError("the kind provider starts its own dockerd, which needs root")
    s.root.mkdir(parents=True, exist_ok=True)
    python = "/usr/bin/python3" if Path("/usr/bin/python3").is_file() else sys.executable
    s.wrapper.write_text(wrapper_script(runc, python))
    os.chmod(s.wrapper, 0o755)
    rec = proc.read_pidfile(s.pidfile)
    if rec is not None and proc.pid_alive(rec[0]):  # started but not answering: a stuck engine of ours
        proc.stop_pidfile(s.pidfile)
    s.socket.unlink(missing_ok=True)
    progress(f"starting dockerd (data root {s.data_root}, no iptables changes)")
    try:
        daemon = proc.start_daemon("dockerd", dockerd_argv(dockerd, s), log=s.log, pidfile=s.pidfile)
    except CommandError as err:
        raise ClusterError(f"cannot start dockerd: {err}") from err

    def answers() -> bool:  # a socket has no watch: poll it, failing at once if dockerd exits
        if _answers(s):
            return True
        if not proc.pid_alive(daemon.pid):
            proc.stop_pidfile(s.pidfile)
            raise ClusterError(f"dockerd exited during start-up: {_log_tail(s)}")
        return False

    try:
        proc.poll_until(answers, timeout=START_TIMEOUT, interval=0.1, backoff=1.5, max_interval=1.0, what="dockerd")
    except WaitTimeout:
        proc.stop_pidfile(s.pidfile)
        raise ClusterError(f"dockerd did not answer on {s.socket} within {START_TIMEOUT:.0f}s: {_log_tail(s)}") from None
    return Engine.own(s)


def stop_engine(root: Path | None = None) -> bool:
    """Stop the harness-managed dockerd (its containers stop with it); True when one was running."""
    return proc.stop_pidfile(engine_settings(root).pidfile, grace=30.0)


class Engine:
    """A running engine (the user's or the harness's own): the SDK client and the environment for the kind CLI."""

    def __init__(self, host: str, description: str) -> None:
        self.host = host
        self.description = description
        """Which engine, in words, for progress lines and ``aiconform status``."""
        self.client = _client(host, timeout=600)

    @classmethod
    def own(cls, s: EngineSettings) -> Engine:
        return cls(s.host, f"aiconform's own dockerd ({s.host})")

    def env(self) -> dict[str, str]:
        """The environment for ``kind`` and the docker CLI it runs: this engine's socket."""
        return {**os.environ, "DOCKER_HOST": self.host}

    def image_exists(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as err:
            raise ClusterError(f"docker: cannot inspect image {ref}: {err.explanation or err}") from err

    def load_archive(self, archive: Path) -> list[str]:
        """``docker load`` of an image archive (harness/images writes docker's manifest.json too); the tags."""
        try:
            with open(archive, "rb") as fh:
                images = self.client.images.load(fh)
        except (docker.errors.APIError, OSError) as err:
            raise ClusterError(f"docker: cannot load {archive.name}: {err}") from err
        return [t for img in images for t in img.tags]

    def close(self) -> None:
        self.client.close()


def kind_command(kind: Path, engine: Engine, *args: str, timeout: float = 600) -> proc.Result:
    """Run the kind CLI against this engine; ClusterError with kind's own last line on failure."""
    try:
        return proc.run([str(kind), *args], env=engine.env(), timeout=timeout)
    except CommandError as err:
        lines = [ln.strip() for ln in err.output.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR") or "error" in ln.lower()]
        detail = (errors or lines or ["(no output)"])[-1][:600]
        what = "timed out" if err.timed_out else f"exited with status {err.returncode}"
        raise ClusterError(f"kind {' '.join(args[:2])} {what}: {detail} [{err.shell_line()}]") from err
