"""``make test-cluster`` (the README's main job) picks the most complete profile this machine allows and says on its
first line which one, its tier and why: ``conformance`` (tier R) as root on Linux with the real node's packages,
``conformance-s`` (tier S) otherwise, and the user's own ``PROFILE=`` as given.  ``make -n`` prints the line
without running anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAD = "make test-cluster: profile "

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _first_line(*argv: str, user: list[str] | None = None) -> str:
    res = subprocess.run([*(user or []), "make", "-n", "-s", "test-cluster", *argv], cwd=REPO, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "MAKEFLAGS": ""})
    said = [line for line in res.stdout.splitlines() if HEAD in line]
    assert said, res.stdout + res.stderr
    return said[0].removeprefix("echo ").strip('"')


def _tier_r_host() -> bool:
    return (os.uname().sysname == "Linux" and os.geteuid() == 0 and all(shutil.which(x) for x in ("runc", "ip", "iptables"))
            and os.access("/usr/lib/cni/bridge", os.X_OK) and os.access("/bin/busybox", os.X_OK))


def test_the_main_job_names_its_profile_tier_and_why() -> None:
    line = _first_line()
    if _tier_r_host():
        assert line == HEAD + "conformance, tier R, every CNCF MUST: root on Linux with the real node's packages"
    else:
        assert line.startswith(HEAD + "conformance-s, tier S (")
        assert line.endswith("tier R's real node needs root on Linux and its packages): gang scheduling and cluster "
                             "autoscaling of the 8 MUSTs")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_without_root_the_main_job_is_tier_s_and_says_so() -> None:
    line = _first_line(user=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    assert line.startswith(HEAD + "conformance-s, tier S (not root; "), line


def test_a_profile_the_user_names_is_kept() -> None:
    assert _first_line("PROFILE=gang") == HEAD + "gang, you named it (PROFILE=gang)"
