"""The ``aiconform`` command line: up / down / upgrade / status / kubeconfig / bins / run / selftest / report / images /
node-image / plugin.

Progress goes to stderr; results (a kubeconfig path, a table) to stdout.  Every error a user can cause ends in one
line on stderr and a non-zero exit: ``aiconform: <what went wrong>``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from harness import __version__
from harness.contract import DRA_DRIVER
from harness.errors import AiconformError, ClusterNotFound

EXIT_INTERRUPTED = 130


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _err(msg: str) -> None:
    print(f"aiconform: {msg}", file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from harness.config import load_profile, with_kubernetes
    from harness.providers import provider_for

    profile = with_kubernetes(load_profile(args.profile), args.kubernetes)
    provider = provider_for(profile, args.name)
    kubeconfig = provider.create(profile)
    print(kubeconfig, flush=True)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from harness.providers import find_cluster

    try:
        cluster = find_cluster(args.name)
    except ClusterNotFound:
        cluster = None
    if cluster is None or not cluster.delete():
        if args.ignore_missing:
            print(f"no cluster named {args.name!r}; nothing to do", file=sys.stderr)
            return 0
        raise ClusterNotFound(f"no cluster named {args.name!r}; nothing to do")
    print(f"cluster {args.name!r} deleted", file=sys.stderr)
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    from harness.bins import pinned_kubernetes
    from harness.providers import find_cluster
    from harness.providers.base import UpgradesControlPlane, unsupported

    cluster = find_cluster(args.name)
    if not isinstance(cluster, UpgradesControlPlane):
        raise unsupported(cluster, UpgradesControlPlane, "upgrading the control plane",
                          getattr(cluster, "provider_name", ""))
    cluster.upgrade_control_plane(pinned_kubernetes(args.to))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from harness.providers import find_cluster

    st = find_cluster(args.name).status()
    if args.json:
        print(json.dumps(asdict(st), indent=2))
    else:
        print(f"cluster     {st.name} ({'healthy' if st.healthy else 'NOT healthy'})")
        print(f"provider    {st.provider}")
        print(f"profile     {st.profile} (tier {st.tier})")
        print(f"kubernetes  v{st.kubernetes_version} at {st.server}")
        print(f"kubeconfig  {st.kubeconfig}")
        for label, text in st.notes.items():
            print(f"{label:<11} {text}")
        for comp, pid in st.components.items():
            print(f"  {comp:<24} {'pid ' + str(pid) if pid else 'NOT RUNNING'}")
    return 0 if st.healthy else 1


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    from harness.providers import find_cluster

    path = find_cluster(args.name).kubeconfig()
    if not path.exists():
        raise ClusterNotFound(f"cluster {args.name!r} has no kubeconfig yet (still coming up, or broken)")
    print(path)
    return 0


def cmd_bins(args: argparse.Namespace) -> int:
    import re

    from harness.bins import CONTROL_PLANE, REAL_NODE, BinaryResolver, pinned_kubernetes
    from harness.errors import ConfigError

    resolver = BinaryResolver(download="never" if args.no_download else None)
    names = resolver.versions.all_binaries() if args.all else CONTROL_PLANE + REAL_NODE
    first = pinned_kubernetes(args.kubernetes, resolver.versions) if args.kubernetes else None
    if first is not None and not re.fullmatch(r"1\.\d+\.\d+", first):
        raise ConfigError(f"--kubernetes: must look like 1.X.Y (or default, previous), got {args.kubernetes!r}")
    versions = [first]
    if args.previous:  # the previous pinned minor as well: what `upgrade_control_plane` upgrades from
        versions.append(resolver.versions.kubernetes_previous)
    for i, version in enumerate(versions):
        # the previous minor needs only its Kubernetes binaries; every other pin is shared with the first pass
        wanted = names if i == 0 else [n for n in CONTROL_PLANE + REAL_NODE if resolver.versions.owner_of(n) == "kubernetes"]
        for name, res in resolver.resolve_many(wanted, kubernetes=version).items():
            print(f"{name:<28} v{res.version:<8} {res.source:<8} {res.path}", flush=True)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness.runner import run_main

    return run_main(args)


def cmd_selftest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.selftest.model import SelftestSettings
    from harness.selftest.run import list_main, selftest_main

    if args.list:
        return list_main(args.suite, args.tier)
    report_dir = Path(args.report_dir) if args.report_dir else Path("reports") / f"selftest-{int(time.time())}"
    return selftest_main(SelftestSettings(
        report_dir=report_dir, requirements=tuple(args.requirement or ()), checks=tuple(args.check or ()),
        mutations=tuple(args.mutation or ()), suite=args.suite, max_tier=args.tier, baseline=not args.no_baseline,
        musts_only=args.must))


def cmd_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.simulate import DEFAULT_POLICIES, SimulateSettings, simulate
    from harness.simulate.replay import ReplaySettings

    settings = SimulateSettings(
        report_dir=Path(args.report_dir),
        policies=tuple(args.policy or DEFAULT_POLICIES),
        trace_file=Path(args.trace) if args.trace else None,
        seed=args.seed, jobs=args.jobs, teams=args.teams, load=args.load,
        replay=ReplaySettings(nodes=args.nodes, compression=args.compression),
    )
    doc = simulate(settings)
    for p in doc["policies"]:
        print(f"{p['policy']}: utilization {100 * p['gpu_utilization_avg']:.1f}% "
              f"(productive {100 * p['productive_utilization_avg']:.1f}%), wait p50/p99 "
              f"{p['wait_p50_min']}/{p['wait_p99_min']} min, Jain {p['fairness_jain']}, "
              f"preempted pods {p['pods_preempted']}, starved jobs {p['starved_jobs']}")
    print(Path(args.report_dir) / "report.html", flush=True)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.report_cmd == "diff":
        from harness.report import diff_main

        return int(diff_main(args.before, args.after))
    from harness.report import render_main
    from harness.report.submission import load_product

    return int(render_main(args.dir, product=load_product(args.product) if args.product else None))


def cmd_images(args: argparse.Namespace) -> int:
    from harness import images

    if args.images_cmd == "list":
        rows = [images.status(img) for img in images.REGISTRY.values()]
        print(f"{'NAME':<20} {'KIND':<8} {'HASH':<16} {'CACHED':<6} {'SIZE':>9}  IMAGE")
        for r in rows:
            size = f"{r['bytes'] / 1e6:.1f} MB" if r["cached"] else "-"
            cached = "yes" if r["cached"] else ("n/a" if r.get("error") else "no")
            print(f"{r['name']:<20} {r['kind']:<8} {r['key'][:16] or '-':<16} {cached:<6} {size:>9}  {r['ref']}"
                  + (f"  ({r['error']})" if r.get("error") else ""))
        return 0
    registry = images.parse_registry(args.registry) if args.images_cmd == "push" else None  # one line before any build
    default = FOREIGN_IMAGES if registry is not None else tuple(images.REGISTRY)
    targets = [images.get(n) for n in (args.names or default)]  # unknown names fail before any build
    if registry is not None:
        for img in targets:
            built = images.build(img)
            print(f"pushing {img.name} to {registry.ref(img.ref)}", file=sys.stderr, flush=True)
            pushed = images.push_archive(built.archive, img.ref, registry,
                                         progress=lambda line: print(line, file=sys.stderr, flush=True))
            print(f"{pushed.ref}  {pushed.digest}  ({pushed.sent} blob(s) sent, {pushed.bytes_sent / 1e6:.1f} MB; "
                  f"{pushed.present} already there)", flush=True)
        return 0
    for img in targets:
        built = images.build(img)
        print(built.archive, flush=True)
    return 0


FOREIGN_IMAGES = ("pause", "busybox", "model-server")
"""What `aiconform images push` pushes by default: the images the suites run on a real node of a cluster aiconform did
not build (the pod sandbox image of GPU pods, the tier R probes, the reference model server)."""


def cmd_node_image(args: argparse.Namespace) -> int:
    import re

    from harness.bins import pinned_kubernetes
    from harness.errors import ConfigError
    from harness.providers.kind.engine import ensure_engine
    from harness.providers.kind.nodeimage import build_node_image, node_images

    version = pinned_kubernetes(args.kubernetes) if getattr(args, "kubernetes", None) else None
    if version is not None and not re.fullmatch(r"1\.\d+\.\d+", version):  # before the engine starts
        raise ConfigError(f"--kubernetes: must look like 1.X.Y (or default, previous), got {args.kubernetes!r}")
    engine = ensure_engine()
    try:
        if args.node_image_cmd == "list":
            for ref in node_images(engine):
                print(ref)
            return 0
        print(build_node_image(engine, version).ref, flush=True)
        return 0
    finally:
        engine.close()


def cmd_dra(args: argparse.Namespace) -> int:
    from harness import dra
    from harness.kube import KubeClient, KubeConfig
    from harness.providers import find_cluster

    client = KubeClient(KubeConfig.from_file(find_cluster(args.name).kubeconfig()))
    try:
        devices = dra.slice_devices(client)
        for r in dra.try_claim(client, device_class=args.device_class, cel=tuple(args.cel), count=args.count,
                               timeout=args.timeout, progress=lambda m: print(m, file=sys.stderr)):
            dev = devices.get((r["pool"], r["device"]), {})
            print(f"{r['pool']}/{r['device']} {dra.attr(dev, 'productName') or ''} {dra.attr(dev, 'uuid') or ''}"
                  .rstrip())
    finally:
        client.close()
    return 0


def cmd_plugin(args: argparse.Namespace) -> int:
    from fake_gpu_plugin.cli import main as plugin_main

    rest = list(args.plugin_args)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return int(plugin_main(rest))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aiconform",
        description="Local-first emulator and conformance harness for Kubernetes clusters that run AI workloads.",
    )
    p.add_argument("--version", action="version", version=f"aiconform {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="bring a cluster up (idempotent); prints the kubeconfig path last")
    up.add_argument("--profile", default=None, help="shipped profile name or path to a YAML profile (default: default)")
    up.add_argument("--name", default="aiconform", help="cluster name (default: aiconform)")
    up.add_argument("--kubernetes", default=None, metavar="VERSION",
                    help="run another Kubernetes version than the profile's: a pinned version, default or previous")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop every process of a cluster and remove its run directory")
    down.add_argument("--name", default="aiconform")
    down.add_argument("--ignore-missing", action="store_true", help="exit 0 when no such cluster exists")
    down.set_defaults(func=cmd_down)

    upg = sub.add_parser("upgrade", help="upgrade a running cluster's control plane (then its real node's kubelet) "
                                         "in place to another pinned Kubernetes version")
    upg.add_argument("--name", default="aiconform")
    upg.add_argument("--to", required=True, metavar="VERSION",
                     help="the target version: the next minor at most, never lower (pinned in harness/versions.toml; "
                          "`default` names the pinned default)")
    upg.set_defaults(func=cmd_upgrade)

    st = sub.add_parser("status", help="show a cluster's components and health")
    st.add_argument("--name", default="aiconform")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    kc = sub.add_parser("kubeconfig", help="print the kubeconfig path of a running cluster")
    kc.add_argument("--name", default="aiconform")
    kc.set_defaults(func=cmd_kubeconfig)

    bins = sub.add_parser("bins", help="resolve the pinned upstream binaries and print where they are")
    bins.add_argument("--kubernetes", default=None,
                      help="Kubernetes version: 1.X.Y, default or previous (default: the pinned default)")
    bins.add_argument("--all", "--addons", dest="all", action="store_true",
                      help="every pinned binary: also kubectl, kubeadm, kind and each addon's (Kueue, JobSet, Trainer, "
                           "Karpenter, Traefik, Prometheus, prometheus-adapter, kube-router), so a failing build shows "
                           "up front instead of in the test that first installs the addon")
    bins.add_argument("--previous", action="store_true",
                      help="also the previous pinned Kubernetes minor (upgrade checks start from it)")
    bins.add_argument("--no-download", action="store_true", help="never try release downloads; build instead")
    bins.set_defaults(func=cmd_bins)

    run = sub.add_parser("run", help="bring a cluster up, run scenario suites, write the report")
    run.add_argument("--profile", default=None)
    run.add_argument("--kubernetes", default=None, metavar="VERSION",
                     help="bring the profile up on another Kubernetes version: a pinned version, default or previous "
                          "(with --upgrade-to: the version to upgrade from)")
    run.add_argument("--name", default="aiconform-run")
    run.add_argument("--suite", action="append", default=None,
                     help="a shipped suite name (repeat or comma-separate), or the path of a folder of your own "
                          "checks (a value with a path separator, or an existing folder); default: all shipped suites")
    run.add_argument("--report-dir", default=None, help="default: reports/<run-id>")
    run.add_argument("--product", default=None, metavar="FILE",
                     help="the vendor's CNCF metadata for the submission folder REPORT_DIR/cncf/v1.X/<product>/ "
                          "(template: examples/product.yaml); without it the folder's metadata is left empty")
    run.add_argument("--keep", action="store_true", help="leave the cluster up afterwards")
    run.add_argument("--kubeconfig", default=None, help="run against an existing cluster (provider existing)")
    run.add_argument("--capability", action="append", default=None, metavar="FACT",
                     help="declare a fact of the existing cluster (--kubeconfig), e.g. networkpolicy, instead of "
                          "detecting it; repeatable")
    run.add_argument("--image-registry", default=None, metavar="REGISTRY",
                     help="the suites' pods run images from REGISTRY (HOST[:PORT][/PATH], pushed there by `aiconform "
                          "images push`), for a cluster aiconform did not build")
    run.add_argument("--node-selector", default=None, metavar="KEY=VALUE[,KEY=VALUE]",
                     help="where pods that need a node running containers go on an existing cluster (default: "
                          "aiconform's real-node label where nodes carry it, else none when no node is simulated; "
                          "`none`: no selector)")
    run.add_argument("--claim", action="append", default=None, metavar="REQ",
                     help="a requirement the platform claims to implement (repeatable or comma-separated; `musts`: "
                          "every CNCF MUST of the cluster's checklist): a check of it on a cluster that lacks a "
                          "capability it needs is failed (CNCF Not Implemented) instead of skipped")
    run.add_argument("--no-probe", action="store_true",
                     help="with --kubeconfig: detect facts from what the API serves only, without the NetworkPolicy "
                          "probe (a server pod, client pods and a default-deny policy, at most 60 s)")
    run.add_argument("--allow-existing", action="store_true",
                     help="allow destructive suites on an existing cluster")
    run.add_argument("--seed", type=int, default=None, help="Hypothesis seed for the property suite")
    run.add_argument("--examples", type=int, default=None, help="Hypothesis examples per property")
    run.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    run.add_argument("--parallel", type=int, default=None, metavar="N",
                     help="checks at a time (pytest-xdist; checks marked exclusive still run alone); "
                          "default: half the machine's cores for a local cluster (its control plane needs the rest), all of them "
                          "for --kubeconfig, at most 8; 1: one at a time")
    run.add_argument("--upgrade-to", default=None, metavar="VERSION",
                     help="run the suites (and the upgrade suite), upgrade the cluster in place to VERSION (`default`: "
                          "the pinned default), run them again: reports in REPORT_DIR/before and /after, their diff in "
                          "REPORT_DIR/diff.txt; exit 1 on a regression")
    run.add_argument("--upgrade-with", default=None, metavar="COMMAND",
                     help="with --kubeconfig: run the suites (and the upgrade suite), then COMMAND in a shell "
                          "(KUBECONFIG set; your kubeadm, cloud CLI or script; output kept in "
                          "REPORT_DIR/upgrade-command.log), wait until the API serves the new version, run them "
                          "again: REPORT_DIR/before, /after and diff.txt as with --upgrade-to")
    run.add_argument("--upgrade-timeout", type=float, default=None, metavar="SECONDS",
                     help="with --upgrade-with: how long the API may take, once COMMAND ended, to serve another "
                          "version (default 1800; 0: compare at the version it serves then, for a node-only upgrade)")
    run.set_defaults(func=cmd_run)

    st = sub.add_parser("selftest", help="bring up mutated platforms (a plugin off, a controller left out...) and show "
                        "that every check naming them fails there; power table in the report; exit 1 on a miss")
    st.add_argument("--list", action="store_true", help="list the mutations per requirement and their checks; run nothing")
    st.add_argument("--requirement", action="append", metavar="ID", help="only the mutations of this requirement "
                    "(repeatable)")
    st.add_argument("--check", action="append", metavar="ID", help="only this check (node id or function name; "
                    "repeatable) and the mutations it names")
    st.add_argument("--mutation", action="append", metavar="ID", help="only this mutation (repeatable)")
    st.add_argument("--must", action="store_true", help="only the mutations of the CNCF MUST requirements")
    st.add_argument("--suite", default=None, metavar="PATH", help="a folder or file of checks instead of the shipped "
                    "suites")
    st.add_argument("--tier", default="S", choices=("S", "R"), help="the highest tier to bring up (R: a real node, "
                    "needs root); mutations that need more are listed as not run (default: S)")
    st.add_argument("--no-baseline", action="store_true", help="skip running the checks on the unmutated platform "
                    "first (a check that fails there proves nothing; faster)")
    st.add_argument("--report-dir", default=None, help="default: reports/selftest-<time>")
    st.set_defaults(func=cmd_selftest)

    sim = sub.add_parser("simulate", help="replay a workload trace under scheduling policies; utilization and "
                         "fairness report")
    sim.add_argument("--trace", metavar="FILE", help="a CSV or YAML trace (default: a seeded generated one)")
    sim.add_argument("--policy", action="append", metavar="NAME",
                     help="a policy to compare (repeatable; default: fifo, priority, gang, kueue)")
    sim.add_argument("--report-dir", required=True, metavar="DIR")
    sim.add_argument("--seed", type=int, default=1, help="seed of the generated trace")
    sim.add_argument("--jobs", type=int, default=200, help="jobs in the generated trace")
    sim.add_argument("--teams", type=int, default=4, help="teams in the generated trace")
    sim.add_argument("--load", type=float, default=1.1, help="offered load of the generated trace (x capacity)")
    sim.add_argument("--nodes", type=int, default=16, help="simulated nodes of 8 GPUs")
    sim.add_argument("--compression", type=float, default=300.0, help="trace seconds per wall second")
    sim.set_defaults(func=cmd_simulate)

    rep = sub.add_parser("report", help="render or compare reports")
    rsub = rep.add_subparsers(dest="report_cmd", required=True, metavar="SUBCOMMAND")
    d = rsub.add_parser("diff", help="compare two reports; exit 1 on a regression")
    d.add_argument("before")
    d.add_argument("after")
    r = rsub.add_parser("render", help="re-render html/md/junit and the CNCF submission folder from a results.json")
    r.add_argument("dir")
    r.add_argument("--product", default=None, metavar="FILE",
                   help="the vendor's CNCF metadata (template: examples/product.yaml)")
    rep.set_defaults(func=cmd_report)

    img = sub.add_parser("images", help="build and list the OCI images built here (nothing is ever pulled)")
    isub = img.add_subparsers(dest="images_cmd", required=True, metavar="SUBCOMMAND")
    ib = isub.add_parser("build", help="build (or find cached) images; prints each archive's path")
    ib.add_argument("names", nargs="*", metavar="NAME", help="image names (default: all; see `images list`)")
    isub.add_parser("list", help="name, kind, content hash, cached or not, archive size")
    ip = isub.add_parser("push", help="push images (built first if need be) to a registry, for a cluster aiconform "
                                      "did not build (then `aiconform run --image-registry REGISTRY`)")
    ip.add_argument("names", nargs="*", metavar="NAME",
                    help="image names (default: pause, busybox, model-server; see `images list`)")
    ip.add_argument("--registry", required=True, metavar="REGISTRY",
                    help="HOST[:PORT][/PATH] (plain HTTP for a loopback host or an http:// prefix, else HTTPS; "
                         "credentials from `docker login`)")
    img.set_defaults(func=cmd_images)

    ni = sub.add_parser("node-image", help="the offline kind node image (built here, nothing pulled)")
    nsub = ni.add_subparsers(dest="node_image_cmd", required=True, metavar="SUBCOMMAND")
    nb = nsub.add_parser("build", help="build the node image, or find it in the harness's dockerd; prints its name")
    nb.add_argument("--kubernetes", default=None, metavar="VERSION",
                    help="1.X.Y, default or previous (default: the pinned default)")
    nsub.add_parser("list", help="the node images the harness's dockerd holds")
    ni.set_defaults(func=cmd_node_image)
    dra = sub.add_parser("dra", help="DRA: ask the cluster's scheduler to allocate one claim (then release it)")
    dsub = dra.add_subparsers(dest="dra_command", required=True)
    dc = dsub.add_parser("claim", help="allocate a claim of --class matching every --cel; print its devices")
    dc.add_argument("--name", default="aiconform", help="the cluster (default: aiconform)")
    dc.add_argument("--class", dest="device_class", default=DRA_DRIVER, help=f"DeviceClass ({DRA_DRIVER})")
    dc.add_argument("--cel", action="append", default=[], help="a CEL selector (repeatable), e.g. "
                    "'device.attributes[\"gpu.nvidia.com\"].productName == \"NVIDIA H100 80GB HBM3\"'")
    dc.add_argument("--count", type=int, default=1)
    dc.add_argument("--timeout", type=float, default=30.0)
    dra.set_defaults(func=cmd_dra)

    plug = sub.add_parser("plugin", help="the fake GPU device plugin (see `aiconform plugin -- --help`)")
    plug.add_argument("plugin_args", nargs=argparse.REMAINDER)
    plug.set_defaults(func=cmd_plugin)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _err("interrupted; everything this command started has been stopped")
        return EXIT_INTERRUPTED
    except AiconformError as err:
        _err(str(err))
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
