"""Shared pieces of the benchmarks: figures, the run context, processes, profiles.

Every benchmark module exposes ``run(ctx: BenchContext) -> Section``: it
measures, returns its :class:`Figure` values (medians of repeated runs) and
a Markdown section with the details, and profiles the code under test when a
target is missed (``ctx.profile``). :mod:`bench.__main__` runs them in one
process and writes ``docs/benchmarks.md``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

#: Repository root (bench/ lives directly under it).
ROOT = Path(__file__).resolve().parent.parent
#: The virtualenv's interpreter and scripts, so subprocesses run the same code.
PYTHON = Path(sys.executable)
BIN = PYTHON.parent
#: Generated, never committed (.gitignore has /bench/out/).
OUT = ROOT / "bench" / "out"

#: How long a server gets to answer /healthz after start (first start
#: initialises a data directory and migrates the database).
SERVER_START_TIMEOUT = 60.0

#: Project packages, to tell project frames from library frames in profiles.
PROJECT_PACKAGES = ("blocklist/", "signer/", "api/", "clients/", "cleanfeed/", "bench/")


@dataclass(frozen=True)
class Target:
    """A target from issue 8: ``value <op> threshold``."""

    op: str  # ">=", "<=", "<", "=="
    threshold: float
    text: str

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the target."""
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<=":
            return value <= self.threshold
        if self.op == "<":
            return value < self.threshold
        if self.op == "==":
            return value == self.threshold
        raise ValueError(f"unknown operator {self.op}")


@dataclass
class Figure:
    """One measured figure (a median of ``runs`` unless said otherwise)."""

    key: str
    what: str
    value: float
    unit: str
    runs: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""
    quick: bool = False

    @property
    def met(self) -> bool | None:
        """Whether the target is met (None: no target)."""
        return None if self.target is None else self.target.met(self.value)


@dataclass
class Section:
    """What one benchmark returns: its figures and its Markdown details."""

    name: str
    title: str
    figures: list[Figure]
    details: str
    seconds: float = 0.0
    profiles: list[str] = field(default_factory=list)


@dataclass
class BenchContext:
    """Options and shared state of one ``python -m bench`` run."""

    quick: bool
    work: Path
    profile: bool = True
    verbose: bool = True
    shared: dict[str, Any] = field(default_factory=dict)

    def log(self, message: str) -> None:
        """Progress on stderr (the figures go to the document)."""
        if self.verbose:
            print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def memo(self, key: str, build: Callable[[], Any]) -> Any:
        """Build a fixture once per run (large databases are shared by benchmarks)."""
        if key not in self.shared:
            self.shared[key] = build()
        return self.shared[key]


# --- numbers -------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median (of at least one value)."""
    return float(statistics.median(values))


def fmt(value: float, digits: int = 3) -> str:
    """A number for the document: thousands separators, ``digits`` significant places."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.{digits}g}"


def fmt_runs(values: Sequence[float]) -> str:
    """Every run, for the details."""
    return ", ".join(fmt(v) for v in values)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(p / 100 * len(sorted_values) + 0.5))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


# --- machine ---------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python, SQLite and the versions of the packages measured."""
    import sqlite3
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    os_name = f"{platform.system()} {platform.release()}"
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()})"
    packages = []
    for name in (
        "cleanfeed",
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "pydantic",
        "sqlalchemy",
        "httpx",
        "pynacl",
        "numpy",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages.append(f"{name} {metadata.version(name)}")
    wrk = "not installed"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        wrk = (out.stdout + out.stderr).strip().splitlines()[0]
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} logical ({affinity} usable by this process)",
        "RAM": ram,
        "OS": os_name,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "SQLite": sqlite3.sqlite_version,
        "packages": ", ".join(packages),
        "load generator": wrk,
    }


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmark subprocess: ours, plus ``extra``."""
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    env.update(extra)
    return env


class ServerProcess:
    """A server subprocess on 127.0.0.1, its output in a log file, stopped by its pid."""

    def __init__(
        self,
        argv: list[str],
        port: int,
        log_path: Path,
        env: dict[str, str] | None = None,
        *,
        ready_path: str = "/healthz",
    ) -> None:
        """Start ``argv`` (which must listen on ``port``) and wait for ``ready_path``.

        Raises:
            RuntimeError: it exited or did not answer in time.
        """
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.ready_path = ready_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env or bench_env(),
            start_new_session=True,
        )
        self._wait_ready()

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; see {self.log_path}:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            try:
                r = httpx.get(self.base + self.ready_path, timeout=2.0)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server on port {self.port} did not become ready; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL after 15 s; only this process group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cleanfeed_server(
    data_dir: Path,
    log_path: Path,
    *,
    no_signer: bool = False,
    unlimited: bool = False,
    extra_env: dict[str, str] | None = None,
) -> ServerProcess:
    """``cleanfeed serve --data-dir DIR --host 127.0.0.1 --port P`` (one worker).

    ``unlimited`` raises the per-token rate limit out of reach (the limiter
    still runs on every request): a load generator with one token would
    otherwise measure 429s.
    """
    port = free_port()
    argv = [
        str(BIN / "cleanfeed"),
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if no_signer:
        argv.append("--no-signer")
    env = bench_env(**(extra_env or {}))
    if unlimited:
        # Every role's limiter (ISP/anonymous, analyst, auditor, admin).
        for prefix in ("", "ANALYST_", "AUDITOR_", "ADMIN_"):
            env[f"CLEANFEED_{prefix}RATE_LIMIT_PER_SECOND"] = "1000000"
            env[f"CLEANFEED_{prefix}RATE_LIMIT_BURST"] = "1000000"
    return ServerProcess(argv, port, log_path, env)


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews every figure)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def uvicorn_options_note() -> str:
    """How both servers of the HTTP comparison run (kept in one place)."""
    return (
        "`uvicorn.run(app, host='127.0.0.1', port=P, log_config=None, access_log=False)`, "
        "one worker, default loop and HTTP implementation (uvloop and httptools when "
        "installed, as here)"
    )


# --- wrk ---------------------------------------------------------------------------------


@dataclass
class WrkResult:
    """What one wrk run reported."""

    requests_per_second: float
    requests: int
    non_2xx_3xx: int
    socket_errors: str
    latency_avg: str
    latency_p99: str
    raw: str


def lua_headers_script(path: Path, headers: dict[str, str]) -> Path:
    """Write a wrk Lua script that sends ``headers`` with every request."""
    lines = [f"wrk.headers[{_lua_str(k)}] = {_lua_str(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _lua_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(
    url: str,
    script: Path,
    *,
    duration: float,
    connections: int = 50,
    threads: int = 2,
) -> WrkResult:
    """``wrk -c50 -t2 -dNs --latency -s script url``; parse its report.

    Raises:
        RuntimeError: wrk failed or printed no rate.
    """
    argv = [
        "wrk",
        f"-c{connections}",
        f"-t{threads}",
        f"-d{int(duration)}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout + out.stderr
    rate = requests = non_ok = None
    socket_errors = ""
    latency_avg = latency_p99 = "?"
    for line in text.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            rate = float(words[1])
        elif "requests in" in line:
            requests = int(words[0])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            non_ok = int(words[-1])
        elif line.strip().startswith("Socket errors:"):
            socket_errors = line.strip()
        elif line.strip().startswith("Latency") and len(words) >= 2 and latency_avg == "?":
            latency_avg = words[1]
        elif line.strip().startswith("99%"):
            latency_p99 = words[1]
    if out.returncode != 0 or rate is None or requests is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{text}")
    return WrkResult(rate, requests, non_ok or 0, socket_errors, latency_avg, latency_p99, text)


# --- profiles ----------------------------------------------------------------------------


def _short(path: str) -> str:
    for marker in PROJECT_PACKAGES:
        i = path.rfind("/" + marker)
        if i >= 0:
            return path[i + 1 :]
    i = path.rfind("site-packages/")
    if i >= 0:
        return path[i + len("site-packages/") :]
    i = path.rfind("/lib/python")
    if i >= 0:
        return "stdlib:" + path.rsplit("/", 1)[-1]
    return path


def _is_project(frame: str) -> bool:
    return any(f"({p}" in frame for p in PROJECT_PACKAGES)


def summarise_collapsed(
    stacks: dict[tuple[str, ...], int], title: str, *, top: int = 12, idle: Sequence[str] = ()
) -> str:
    """Top frames by self and by inclusive samples of collapsed stacks.

    Each stack is a tuple of ``function (file:line)`` frames, root first.
    Stacks whose leaf matches one of ``idle`` (waiting in the event loop or a
    lock) are counted apart, so the table shows where CPU time goes.
    """
    total = sum(stacks.values())
    if total == 0:
        return f"**{title}**: no samples\n"
    busy = {s: n for s, n in stacks.items() if not any(marker in s[-1] for marker in idle) and s}
    idle_samples = total - sum(busy.values())
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    project_inclusive: Counter[str] = Counter()
    for stack, n in busy.items():
        self_counts[stack[-1]] += n
        seen: set[str] = set()
        for frame in stack:
            # Inclusive time per function (all its lines together).
            name = _without_line(frame)
            if name in seen:
                continue
            seen.add(name)
            inclusive[name] += n
            if _is_project(frame):
                project_inclusive[name] += n
    busy_total = max(1, sum(busy.values()))
    lines = [
        f"**{title}** ({total} samples, {100 * idle_samples / total:.0f}% idle/waiting; "
        "percentages of the busy samples)",
        "",
        "| self % | function (file:line) |",
        "|---:|---|",
    ]
    for frame, n in self_counts.most_common(top):
        lines.append(f"| {100 * n / busy_total:.1f} | `{frame}` |")
    lines += ["", "| inclusive % | project function (file) |", "|---:|---|"]
    for frame, n in project_inclusive.most_common(top):
        lines.append(f"| {100 * n / busy_total:.1f} | `{frame}` |")
    return "\n".join(lines) + "\n"


def _without_line(frame: str) -> str:
    """``f (a/b.py:12)`` -> ``f (a/b.py)``."""
    head, sep, tail = frame.rpartition(":")
    if sep and tail.rstrip(")").isdigit():
        return head + ")"
    return frame


def parse_pyspy_raw(path: Path) -> dict[tuple[str, ...], int]:
    """Read py-spy's ``--format raw`` output (collapsed stacks, root first)."""
    stacks: dict[tuple[str, ...], int] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            # "function (path/to/file.py:123)"
            name, _, where = frame.partition(" (")
            where = where.rstrip(")")
            file, _, line_no = where.rpartition(":")
            frames.append(f"{name} ({_short(file)}:{line_no})" if file else name)
        key = tuple(frames)
        stacks[key] = stacks.get(key, 0) + int(count)
    return stacks


#: Leaf frames that mean "waiting", not working (event loop, thread pool, locks).
IDLE_MARKERS = (
    "select (",
    "poll (",
    "wait (",
    "_worker (",
    "run_forever (",
    "_run_once (",
    "acquire (",
    "sleep (",
)


def pyspy_record(pid: int, seconds: float, out: Path, *, rate: int = 200) -> Path | None:
    """Sample a running process with py-spy for ``seconds`` (raw collapsed stacks).

    Returns None when py-spy is not installed or cannot attach.
    """
    pyspy = BIN / "py-spy"
    if not pyspy.exists():
        return None
    argv = [
        str(pyspy),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0 or not out.exists():
        return None
    return out


def pyspy_run(
    argv: list[str],
    out: Path,
    *,
    stdin: Path | None = None,
    rate: int = 200,
    env: dict[str, str] | None = None,
) -> bool:
    """Run ``argv`` under py-spy (raw collapsed stacks in ``out``)."""
    pyspy = BIN / "py-spy"
    if not pyspy.exists():
        return False
    cmd = [str(pyspy), "record", "--rate", str(rate), "--format", "raw", "--output", str(out)]
    with contextlib.ExitStack() as stack:
        fin = stack.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        result = subprocess.run(
            [*cmd, "--", *argv],
            stdin=fin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=1800,
            env=env or bench_env(),
        )
    return result.returncode in (0, 1) and out.exists()


def profile_call(fn: Callable[[], Any], title: str, *, interval: float = 0.0005) -> str:
    """Profile ``fn()`` in this process with pyinstrument; return the top frames.

    Returns a note instead when pyinstrument is not installed.
    """
    try:
        from pyinstrument import Profiler
    except ImportError:
        return f"**{title}**: pyinstrument is not installed (pip install pyinstrument)\n"
    profiler = Profiler(interval=interval)
    profiler.start()
    try:
        fn()
    finally:
        profiler.stop()
    session = profiler.last_session
    if session is None:
        return f"**{title}**: no samples\n"
    root = session.root_frame()
    if root is None:
        return f"**{title}**: no samples\n"
    stacks: dict[tuple[str, ...], int] = {}

    def walk(frame: Any, path: tuple[str, ...]) -> None:
        if frame.is_synthetic:
            return  # "[self]" leaves: already in the parent's total_self_time
        label = f"{frame.function} ({_short(frame.file_path or '?')}:{frame.line_no})"
        here = (*path, label)
        self_time = frame.total_self_time
        if self_time > 0:
            # microseconds as integer "samples"
            stacks[here] = stacks.get(here, 0) + round(self_time * 1e6)
        for child in frame.children:
            walk(child, here)

    walk(root, ())
    return summarise_collapsed(stacks, f"{title} (pyinstrument, time-weighted)")


class SqlProfile:
    """Time every SQL statement an engine runs, grouped by statement text."""

    def __init__(self, engine: Any) -> None:
        """Listen on ``engine`` (a SQLAlchemy Engine) until :meth:`close`."""
        from sqlalchemy import event

        self._engine = engine
        self._event = event
        self.totals: dict[str, list[float]] = {}
        self._started: list[float] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._started.append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        elapsed = time.perf_counter() - self._started.pop()
        key = " ".join(statement.split())
        entry = self.totals.setdefault(key, [0.0, 0.0])
        entry[0] += 1
        entry[1] += elapsed

    def close(self) -> None:
        """Stop listening."""
        self._event.remove(self._engine, "before_cursor_execute", self._before)
        self._event.remove(self._engine, "after_cursor_execute", self._after)

    def table(self, title: str, *, top: int = 8, width: int = 160) -> str:
        """The statements that took longest, as Markdown."""
        total = sum(t for _, t in self.totals.values())
        lines = [
            f"**{title}** (SQL total {total * 1000:.0f} ms)",
            "",
            "| ms | calls | statement |",
            "|---:|---:|---|",
        ]
        ranked = sorted(self.totals.items(), key=lambda kv: -kv[1][1])
        for statement, (calls, seconds) in ranked[:top]:
            text = statement if len(statement) <= width else statement[: width - 3] + "..."
            lines.append(f"| {seconds * 1000:.1f} | {calls:.0f} | `{text}` |")
        return "\n".join(lines) + "\n"


def http_get(client: httpx.Client, url: str, **headers: str) -> httpx.Response:
    """GET with headers; raise on a transport error (benchmark set-up, not measured)."""
    return client.get(url, headers=headers)


def run_alone(run: Callable[[BenchContext], Section], doc: str | None) -> None:
    """``python -m bench.<module> [--quick]``: one section, its figures printed as JSON.

    ``python -m bench --only <name>`` does the same and writes the report.
    """
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cleanfeed-bench-") as tmp:
        section = run(BenchContext(quick=args.quick, work=Path(tmp)))
    print(json.dumps({f.key: f.value for f in section.figures}, indent=2))
    print(section.details)
    for profile in section.profiles:
        print(profile)
