"""A profile's feature gates and component flags, checked against the pinned upstream binaries before anything starts.

Owns asking each binary what it accepts, never a hand-written list: its ``--help`` (every flag, and under
``--feature-gates`` every alpha and beta gate), parsed once per binary and cached as JSON under
``<cache dir>/flags/`` (keyed by the binary's path, size and mtime); and for a gate the help does not list (GA or
deprecated gates are hidden there) and for the final word on values, the binary itself run as
``<binary> --feature-gates=… --<flag>=… --version``, which parses and checks them the way start-up does and exits.

Turns ``controlPlane.featureGates`` / ``runtimeConfig`` / ``extraArgs`` and ``realNode.extraArgs`` into
:class:`ComponentSettings` (what each component gets) or raises ConfigError: one line naming the field and the
component.  Must not start anything or know how a provider builds its argv (the provider passes the flags it
sets itself as ``reserved``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness import proc
from harness.bins import cache_root
from harness.config import Profile
from harness.errors import CommandError, ConfigError

CACHE_FORMAT = 1
_FLAG_LINE = re.compile(r"^\s+(?:-[A-Za-z0-9], )?--([a-z0-9][a-z0-9-]*)")
_GATE_LINE = re.compile(r"^\s+(?:([a-z0-9-]+):)?([A-Z][A-Za-z0-9]*)=true\|false \(([A-Z]+) - default=(true|false)\)")
GATE_PROBE_IGNORED = frozenset({"kubelet"})
"""Binaries whose ``--version`` run does not check ``--feature-gates`` (the kubelet prints its version first): they
get only the gates their ``--help`` lists."""
GATE_COMPONENT = "kube"
"""The prefix under which Kubernetes' own gates are listed (``kube:GenericWorkload=true|false``)."""


@dataclass(frozen=True)
class BinaryOptions:
    """What one binary's ``--help`` says it accepts."""

    flags: frozenset[str]
    """Long flag names without dashes."""
    gates: dict[str, str] = field(default_factory=dict)
    """Listed feature gate → stage and default, e.g. ``BETA - default=false`` (GA/deprecated gates are not listed)."""


@dataclass(frozen=True)
class ComponentSettings:
    """What each component gets from the profile, already checked against its binary."""

    feature_gates: dict[str, dict[str, bool]] = field(default_factory=dict)
    """Component → the profile's gates that its binary knows."""
    extra_args: dict[str, dict[str, str]] = field(default_factory=dict)
    """Component → extra flags (name without dashes → value)."""
    runtime_config: dict[str, str] = field(default_factory=dict)

    def gates(self, component: str) -> dict[str, bool]:
        return dict(self.feature_gates.get(component, {}))

    def args(self, component: str) -> dict[str, str]:
        return dict(self.extra_args.get(component, {}))


def parse_help(text: str) -> BinaryOptions:
    """Flags and listed Kubernetes feature gates from a component's ``--help`` output."""
    flags: set[str] = set()
    gates: dict[str, str] = {}
    for line in text.splitlines():
        m = _FLAG_LINE.match(line)
        if m:
            flags.add(m.group(1))
            continue
        g = _GATE_LINE.match(line)
        if g and (g.group(1) or GATE_COMPONENT) == GATE_COMPONENT and g.group(2) not in ("AllAlpha", "AllBeta"):
            gates[g.group(2)] = f"{g.group(3)} - default={g.group(4)}"
    return BinaryOptions(flags=frozenset(flags), gates=gates)


def _cache_file(binary: Path, cache_dir: Path | None) -> Path:
    st = binary.stat()
    key = hashlib.sha256(f"{binary.resolve()}:{st.st_size}:{st.st_mtime_ns}:{CACHE_FORMAT}".encode()).hexdigest()
    return (cache_dir or cache_root()) / "flags" / f"{binary.name}-{key[:16]}.json"


def binary_options(binary: Path, *, cache_dir: Path | None = None) -> BinaryOptions:
    """Parse ``<binary> --help`` (cached per binary under the cache dir)."""
    try:
        cached = _cache_file(binary, cache_dir)
    except OSError as err:
        raise ConfigError(f"cannot read {binary}: {err.strerror}") from err
    try:
        data = json.loads(cached.read_text())
        return BinaryOptions(flags=frozenset(data["flags"]), gates=dict(data["gates"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        res = proc.run([str(binary), "--help"], timeout=60, check=False)
    except CommandError as err:
        raise ConfigError(f"cannot ask {binary.name} for its flags: {err}") from err
    opts = parse_help(res.stdout + "\n" + res.stderr)
    if "feature-gates" not in opts.flags:
        raise ConfigError(f"{binary.name} --help listed no --feature-gates flag; cannot check the profile against it")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"flags": sorted(opts.flags), "gates": opts.gates}, indent=1))
    os.replace(tmp, cached)
    return opts


def probe(binary: Path, gates: Mapping[str, bool], args: Mapping[str, str]) -> str | None:
    """Run ``binary`` with these gates and flags and ``--version`` (it parses and checks them, then exits); the
    binary's one-line complaint, or None when it accepts them."""
    argv = [str(binary)]
    if gates:
        argv.append("--feature-gates=" + ",".join(f"{k}={str(v).lower()}" for k, v in sorted(gates.items())))
    argv += [f"--{k}={v}" for k, v in sorted(args.items())]
    argv.append("--version")
    try:
        res = proc.run(argv, timeout=60, check=False)
    except CommandError as err:
        return str(err)
    out = (res.stdout + "\n" + res.stderr).strip()
    if res.returncode == 0 and "Kubernetes v" in out:
        return None
    return _complaint(out) or f"exit status {res.returncode}"


def _complaint(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in lines:
        m = re.search(r'err="([^"]+)"', ln)
        if m:
            return m.group(1)
        if ln.startswith("Error: "):
            return ln[len("Error: "):]
    return lines[0][:300] if lines else ""


API_SINCE: dict[str, tuple[int, int]] = {"scheduling.k8s.io/v1beta1": (1, 37)}
"""``controlPlane.runtimeConfig`` API versions and the first Kubernetes minor that serves each (the ones aiconform's
checks use).  An older apiserver accepts the entry and serves nothing for it; with the GenericWorkload gate on,
v1.36's then waits for ``scheduling.k8s.io/v1alpha2`` PodGroups and never becomes ready: refused up front instead."""


def _check_runtime_config(runtime_config: Mapping[str, str], version: str) -> None:
    match = re.match(r"v?(\d+)\.(\d+)", version)
    if not match:
        return
    minor = (int(match.group(1)), int(match.group(2)))
    for api, value in runtime_config.items():
        since = API_SINCE.get(api)
        if since and minor < since and str(value).lower() != "false":
            raise ConfigError(f"controlPlane.runtimeConfig.{api}: Kubernetes v{version} does not serve {api} (first "
                              f"served in v{since[0]}.{since[1]}); aiconform's native gang scheduling needs it: on "
                              f"v{minor[0]}.{minor[1]} use a profile without it (e.g. default, local-real)")


def component_settings(
    profile: Profile,
    binaries: Mapping[str, Path],
    version: str,
    reserved: Mapping[str, Collection[str]],
    *,
    cache_dir: Path | None = None,
) -> ComponentSettings:
    """Check the profile's gates and flags against ``binaries`` (component → binary: the control plane, plus the
    kubelet for a real node) and say what each component gets.  ConfigError naming the field and component."""
    cp = profile.control_plane
    _check_runtime_config(cp.runtime_config, version)
    wanted_args: dict[str, tuple[str, dict[str, str]]] = {
        comp: (f"controlPlane.extraArgs.{comp}", dict(args)) for comp, args in cp.extra_args.items() if args}
    if profile.real_node.extra_args:
        if not profile.real_node.enabled:
            raise ConfigError("realNode.extraArgs: the profile has no real node (realNode.enabled is false)")
        wanted_args["kubelet"] = ("realNode.extraArgs", dict(profile.real_node.extra_args))
    if not cp.feature_gates and not wanted_args:
        return ComponentSettings(runtime_config=dict(cp.runtime_config))
    components = [c for c in binaries if c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                                "kubelet")]
    opts = {c: binary_options(binaries[c], cache_dir=cache_dir) for c in components}

    for comp, (at, args) in wanted_args.items():
        if comp not in opts:
            raise ConfigError(f"{at}: {comp} is not part of this cluster")
        for name in args:
            if name in reserved.get(comp, ()):
                raise ConfigError(f"{at}.{name}: --{name} is set by the harness and cannot be overridden"
                                  + (" (use controlPlane.featureGates)" if name == "feature-gates" else "")
                                  + (" (use controlPlane.runtimeConfig)" if name == "runtime-config" else ""))
            if name not in opts[comp].flags:
                raise ConfigError(f"{at}.{name}: {comp} v{version} has no flag --{name} (see `{comp} --help`)")

    gates: dict[str, dict[str, bool]] = {c: {} for c in components}
    for gate, value in cp.feature_gates.items():
        knowers = [c for c in components if gate in opts[c].gates]
        if not knowers:  # GA and deprecated gates are not listed: let each binary decide
            complaints = {c: probe(binaries[c], {gate: value}, {}) for c in components
                          if c not in GATE_PROBE_IGNORED}
            knowers = [c for c, why in complaints.items() if why is None]
            if not knowers:
                first = next(iter(complaints))
                raise ConfigError(f"controlPlane.featureGates.{gate}: no component of Kubernetes v{version} accepts "
                                  f"it ({first}: {complaints[first]})")
        for c in knowers:
            gates[c][gate] = value

    for comp in components:  # the binary's final word on values, gate locks and gate dependencies
        if gates[comp] and comp not in GATE_PROBE_IGNORED:
            why = probe(binaries[comp], gates[comp], {})
            if why is not None:
                raise ConfigError(f"controlPlane.featureGates: {comp} v{version} refuses them: {why}")
        if comp in wanted_args:
            at, args = wanted_args[comp]
            why = probe(binaries[comp], gates[comp], args)
            if why is not None:
                raise ConfigError(f"{at}: {comp} v{version} refuses it: {why}")
    return ComponentSettings(
        feature_gates={c: g for c, g in gates.items() if g},
        extra_args={c: a for c, (_, a) in wanted_args.items()},
        runtime_config=dict(cp.runtime_config),
    )
