"""The one exception tree of aiconform.

Every error a user can cause ends in one of these classes; the CLI prints ``str(err)`` as one line and exits
non-zero.  Nothing here imports other harness modules.

Whose fault it is (the one rule; ``harness.testing.outcome.is_platform_failure`` applies it to a check):

* The platform under test lacks or breaks something a requirement needs: an API or CRD it does not serve, a
  controller that never acts (the HPA never reads its metric or never scales, a Gateway never Programmed, a route
  never Accepted, a gateway that never routes), an admission webhook the apiserver never calls, a custom metric
  never served.  That is a :class:`PlatformFault`, naming the part (``part``), and the check is ``failed``: CNCF
  ``Not Implemented`` (or ``Partially Implemented`` next to passed checks).  So is a wait that saw the wrong answer
  or none (:class:`WaitFailed`, :class:`WaitTimeout`), a failed assertion and a 4xx answer the check did not expect,
  inside the check itself.  A PlatformFault counts also when raised while a check's fixture sets it up (the
  platform refused what the check needs); nothing else raised there does.  A capability the platform lacks is a
  skip (not evidenced) unless the platform claims the requirement (``aiconform run --claim``): then it is a
  PlatformFault naming the capability, raised before the check runs (``harness.testing.requirements``).
* aiconform broke: its own bug (any other exception), its own install step (:class:`ClusterError`,
  :class:`WorkloadError` of a component it deployed, :class:`BinaryError`, :class:`ImageBuildError`), a command it
  ran (:class:`CommandError`), an unreachable or refused kubeconfig (:class:`KubeError` other than a 4xx answer),
  or a cluster component that died while the check ran.  The check is ``error``: the run shows nothing about the
  platform.
"""

from __future__ import annotations

from typing import Any


class AiconformError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 1


class ConfigError(AiconformError):
    """A profile or setting is invalid; the message names the bad field."""

    exit_code = 2


class BinaryError(AiconformError):
    """An upstream binary could not be resolved, downloaded, verified or built."""


class ChecksumError(BinaryError):
    """A downloaded file did not match its published checksum."""


class CommandError(AiconformError):
    """A subprocess failed or timed out.  Carries argv, output and a line you can paste into a terminal."""

    def __init__(
        self,
        argv: list[str],
        returncode: int | None,
        output: str = "",
        *,
        timed_out: bool = False,
        cwd: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        self.timed_out = timed_out
        self.cwd = cwd
        super().__init__(self._summary())

    def shell_line(self) -> str:
        """The command as a line you can paste into a POSIX shell."""
        import shlex

        line = shlex.join(self.argv)
        return f"(cd {shlex.quote(self.cwd)} && {line})" if self.cwd else line

    def _summary(self) -> str:
        what = "timed out" if self.timed_out else f"exited with status {self.returncode}"
        tail = self.output.strip().splitlines()[-1:] if self.output.strip() else []
        detail = f": {tail[0]}" if tail else ""
        return f"command {what}{detail} [{self.shell_line()}]"


class ImageBuildError(AiconformError):
    """An image (harness/images) could not be built; names the image and the step that failed."""

    def __init__(self, image: str, step: str, detail: str) -> None:
        super().__init__(f"image {image}: step {step} failed: {detail}")
        self.image = image
        self.step = step


class ClusterError(AiconformError):
    """A cluster could not be created, found, or torn down."""


class ClusterNotFound(ClusterError):
    """No cluster of that name is running."""


class ClusterExists(ClusterError):
    """A cluster of that name already runs with a different spec."""


class PortInUse(ClusterError):
    """A port the profile asks for is already bound by another process."""


class PrivilegeError(AiconformError):
    """A tier or step needs root and the process is not root."""


class UnsupportedCapability(AiconformError):
    """A provider was asked for an optional capability it does not have."""

    def __init__(self, provider: str, capability: str) -> None:
        super().__init__(f"provider {provider!r} does not support {capability}")
        self.provider = provider
        self.capability = capability


class KubeError(AiconformError):
    """Talking to a kube-apiserver failed."""


class KubeConfigError(KubeError):
    """A kubeconfig is missing, unreadable, or uses something this client does not speak."""


class KubeUnreachable(KubeError):
    """The apiserver did not answer (connection refused, TLS failure, timeout)."""


class ApiError(KubeError):
    """The apiserver answered with an error status.  One subclass per status the harness acts on."""

    status = 0

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    """409: AlreadyExists or a resourceVersion conflict."""

    status = 409


class Gone(ApiError):
    """410: a watch's resourceVersion is too old."""

    status = 410


class Invalid(ApiError):
    status = 422


class TooManyRequests(ApiError):
    """429: temporary; ``retry_after`` says how long the server asked us to wait."""

    status = 429

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None, retry_after: float = 1.0):
        super().__init__(status, reason, message, body)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: temporary from the client's point of view."""

    status = 500


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
}


def api_error_for(status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> ApiError:
    """Map an HTTP status to the ApiError subclass for it."""
    if status == 429:
        return TooManyRequests(status, reason, message, body)
    if status >= 500:
        return ServerError(status, reason, message, body)
    return _BY_STATUS.get(status, ApiError)(status, reason, message, body)


class WaitTimeout(AiconformError):
    """A watch-based wait reached its deadline; says what was awaited and what was last seen."""


class WaitFailed(AiconformError):
    """A watch-based wait saw a failure condition (Job Failed, pod Unschedulable) before success."""


class PlatformFault(AiconformError):
    """The platform under test lacks or breaks something a requirement needs (see the module docstring): graded
    ``failed``.  ``part`` names it in a few words (``the HorizontalPodAutoscaler controller``,
    ``custom.metrics.k8s.io``, ``the Gateway API implementation (GatewayClass traefik)``); the message starts with it
    and goes on with what was done and what the platform answered."""

    def __init__(self, part: str, detail: str) -> None:
        super().__init__(f"{part}: {detail}")
        self.part = part
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:  # keeps (part, detail) across pickling (pytest-xdist)
        return (type(self), (self.part, self.detail))


class ApiNotServed(PlatformFault):
    """An API group/version or a CRD's resource the requirement needs is not served by the apiserver."""


class ControllerInactive(PlatformFault):
    """A controller of the platform never acted on an object it owns before the deadline (no status, no event)."""


class WebhookNotCalled(PlatformFault):
    """The apiserver let an object through without calling the admission webhook registered for it."""


class WorkloadError(AiconformError):
    """A component the harness deployed to carry a check broke: a model that does not load, a server never Ready, a
    metrics adapter not Available, a load run that errored.  Not the platform's verdict (graded ``error``); the
    message ends with the component's own log lines."""
