"""Named, timed build steps: the progress lines on stderr and the one-line failure that names image and step.

Owns turning any failure inside a step (a command that failed, a file that could not be written, a download that
did not resolve) into :class:`~harness.errors.ImageBuildError` ``image NAME: step STEP failed: …``, and recording
how long each step took (``images build`` prints them; the cold-CI table in docs/cold-ci.md quotes them).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.errors import AiconformError, ImageBuildError


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Steps:
    """The steps of one image's build, in order, with their durations in seconds."""

    image: str
    progress: Callable[[str], None] = stderr_progress
    timings: list[tuple[str, float]] = field(default_factory=list)

    def say(self, msg: str) -> None:
        self.progress(f"images: {self.image}: {msg}")

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        self.say(f"{name}{' (' + detail + ')' if detail else ''} ...")
        start = time.monotonic()
        try:
            yield
        except ImageBuildError:
            raise
        except (AiconformError, OSError, ValueError) as err:
            raise ImageBuildError(self.image, name, str(err)) from err
        took = time.monotonic() - start
        self.timings.append((name, took))
        self.say(f"{name} done in {took:.1f} s")
