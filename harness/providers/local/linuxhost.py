"""Small Linux host operations the real node needs: links, addresses, sysctls, mounts, cgroups, processes, iptables.

Owns reading and changing host state through /proc, /sys and argv commands (``ip``, ``umount``, ``iptables``).
Knows nothing about Kubernetes or which state belongs to whom: realnode.py decides what to change and records it;
every function here acts only on the names and paths it is given.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from harness import proc
from harness.errors import CommandError, WaitTimeout

CGROUP_ROOT = Path("/sys/fs/cgroup")


# -- links and addresses ---------------------------------------------------------------------------------------------


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def create_veth(name: str, peer: str, address: str) -> None:
    """A veth pair ``name``/``peer`` with ``address`` (CIDR) on ``name``, both ends up."""
    proc.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer], timeout=30)
    proc.run(["ip", "addr", "add", address, "dev", name], timeout=30)
    proc.run(["ip", "link", "set", name, "up"], timeout=30)
    proc.run(["ip", "link", "set", peer, "up"], timeout=30)


def delete_link(name: str) -> bool:
    """Delete a link if it exists; True when it was there."""
    if not link_exists(name):
        return False
    proc.run(["ip", "link", "delete", name], timeout=30, check=False)
    return True


def bridge_ports(bridge: str) -> list[str]:
    brif = Path("/sys/class/net", bridge, "brif")
    return sorted(p.name for p in brif.iterdir()) if brif.is_dir() else []


def host_networks(exclude_links: Iterable[str] = ()) -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this host has an address or a route in (for overlap checks), except on ``exclude_links``."""
    skip = set(exclude_links)
    nets: list[ipaddress.IPv4Network] = []
    addrs = json.loads(proc.run(["ip", "-j", "-4", "addr", "show"], timeout=30).stdout or "[]")
    for link in addrs:
        if link.get("ifname") in skip:
            continue
        for a in link.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    routes = json.loads(proc.run(["ip", "-j", "-4", "route", "show"], timeout=30).stdout or "[]")
    for r in routes:
        if r.get("dev") in skip:
            continue
        dst = r.get("dst", "")
        if dst and dst != "default":
            nets.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    return nets


def overlapping(cidr: str, networks: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network | None:
    mine = ipaddress.IPv4Network(cidr, strict=False)
    return next((n for n in networks if n.overlaps(mine)), None)


# -- sysctls -----------------------------------------------------------------------------------------------------------


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys", *name.split("."))


def read_sysctl(name: str) -> str | None:
    try:
        return _sysctl_path(name).read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> bool:
    """Write one sysctl; False when the kernel refuses (read-only in this VM, unknown key)."""
    try:
        _sysctl_path(name).write_text(value + "\n")
    except OSError:
        return False
    return read_sysctl(name) == value


# -- mounts ------------------------------------------------------------------------------------------------------------


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mounts_under(prefixes: Iterable[Path]) -> list[str]:
    """Mount points at or below any of ``prefixes`` (from /proc/self/mountinfo), deepest first."""
    roots = [str(p).rstrip("/") for p in prefixes]
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split(" ")[4])
        if any(point == r or point.startswith(r + "/") for r in roots):
            found.append(point)
    return sorted(found, key=lambda p: (p.count("/"), p), reverse=True)


def unmount_all(prefixes: Iterable[Path], *, timeout: float = 30.0) -> list[str]:
    """Unmount everything at or below ``prefixes`` (stacked mounts too); returns what is still mounted."""
    roots = list(prefixes)
    deadline = time.monotonic() + timeout
    left = mounts_under(roots)
    while left and time.monotonic() < deadline:
        for point in left:
            if proc.run(["umount", point], timeout=30, check=False).returncode != 0:
                proc.run(["umount", "-l", point], timeout=30, check=False)
        now = mounts_under(roots)
        if now == left:  # no progress: nothing more umount can do
            return now
        left = now
    return left


# -- processes ---------------------------------------------------------------------------------------------------------


def pids_with_arg(arg: str) -> list[int]:
    """Pids whose command line has ``arg`` as one argument (e.g. the containerd socket a shim was given)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arg.encode() in args:
            out.append(int(entry.name))
    return sorted(out)


def kill_pids(pids: Iterable[int], *, timeout: float = 10.0) -> list[int]:
    """SIGKILL each pid and wait (bounded) until all are gone; returns the survivors."""
    pids = list(pids)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def all_gone() -> bool:
        alive = [p for p in pids if proc.pid_alive(p)]
        for p in alive:
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
        return not alive

    try:
        proc.poll_until(all_gone, timeout=timeout, interval=0.05, what="the killed processes to exit")
    except WaitTimeout:
        return [p for p in pids if proc.pid_alive(p)]
    return []


# -- cgroups (v1: one hierarchy per controller; v2: one) ---------------------------------------------------------------


def cgroup_dirs(name: str) -> list[Path]:
    """``<hierarchy>/<name>`` in every mounted cgroup hierarchy where it exists."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # cgroup v2
        return [CGROUP_ROOT / name] if (CGROUP_ROOT / name).is_dir() else []
    out = []
    for hierarchy in sorted(CGROUP_ROOT.iterdir()):
        if hierarchy.is_dir() and not hierarchy.is_symlink() and (hierarchy / name).is_dir():
            out.append(hierarchy / name)
    return out


def cgroup_pids(top: Path) -> list[int]:
    pids: set[int] = set()
    for dirpath, _dirs, files in os.walk(top):
        if "cgroup.procs" in files:
            try:
                text = Path(dirpath, "cgroup.procs").read_text()
            except OSError:
                continue
            pids.update(int(p) for p in text.split())
    return sorted(pids)


def remove_cgroup_tree(top: Path, *, timeout: float = 10.0) -> bool:
    """rmdir ``top`` and every cgroup below it, deepest first (retrying while exiting tasks leave); True when gone."""

    def removed() -> bool:
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
        return not top.exists()

    try:
        proc.poll_until(removed, timeout=timeout, interval=0.05, what=f"cgroup {top} to be removed")
    except WaitTimeout:
        pass
    return not top.exists()


# -- iptables ----------------------------------------------------------------------------------------------------------

IPTABLES_TABLES = ("filter", "nat", "mangle")


def iptables_chains(command: str = "iptables") -> dict[str, list[str]]:
    """User chains per table ({} when iptables is not installed or the kernel has no tables); ``command`` picks
    a backend (``iptables-nft``, ``iptables-legacy``)."""
    out: dict[str, list[str]] = {}
    for table in IPTABLES_TABLES:
        try:
            lines = proc.run([command, "-w", "5", "-t", table, "-S"], timeout=30).stdout.splitlines()
        except CommandError:
            continue
        out[table] = sorted(ln.split()[1] for ln in lines if ln.startswith("-N "))
    return out


def iptables_delete_chains(table: str, chains: Iterable[str], *, command: str = "iptables") -> list[str]:
    """Remove every rule that jumps to ``chains``, then flush and delete them; returns chains that remain."""
    targets = set(chains)
    if not targets:
        return []
    ipt = [command, "-w", "5", "-t", table]
    rules = proc.run([*ipt, "-S"], timeout=30, check=False).stdout.splitlines()
    for rule in rules:
        words = shlex.split(rule)
        if len(words) > 3 and words[0] == "-A" and "-j" in words and words[words.index("-j") + 1] in targets:
            proc.run([*ipt, "-D", *words[1:]], timeout=30, check=False)
    for chain in targets:
        proc.run([*ipt, "-F", chain], timeout=30, check=False)
    for chain in targets:
        proc.run([*ipt, "-X", chain], timeout=30, check=False)
    return sorted(targets & set(iptables_chains(command).get(table, [])))
