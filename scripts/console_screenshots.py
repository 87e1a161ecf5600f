#!/usr/bin/env python3
"""Screenshot every page of the console, from the browser tests themselves.

Runs the console's browser tests (``tests/browser/``: a real server on
loopback, Debian's headless Chromium through ``/usr/bin/chromedriver``,
every other host unresolvable) with ``CONSOLE_SCREENSHOTS`` set, so each
page the flows visit is saved as a 1280x800 PNG, then lists what it wrote.
docs/console.md shows them.

Usage::

    python scripts/console_screenshots.py [--output DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "console"

#: The pages docs/console.md shows (file stems); the script fails if one is missing.
PAGES = (
    "login",
    "login-refused",
    "enrol",
    "queue",
    "add",
    "add-preview",
    "entry-pending",
    "entry",
    "import",
    "import-approval",
    "search",
    "versions",
    "isps",
    "isps-behind",
    "tokens",
    "admin",
    "queue-guarded",
    "queue-proposals",
    "referrals",
    "entry-safeguards",
    "guards",
    "appeals",
    "appeals-unmatched",
    "appeal",
    "appeal-decided",
    "transparency",
)

#: The browser tests take about two minutes; anything far beyond is a hang.
TIMEOUT_SECONDS = 900


def main() -> int:
    """Run the flows with screenshots on; 0 when every page was written."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"directory (default {OUTPUT})")
    args = parser.parse_args()
    out: Path = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.png"):
        stale.unlink()
    env = {**os.environ, "CONSOLE_SCREENSHOTS": str(out)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/browser"],
        cwd=ROOT,
        env=env,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    if proc.returncode != 0:
        print("the browser tests failed; screenshots are incomplete", file=sys.stderr)
        return proc.returncode
    missing = [p for p in PAGES if not (out / f"{p}.png").is_file()]
    if missing:
        print(f"pages not captured: {', '.join(missing)}", file=sys.stderr)
        return 1
    for page in PAGES:
        print(out / f"{page}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
