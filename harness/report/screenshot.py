"""Screenshot a report page with headless Chromium (for docs, CI artifacts and the report's own layout test).

Needs a Chromium binary on PATH (Debian/Ubuntu: ``apt-get install chromium``).  The browser runs with a
throw-away profile, no network services and no GPU; the page itself fetches nothing.  ``png_size`` reads a
PNG's width and height with the standard library only.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

from harness import proc
from harness.report.model import ReportError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def find_chromium() -> str | None:
    """Path of the first Chromium-like browser on PATH, or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(
    page: str | os.PathLike[str],
    png: str | os.PathLike[str],
    *,
    width: int = 1280,
    height: int = 1600,
    browser: str | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Render the local HTML file ``page`` and save a ``width``×``height`` PNG at ``png``; returns its path.

    Raises ``ReportError`` when no browser is found and ``CommandError`` when the browser fails.
    """
    exe = browser or find_chromium()
    if exe is None:
        raise ReportError(f"no Chromium found on PATH (looked for {', '.join(BROWSERS)}); install 'chromium'")
    target = Path(png).resolve()
    url = Path(page).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="aiconform-chromium-") as profile:
        proc.run(
            [
                exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={target}",
                f"--window-size={width},{height}", url,
            ],
            timeout=timeout_s,
        )
    if not target.is_file():
        raise ReportError(f"{exe} exited without writing {target}")
    return target


def png_size(png: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ``ReportError`` if the file is not a PNG."""
    with open(png, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ReportError(f"{png} is not a PNG file")
    length, width, height = struct.unpack(">I4xII", head[8:24])
    if length != 13 or zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        raise ReportError(f"{png} has a corrupt PNG header")
    return width, height
