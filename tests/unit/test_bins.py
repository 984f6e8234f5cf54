"""Binary resolution: bin dir and cache first, checksum-verified downloads (against a loopback server), clear
errors without network or Go."""

from __future__ import annotations

import hashlib
import http.server
import io
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from harness.bins import BinaryResolver, Versions, load_versions, staging_modules_from_gomod
from harness.errors import BinaryError, ChecksumError

PAYLOAD = b"#!/bin/sh\necho fake-kube-apiserver\n"


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, bytes]]]:
    files: dict[str, bytes] = {}
    handler = type("H", (_Files,), {"files": files})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", files
    finally:
        srv.shutdown()
        srv.server_close()


def _versions(base: str) -> Versions:
    v = load_versions()
    k8s = replace(v.groups["kubernetes"], release_url=base + "/v{version}/bin/{os}/{arch}/{name}",
                  checksum_url=base + "/v{version}/bin/{os}/{arch}/{name}.sha256")
    etcd = replace(v.groups["etcd"], release_url=base + "/etcd-v{version}-{os}-{arch}.tar.gz",
                   checksum_url=base + "/SHA256SUMS")
    return Versions(v.kubernetes_default, v.kubernetes_previous, {**v.groups, "kubernetes": k8s, "etcd": etcd})


def _resolver(tmp_path: Path, versions: Versions, download: str = "auto") -> BinaryResolver:
    return BinaryResolver(versions, cache_dir=tmp_path / "cache", bin_dir=None, go="", progress=lambda m: None,
                          download=download)


def test_download_verifies_checksum_and_caches(tmp_path: Path, server: tuple[str, dict[str, bytes]]) -> None:
    base, files = server
    v = _versions(base)
    ver = v.kubernetes_default
    files[f"/v{ver}/bin/linux/amd64/kube-apiserver"] = PAYLOAD
    files[f"/v{ver}/bin/linux/amd64/kube-apiserver.sha256"] = hashlib.sha256(PAYLOAD).hexdigest().encode()
    r = _resolver(tmp_path, v)
    got = r.resolve("kube-apiserver")
    assert got.source == "download"
    assert got.path.read_bytes() == PAYLOAD
    assert got.path.stat().st_mode & 0o111
    files.clear()  # second resolution must not touch the network
    again = r.resolve("kube-apiserver")
    assert again.source == "cache" and again.path == got.path


def test_download_with_wrong_checksum_installs_nothing(tmp_path: Path, server: tuple[str, dict[str, bytes]]) -> None:
    base, files = server
    v = _versions(base)
    ver = v.kubernetes_default
    files[f"/v{ver}/bin/linux/amd64/kube-apiserver"] = PAYLOAD + b"tampered"
    files[f"/v{ver}/bin/linux/amd64/kube-apiserver.sha256"] = hashlib.sha256(PAYLOAD).hexdigest().encode()
    r = _resolver(tmp_path, v)
    with pytest.raises(ChecksumError, match="checksum mismatch for kube-apiserver"):
        r.resolve("kube-apiserver")
    assert not r.cached_path(v.groups["kubernetes"], "kube-apiserver").exists()


def test_tarball_release_with_sums_file(tmp_path: Path, server: tuple[str, dict[str, bytes]]) -> None:
    base, files = server
    v = _versions(base)
    ver = v.groups["etcd"].version
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"etcd-v{ver}-linux-amd64/etcd")
        info.size = len(PAYLOAD)
        tar.addfile(info, io.BytesIO(PAYLOAD))
    tgz = buf.getvalue()
    name = f"etcd-v{ver}-linux-amd64.tar.gz"
    files[f"/{name}"] = tgz
    files["/SHA256SUMS"] = f"{'0' * 64}  other.tar.gz\n{hashlib.sha256(tgz).hexdigest()}  {name}\n".encode()
    got = _resolver(tmp_path, v).resolve("etcd")
    assert got.path.read_bytes() == PAYLOAD


def test_no_network_no_go_is_one_clear_line(tmp_path: Path, server: tuple[str, dict[str, bytes]]) -> None:
    base, _files = server  # serves 404 for everything
    r = _resolver(tmp_path, _versions(base))
    with pytest.raises(BinaryError) as err:
        r.resolve("kube-scheduler")
    msg = str(err.value)
    assert "\n" not in msg
    assert "AICONFORM_BIN_DIR" in msg and "install Go" in msg and "HTTP 404" in msg


def test_downloads_off_and_no_go(tmp_path: Path) -> None:
    r = _resolver(tmp_path, load_versions(), download="never")
    with pytest.raises(BinaryError, match="downloads are off"):
        r.resolve("etcd")


def test_bin_dir_wins(tmp_path: Path) -> None:
    bdir = tmp_path / "bins"
    bdir.mkdir()
    exe = bdir / "kwok"
    exe.write_bytes(PAYLOAD)
    exe.chmod(0o755)
    r = BinaryResolver(load_versions(), cache_dir=tmp_path / "c", bin_dir=bdir, go="", progress=lambda m: None)
    got = r.resolve("kwok")
    assert got.source == "bin-dir" and got.path == exe


def test_unknown_binary() -> None:
    with pytest.raises(BinaryError, match="unknown binary 'kube-proxy2'"):
        BinaryResolver(load_versions(), go="", progress=lambda m: None).resolve("kube-proxy2")


def test_staging_modules_parsed_from_kubernetes_gomod() -> None:
    gomod = """module k8s.io/kubernetes

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/x/y => github.com/x/y v1.2.3
)
replace k8s.io/kubelet => ./staging/src/k8s.io/kubelet
"""
    assert staging_modules_from_gomod(gomod) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/kubelet"]


def test_versions_pin_two_kubernetes_minors() -> None:
    v = load_versions()
    cur = int(v.kubernetes_default.split(".")[1])
    prev = int(v.kubernetes_previous.split(".")[1])
    assert cur == prev + 1


def _fake_go(tmp_path: Path, module_dir: Path) -> tuple[Path, Path]:
    """A `go` that answers `mod download -json` with ``module_dir`` and makes `build -o DIR/ PKG...` write, like go,
    one script per package into DIR named after the package (its major-version suffix dropped), saying its package;
    every call is logged as ``cwd|GOTOOLCHAIN|argv`` (argv joined by tabs)."""
    log = tmp_path / "go.log"
    go = tmp_path / "go"
    go.write_text(f"""#!{sys.executable}
import json, os, re, sys
args = sys.argv[1:]
with open({str(log)!r}, "a") as fh:
    fh.write(os.getcwd() + "|" + os.environ.get("GOTOOLCHAIN", "") + "|" + "\\t".join(args) + "\\n")
if args[:2] == ["mod", "download"]:
    print(json.dumps({{"Dir": {str(module_dir)!r}}}))
elif args[:1] == ["build"]:
    if not os.access("go.mod", os.W_OK):
        sys.exit("module copy is read-only")
    out, pkgs, i = None, [], 1
    while i < len(args):
        if args[i] in ("-o", "-ldflags"):
            out = args[i + 1] if args[i] == "-o" else out
            i += 2
            continue
        if not args[i].startswith("-"):
            pkgs.append(args[i])
        i += 1
    assert out and out.endswith("/") and os.path.isdir(out), out
    for pkg in pkgs:
        parts = pkg.split("/")
        name = parts[-2] if re.fullmatch(r"v[0-9]+", parts[-1]) else parts[-1]
        with open(os.path.join(out, name), "w") as fh:
            fh.write("#!/bin/sh\\necho " + pkg + "\\n")
""")
    go.chmod(0o755)
    return go, log


def _builds(log: Path) -> list[list[str]]:
    return [line.split("|", 2)[2].split("\t") for line in log.read_text().splitlines() if "|build\t" in line]


def test_in_module_build_copies_the_module_writable_and_builds_inside_it(tmp_path: Path) -> None:
    mod = tmp_path / "modcache" / "example.com" / "tool@v1.2.3"
    (mod / "cmd" / "tool").mkdir(parents=True)
    (mod / "go.mod").write_text("module example.com/tool\n\nreplace example.com/dep => ./dep\n")
    for p in (mod / "go.mod", mod / "cmd" / "tool", mod / "cmd", mod):
        p.chmod(0o555 if p.is_dir() else 0o444)  # the module cache is read-only
    go, log = _fake_go(tmp_path, mod)
    base = load_versions()
    comp = replace(base.groups["etcd"], group="tool", version="1.2.3", module="example.com/tool",
                   binaries=("tool",), packages={"tool": "example.com/tool/cmd/tool"}, release_url="",
                   build="in-module", toolchain="go1.27.3")
    v = Versions(base.kubernetes_default, base.kubernetes_previous, {"tool": comp})
    r = BinaryResolver(v, cache_dir=tmp_path / "c", download="never", go=str(go), progress=lambda m: None)
    got = r.resolve("tool")
    assert got.source == "build"
    assert "./cmd/tool" in got.path.read_text()
    calls = log.read_text().splitlines()
    build = [c for c in calls if "|build\t" in c]
    assert build and all(c.split("|")[1] == "go1.27.3" for c in calls)
    assert build[0].split("|")[0].endswith("/build/tool-v1.2.3/src")
    for p in (mod / "go.mod", mod / "cmd" / "tool", mod / "cmd", mod):
        p.chmod(0o755)


def test_unknown_build_mode_names_the_section(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "harness" / "versions.toml").read_text()
    bad = tmp_path / "versions.toml"
    bad.write_text(text + '\n[tool]\nversion = "1.0.0"\nmodule = "example.com/tool"\nbinaries = ["tool"]\n'
                   'packages = { tool = "example.com/tool" }\nbuild = "vendored"\n')
    with pytest.raises(BinaryError, match=r"\[tool\] build must be one of scratch, in-module, not 'vendored'"):
        load_versions(bad)


def test_pin_names_resolve_to_the_pinned_versions() -> None:
    from harness.bins import pinned_kubernetes
    from harness.config import parse_profile

    v = load_versions()
    assert pinned_kubernetes("default") == v.kubernetes_default
    assert pinned_kubernetes("previous") == v.kubernetes_previous
    assert pinned_kubernetes("v1.2.3") == "1.2.3"
    profile = parse_profile({"controlPlane": {"kubernetesVersion": "previous"}}, name="p")
    assert profile.control_plane.kubernetes_version == v.kubernetes_previous


def test_a_source_of_ours_is_built_in_the_scratch_module_and_rebuilt_when_it_changes(tmp_path: Path) -> None:
    """A binary built from a main package of this repository (CoreDNS with the plugins used here): its files are
    copied into the scratch module, it is not imported by tools.go (a main package cannot be), and the cached
    binary is rebuilt when the source changes."""
    import harness.bins as bins

    src = tmp_path / "gosrc" / "tool"
    src.mkdir(parents=True)
    (src / "main.go").write_text("package main\n\nfunc main() {}\n")
    go, log = _fake_go(tmp_path, tmp_path)
    base = load_versions()
    comp = replace(base.groups["etcd"], group="tool", version="1.0.0", module="example.com/tool",
                   binaries=("tool",), packages={"tool": "aiconform.local/build/tool"}, release_url="",
                   sources={"tool": str(src)})
    v = Versions(base.kubernetes_default, base.kubernetes_previous, {"tool": comp})
    r = BinaryResolver(v, cache_dir=tmp_path / "c", download="never", go=str(go), progress=lambda m: None)
    work = tmp_path / "c" / "build" / "tool-v1.0.0"
    work.mkdir(parents=True)
    (work / "go.mod").write_text("module aiconform.local/build\n")  # writable, as `go mod tidy` would leave it
    assert r.resolve("tool").source == "build"
    assert (work / "tool" / "main.go").read_text() == (src / "main.go").read_text()
    assert "aiconform.local/build/tool" not in (work / "tools.go").read_text()
    assert r.resolve("tool").source == "cache"
    (src / "main.go").write_text("package main\n\nfunc main() { println() }\n")
    assert bins.BinaryResolver(v, cache_dir=tmp_path / "c", download="never", go=str(go),
                               progress=lambda m: None).resolve("tool").source == "build"
    assert len(_builds(log)) == 2


def _kubernetes_resolver(tmp_path: Path, go: Path, progress: list[str]) -> tuple[BinaryResolver, Path]:
    """The pinned k8s.io/kubernetes component with its scratch module already tidied (as a first build leaves it),
    so the fake go sees only the build."""
    v = load_versions()
    comp = v.groups["kubernetes"]
    work = tmp_path / "c" / "build" / f"kubernetes-v{comp.version}"
    work.mkdir(parents=True)
    (work / "go.mod").write_text("module aiconform.local/build\n")
    (work / ".ready").write_text("\n".join(sorted(comp.packages.values())) + "\n")
    r = BinaryResolver(v, cache_dir=tmp_path / "c", bin_dir=None, download="never", go=str(go),
                       progress=progress.append)
    return r, work


def test_the_binaries_of_one_module_come_from_one_go_build_with_trimpath_and_no_dwarf(tmp_path: Path) -> None:
    from harness.bins import CONTROL_PLANE, REAL_NODE

    go, log = _fake_go(tmp_path, tmp_path)
    progress: list[str] = []
    r, _work = _kubernetes_resolver(tmp_path, go, progress)
    k8s = [n for n in CONTROL_PLANE + REAL_NODE if r.versions.owner_of(n) == "kubernetes"]
    assert k8s == ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"]
    got = r.resolve_many(k8s)
    builds = _builds(log)
    assert len(builds) == 1, builds  # one invocation: the compiled packages are shared
    argv = builds[0]
    assert argv[:2] == ["build", "-trimpath"] and "-tags=providerless" in argv
    ldflags = argv[argv.index("-ldflags") + 1].split()
    assert ldflags[:2] == ["-s", "-w"]
    assert f"k8s.io/component-base/version.gitVersion=v{r.versions.kubernetes_default}" in ldflags
    assert argv[-5:] == [f"k8s.io/kubernetes/cmd/{n}" for n in k8s]
    for name in k8s:
        assert got[name].source == "build"
        assert got[name].path.read_text() == f"#!/bin/sh\necho k8s.io/kubernetes/cmd/{name}\n"
    assert not [p.name for p in got["kubelet"].path.parent.iterdir() if p.name.startswith(".build-")]
    assert {n: res.source for n, res in r.resolve_many(k8s).items()} == dict.fromkeys(k8s, "cache")
    assert len(_builds(log)) == 1


def test_a_failed_build_installs_none_of_its_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    go, log = _fake_go(tmp_path, tmp_path)
    go.write_text(go.read_text().replace("    for pkg in pkgs:", "    if os.environ.get('FAKE_GO_FAIL'):\n"
                                          "        pkgs = pkgs[:1]\n    for pkg in pkgs:")
                  + "if os.environ.get('FAKE_GO_FAIL'):\n    sys.exit('cmd/kubelet: compile error')\n")
    monkeypatch.setenv("FAKE_GO_FAIL", "1")
    r, _work = _kubernetes_resolver(tmp_path, go, [])
    with pytest.raises(BinaryError, match="building kube-apiserver, kubelet v.* failed") as err:
        r.resolve_many(["kube-apiserver", "kubelet"])
    assert "compile error" in str(err.value)
    bin_dir = r.cached_path(r.versions.groups["kubernetes"], "kubelet").parent
    assert list(bin_dir.iterdir()) == []  # the apiserver go did write is not installed: no half-built set


def test_progress_says_the_last_measured_duration_else_the_cold_figure(tmp_path: Path) -> None:
    from harness.bins import BuildTimes

    go, log = _fake_go(tmp_path, tmp_path)
    progress: list[str] = []
    r, _work = _kubernetes_resolver(tmp_path, go, progress)
    comp = r.versions.groups["kubernetes"]
    r.resolve("kube-apiserver")
    first = next(m for m in progress if m.startswith("building kube-apiserver"))
    # nothing measured yet: the README's cold figure (527 s measured on a fresh machine), not "about 2 minutes"
    assert first.endswith("(about 10 min cold by the README's table; not measured on this machine yet)"), first
    times = BuildTimes(tmp_path / "c")
    assert times.key(comp, ["kube-apiserver"]) in times.entries()  # the fake build's own duration, recorded

    times.record(comp, ["kube-apiserver"], 1234.0)  # as a slow real build would have
    r.cached_path(comp, "kube-apiserver").unlink()
    progress.clear()
    r.resolve("kube-apiserver")
    today = times.entries()[times.key(comp, ["kube-apiserver"])]["measured"][:10]
    assert progress[0] == (f"building kube-apiserver v{comp.version} from the Go module proxy "
                           f"(about 21 min, measured {today})")
    # a new pin builds cold again: the slowest recorded build of the same binaries at another version
    bumped = replace(comp, version="1.99.0")
    times.record(replace(comp, version="1.98.0"), ["kube-apiserver"], 600)
    assert times.estimate(bumped, ["kube-apiserver"]).startswith("about 10 min, as v1.98.0 took when measured ")
    (tmp_path / "c" / "build-times.json").write_text("{not json")  # a broken record is "nothing measured"
    assert "not measured on this machine yet" in times.estimate(comp, ["kube-apiserver", "kubelet"])


def test_go_names_binaries_after_the_package_so_clashing_names_build_apart() -> None:
    from harness.bins import build_batches, go_exe_name

    assert go_exe_name("go.etcd.io/etcd/server/v3") == "server"
    assert go_exe_name("k8s.io/kubernetes/cmd/kubelet") == "kubelet"
    assert go_exe_name("sigs.k8s.io/karpenter/kwok") == "kwok"
    base = load_versions().groups["etcd"]
    comp = replace(base, group="tool", binaries=("a", "b", "c"),
                   packages={"a": "example.com/x/cmd/tool", "b": "example.com/y/tool/v2", "c": "example.com/cmd/other"})
    assert build_batches(comp, ["a", "b", "c"]) == [["a", "c"], ["b"]]


def test_a_resolver_that_cannot_build_does_not_wait_for_another_build_of_the_group(tmp_path: Path) -> None:
    """A lookup-only resolver (no Go, no downloads; e.g. a unit test asking for kube-proxy) answers at once while
    another process holds the group's lock for a build of many minutes."""
    import fcntl

    v = load_versions()
    r = _resolver(tmp_path, v, download="never")
    lock = tmp_path / "cache" / "locks" / f"kubernetes-v{v.kubernetes_default}.lock"
    lock.parent.mkdir(parents=True)
    errors: list[BaseException] = []
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the other process's build
        t = threading.Thread(target=lambda: errors.append(pytest.raises(BinaryError, r.resolve, "kube-proxy").value))
        t.start()
        t.join(10)
        alive = t.is_alive()
        fcntl.flock(held, fcntl.LOCK_UN)
    t.join(10)
    assert not alive, "the lookup waited for the other build's lock"
    assert "downloads are off" in str(errors[0])


def test_builds_give_the_compiler_a_lazier_gc_unless_gogc_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.bins import BUILD_GOGC, build_env

    comp = load_versions().component("kwok")
    monkeypatch.delenv("GOGC", raising=False)
    assert build_env(comp)["GOGC"] == BUILD_GOGC == "400"
    monkeypatch.setenv("GOGC", "150")  # the user's own setting wins
    assert build_env(comp)["GOGC"] == "150"
