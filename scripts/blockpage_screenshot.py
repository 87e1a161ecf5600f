#!/usr/bin/env python3
"""Screenshot the default block page with Debian's headless Chromium.

Builds a throw-away verified state holding one host entry, starts the real
``cleanfeed isp blockpage`` on loopback with a sample configuration
(reserved names only), and points Chromium at the blocked host through
``--host-resolver-rules`` (every other name fails to resolve: nothing leaves
the machine). Writes ``docs/img/blockpage.png``.

Usage::

    python scripts/blockpage_screenshot.py [--output FILE]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.blockpage import LISTED, build_state  # noqa: E402

OUTPUT = ROOT / "docs" / "img" / "blockpage.png"
#: Seconds Chromium gets to load the page and write the picture.
CHROMIUM_TIMEOUT = 120

SAMPLE_CONFIG = """\
[blockpage]
allow_clients = ["127.0.0.0/8"]
blocked_by = "https://isp.example/blocking"
isp_name = "Example ISP"
hotline_name = "Example Hotline"
hotline_url = "https://hotline.example/"
policy = "the Example Hotline's list of child sexual abuse URLs"
policy_url = "https://hotline.example/policy"
appeal_url = "https://hotline.example/appeal"
help_line_name = "Example Help Line"
help_line_url = "https://help.example/"
help_line_phone = "0800 000 000"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the block page did not start") from None
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as work:
        tmp = Path(work)
        build_state(tmp / "state", 10)
        config = tmp / "isp.toml"
        config.write_text(SAMPLE_CONFIG, encoding="utf-8")
        port = _free_port()
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "cleanfeed"),
                *("isp", "blockpage", "--config", str(config), "--state-dir", str(tmp / "state")),
                *("--listen", f"127.0.0.1:{port}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(port, server)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    f"--user-data-dir={tmp / 'chromium'}",
                    f"--host-resolver-rules=MAP {LISTED} 127.0.0.1:{port}, MAP * ~NOTFOUND",
                    "--window-size=900,820",
                    f"--screenshot={args.output.resolve()}",
                    f"http://{LISTED}/",
                ],
                check=True,
                timeout=CHROMIUM_TIMEOUT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
