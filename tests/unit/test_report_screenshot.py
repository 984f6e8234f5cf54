"""report.html renders in a real browser (headless Chromium): a screenshot of the expected size comes out."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report import ReportError, write_all
from harness.report.sample import sample_results
from harness.report.screenshot import find_chromium, png_size, screenshot

requires_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no Chromium on PATH (apt-get install chromium) to render report.html"
)


@requires_chromium
def test_report_html_screenshot(tmp_path: Path) -> None:
    page = write_all(sample_results(), tmp_path / "report")["report.html"]
    png = screenshot(page, tmp_path / "report.png", width=1280, height=1600)
    assert png.is_file()
    assert png.stat().st_size > 20_000  # a blank page compresses to a few KB
    assert png_size(png) == (1280, 1600)


def test_png_size_rejects_non_png(tmp_path: Path) -> None:
    bogus = tmp_path / "x.png"
    bogus.write_bytes(b"GIF89a" + bytes(40))
    with pytest.raises(ReportError, match="is not a PNG"):
        png_size(bogus)
