"""The block page picture in docs/isp.md and docs/blockpage.md is made by a script.

Runs ``scripts/blockpage_screenshot.py`` (a real ``cleanfeed isp blockpage``
on loopback, rendered by Debian's headless Chromium with every other host
name unresolvable) into a temporary file and checks that it wrote a picture
of the page, so the documented command keeps working.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_screenshot_script_renders_the_default_page(tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("Debian's chromium is not installed")
    out = tmp_path / "blockpage.png"
    proc = subprocess.run(
        [sys.executable, "scripts/blockpage_screenshot.py", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    # IHDR: the picture has the script's window size, not an empty frame
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 600
    assert height >= 400
    # a blank page compresses to almost nothing; the rendered text does not
    assert len(data) > 20_000
