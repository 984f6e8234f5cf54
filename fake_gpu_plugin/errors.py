"""The exception tree of the fake GPU plugin.

Owns the errors a user of the plugin can cause (bad config, missing root, port in use) and the errors the kubelet
can cause (registration refused).  Kept free of ``harness`` imports so the plugin image ships this package alone;
the harness catches ``PluginError`` and wraps it in its own tree if it needs to.  Every class carries the exit code
the CLI ends with after printing ``str(err)`` as one line.
"""

from __future__ import annotations


class PluginError(Exception):
    """Base of every error the plugin raises on purpose."""

    exit_code = 1


class ConfigError(PluginError):
    """The inventory config is invalid; the message starts with the bad field's path (``gpu.mig.layout[1]: ...``)."""

    exit_code = 2

    def __init__(self, field: str, message: str, *, source: str = "") -> None:
        self.field = field
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{field}: {message}" if field else f"{prefix}{message}")


class HostSetupError(PluginError):
    """The host side could not be prepared (device nodes, state dir, metrics port)."""


class RegistrationError(PluginError):
    """The kubelet's Registration service refused or did not answer a Register call."""


class AllocationError(PluginError):
    """An Allocate request cannot be served; answered to the kubelet as a gRPC error with this message."""


class NvmlError(PluginError):
    """The nvml backend cannot run: nvidia-ml-py missing, NVML not loadable, or NVML's answers unusable."""
