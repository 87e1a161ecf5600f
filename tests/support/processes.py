"""Child processes of the tests: start, wait for, kill and read them.

- :func:`cleanfeed_argv` / :func:`signer_argv`: ``cleanfeed ...`` and
  ``cleanfeed signer ...`` in a fresh interpreter. The signer's command group
  is started through ``signer.publisher_cli`` (the click group behind
  ``cleanfeed signer``), so the tests exercise the same command whether or
  not the top-level dispatcher has registered it.
- :func:`kill_after` runs a child for a while and SIGKILLs it;
  :func:`wait_for_line` reads its output up to a marker line.
- :func:`spawn_logged` / :func:`wait_ready` / :func:`stop_process`: a server
  on loopback with its output in a log file; :func:`error_lines` reads the
  errors it logged.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[2]

#: ``python -c`` body that runs the ``cleanfeed signer`` click group.
SIGNER_MAIN = (
    "import sys; from signer.publisher_cli import signer_group; "
    "signer_group(sys.argv[1:], prog_name='cleanfeed signer')"
)

#: Longest wait for a server or signer process to come up (first start
#: migrates the database).
STARTUP_DEADLINE_SECONDS = 60.0


def signer_argv(*args: str) -> list[str]:
    """argv of ``cleanfeed signer ARGS`` in a fresh interpreter."""
    return [sys.executable, "-c", SIGNER_MAIN, *args]


def cleanfeed_argv(*args: str) -> list[str]:
    """argv of ``cleanfeed ARGS`` in a fresh interpreter."""
    return [sys.executable, "-m", "cleanfeed", *args]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of child processes: this one, minus CI-only kill hooks."""
    env = {k: v for k, v in os.environ.items() if k != "CLEANFEED_TEST_KILL_AT"}
    env.update(extra)
    return env


def kill_after(proc: subprocess.Popen[Any], delay: float) -> bool:
    """SIGKILL ``proc`` after ``delay`` seconds unless it ended; return whether it was killed."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


@dataclass(frozen=True)
class ChildRun:
    """How a child run by :func:`run_child` ended."""

    returncode: int
    #: Whether it died by SIGKILL (ours, or its own crash hook's).
    killed: bool
    #: How long it ran after printing "ready".
    seconds: float
    out: str
    err: str


def run_child(argv: list[str], delay: float | None, *, timeout: float) -> ChildRun:
    """Run ``argv`` from the repository root; SIGKILL it ``delay`` seconds after "ready".

    With ``delay`` None the child runs to its end (at most ``timeout``
    seconds after "ready"), or to a crash hook that SIGKILLs it.
    """
    with subprocess.Popen(
        argv,
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        wait_for_line(proc, "ready")
        start = time.monotonic()
        if delay is None:
            proc.wait(timeout=timeout)
            killed = proc.returncode == -signal.SIGKILL
        else:
            killed = kill_after(proc, delay)
        seconds = time.monotonic() - start
        out, err = proc.communicate(timeout=60)
    return ChildRun(proc.returncode, killed, seconds, out, err)


def wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 120.0) -> str:
    """Read the child's stdout until a line starting with ``prefix``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=60)
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(
                f"child ended before printing {prefix!r} (rc={proc.returncode}):\n{err[-3000:]}"
            )
        if line.startswith(prefix):
            return line
    raise AssertionError(f"child did not print {prefix!r} in time")


def free_port(host: str = "127.0.0.1", kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A free port (TCP unless ``kind`` says otherwise) on loopback address ``host``."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def spawn_logged(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log`` (never a full pipe)."""
    sink: IO[bytes]
    with log.open("ab") as sink:
        return subprocess.Popen(argv, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, env=env)


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``/healthz`` until the server answers."""
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"server did not come up:\n{log.read_text()}")
        time.sleep(0.2)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if it does not stop in ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def error_lines(log: Path) -> list[str]:
    """JSON log lines at level ERROR (or CRITICAL) in a process log."""
    out: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            if "Traceback" in line:
                out.append(line)
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in ("ERROR", "CRITICAL"):
            out.append(line)
    return out
