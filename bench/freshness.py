"""Freshness: publish call to "enforced" at a real resolver, and long-poll memory (issue 19).

Three measurements against one ``cleanfeed serve`` (one worker, embedded
signer, no schedule: versions are cut only by ``POST …/publish``, rate
limits out of reach so the load generator measures latency, not 429s):

1. **Long-poll memory**: 1,000 simulated ISPs (each its own token and
   connection) hold ``GET …/checkpoint?wait=55`` on the one worker; the
   server's RSS before they connect, while all 1,000 are held (the
   server's own ``cleanfeed_checkpoint_waiters`` says so) and after one
   publish wakes them all (with the time until the last one answered).
2. **Row 1** (issue 19): a real ISP (``cleanfeed isp run``, long-poll on,
   plaintext tier) syncs into a state that ``cleanfeed isp dns-serve``
   serves; a real Unbound is its secondary (``rpz:`` with ``primary:`` and
   ``allow-notify:``). Each sample adds and approves a new host entry,
   then times from the publish call to the moment Unbound answers NXDOMAIN
   for that host (long-poll wake, sync, NOTIFY, IXFR). Target p50 <= 2 s,
   p99 <= 5 s.
3. **Row 2**: the same while 499 more simulated ISPs long-poll the same
   server and, on each wake, fetch the new statements as a sync would.
   Target p50 <= 3 s, p99 <= 10 s, server RSS growth <= 200 MB.

Simulated ISPs are asyncio tasks sharing one process; each holds its own
connection. Percentiles over few samples are the highest-but-k samples
(nearest rank), said so in the details.

Run alone: ``python -m bench.freshness [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import dns.exception
import dns.message
import dns.query
import dns.rcode
import httpx

from bench.common import (
    BenchContext,
    Figure,
    Section,
    ServerProcess,
    Target,
    bench_env,
    cleanfeed_server,
    free_port,
    load_average,
    percentile,
    run_alone,
)
from clients.isp.dnsserve.secondaries import SecondarySpec, unbound_secondary

__all__ = ["run"]

LIST: Final = "main"
ZONE: Final = "rpz.cleanfeed.invalid"
#: What every name under example. answers when no policy rewrites it (RFC 5737).
OTHER_V4: Final = "192.0.2.9"
P50_ROW1 = Target("<=", 2.0, "<= 2 s")
P99_ROW1 = Target("<=", 5.0, "<= 5 s")
P50_ROW2 = Target("<=", 3.0, "<= 3 s")
P99_ROW2 = Target("<=", 10.0, "<= 10 s")
RSS_ROW2 = Target("<=", 200.0, "<= 200 MB")
#: Pause between resolver probes while waiting for the policy (seconds).
PROBE_PAUSE: Final = 0.02
#: Give up on one sample after this long (a missed sample is reported).
SAMPLE_TIMEOUT: Final = 60.0
START_TIMEOUT: Final = 30.0
WAIT: Final = 55


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "cleanfeed", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=bench_env(),
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"cleanfeed {' '.join(args[:2])}: {proc.stderr.strip()[-2000:]}")
    return proc


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _waiters(base: str) -> int:
    text = httpx.get(f"{base}/metrics", timeout=10.0).text
    for line in text.splitlines():
        if line.startswith("cleanfeed_checkpoint_waiters "):
            return int(float(line.split()[1]))
    raise RuntimeError("no cleanfeed_checkpoint_waiters metric")


def _until(what: str, check: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Hotline:
    """``cleanfeed serve`` with analysts and a way to publish one host entry."""

    server: ServerProcess
    root_vkey: str
    admin: str
    alice: str
    bob: str
    counter: int = 0

    @property
    def base(self) -> str:
        return self.server.base

    def token(self, c: httpx.Client, name: str, role: str, **extra: Any) -> str:
        r = c.post(
            "/v1/tokens",
            json={"name": name, "role": role, **extra},
            headers={"Authorization": f"Bearer {self.admin}"},
        )
        if r.status_code != 201:
            raise RuntimeError(f"token {name}: {r.status_code} {r.text}")
        value: str = r.json()["token"]
        return value

    def stage_host(self, c: httpx.Client) -> str:
        """Add and approve a new host entry (not yet published); return the host."""
        self.counter += 1
        host = f"h{self.counter}-{time.monotonic_ns()}.example"
        added = c.post(
            f"/v1/lists/{LIST}/entries",
            json={"url": f"http://{host}/", "scope": "host", "reason": "freshness bench"},
            headers={"Authorization": f"Bearer {self.alice}"},
        )
        if added.status_code != 201:
            raise RuntimeError(f"add: {added.status_code} {added.text}")
        approved = c.post(
            f"/v1/lists/{LIST}/entries/{added.json()['id']}/approve",
            headers={"Authorization": f"Bearer {self.bob}"},
        )
        if approved.status_code != 200:
            raise RuntimeError(f"approve: {approved.status_code} {approved.text}")
        return host

    def publish(self, c: httpx.Client) -> int:
        r = c.post(f"/v1/lists/{LIST}/publish", headers={"Authorization": f"Bearer {self.alice}"})
        if r.status_code != 200:
            raise RuntimeError(f"publish: {r.status_code} {r.text}")
        version: int = r.json()["version"]
        return version


def start_hotline(work: Path) -> Hotline:
    data_dir = work / "data"
    init = json.loads(_cli("init", "--data-dir", str(data_dir), "--list", LIST, "--json").stdout)
    server = cleanfeed_server(
        data_dir, work / "server.log", unlimited=True, extra_env={"CLEANFEED_SCHEDULE": "false"}
    )
    hotline = Hotline(server, init["root_vkey"], init["admin_token"], "", "")
    with httpx.Client(base_url=server.base, timeout=30.0) as c:
        hotline.alice = hotline.token(c, "alice", "analyst")
        hotline.bob = hotline.token(c, "bob", "analyst")
    return hotline


# --- simulated ISPs -------------------------------------------------------------------


@dataclass
class Fleet:
    """Simulated ISPs: each long-polls with its own token and connection."""

    base: str
    tokens: list[str]
    #: On a wake, fetch the new statements as a sync would (else only re-poll).
    sync: bool = True
    wakes: list[float] = field(default_factory=list)  # answer time of each 200
    errors: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def one(self, client: httpx.AsyncClient, token: str) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        path = f"/v1/lists/{LIST}/checkpoint"
        first = await client.get(path, headers=auth)
        etag = first.headers["etag"]
        held = _size(first.text)
        while not self.stop.is_set():
            try:
                r = await client.get(
                    path, params={"wait": WAIT}, headers={**auth, "If-None-Match": etag}
                )
            except httpx.HTTPError as e:
                self.errors[type(e).__name__] += 1
                await asyncio.sleep(1.0)
                continue
            if r.status_code == 200:
                self.wakes.append(time.monotonic())
                etag = r.headers["etag"]
                size = _size(r.text)
                if self.sync:
                    # What a sync fetches next: the new statements.
                    try:
                        s = await client.get(
                            f"/v1/lists/{LIST}/statements", params={"since": held}, headers=auth
                        )
                        if s.status_code != 200:
                            self.errors[f"statements {s.status_code}"] += 1
                    except httpx.HTTPError as e:
                        self.errors[type(e).__name__] += 1
                held = size
            elif r.status_code != 304:
                self.errors[f"checkpoint {r.status_code}"] += 1
                await asyncio.sleep(1.0)

    async def run(self) -> None:
        limits = httpx.Limits(
            max_connections=len(self.tokens) + 10, max_keepalive_connections=len(self.tokens) + 10
        )
        # Connect and pool: 1,000 connections opened at once on a busy machine.
        timeout = httpx.Timeout(WAIT + 30.0, connect=120.0, pool=120.0)
        async with httpx.AsyncClient(base_url=self.base, limits=limits, timeout=timeout) as c:
            tasks = [asyncio.create_task(self.one(c, t)) for t in self.tokens]
            await self.stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _size(note: str) -> int:
    return int(note.split("\n", 2)[1])


class FleetThread:
    """A :class:`Fleet` on its own event loop in a thread."""

    def __init__(self, base: str, tokens: list[str], *, sync: bool = True) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.fleet: Fleet | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(base, tokens, sync), daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self, base: str, tokens: list[str], sync: bool) -> None:
        asyncio.set_event_loop(self.loop)

        async def go() -> None:
            self.fleet = Fleet(base, tokens, sync=sync)
            self._ready.set()
            await self.fleet.run()

        self.loop.run_until_complete(go())

    def stop(self) -> None:
        assert self.fleet is not None
        self.loop.call_soon_threadsafe(self.fleet.stop.set)
        self._thread.join(timeout=120)


def isp_tokens(hotline: Hotline, n: int, prefix: str) -> list[str]:
    with httpx.Client(base_url=hotline.base, timeout=30.0) as c:
        return [hotline.token(c, f"{prefix}-{i}", "isp", lists=[LIST]) for i in range(n)]


# --- the real ISP and its resolver ----------------------------------------------------


def _dns_answer(port: int, name: str) -> int:
    q = dns.message.make_query(name, "A")
    return int(dns.query.udp(q, "127.0.0.1", port=port, timeout=1).rcode())


@dataclass
class RealIsp:
    procs: dict[str, subprocess.Popen[bytes]]
    unbound_port: int
    state: Path

    def blocked(self, host: str) -> bool:
        try:
            return _dns_answer(self.unbound_port, host) == dns.rcode.NXDOMAIN
        except dns.exception.Timeout:
            return False

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            argv, stdout=sink, stderr=subprocess.STDOUT, env=bench_env(), start_new_session=True
        )


def start_real_isp(hotline: Hotline, work: Path) -> RealIsp:
    unbound = shutil.which("unbound", path="/usr/sbin:/usr/bin:/sbin")
    if unbound is None:
        raise RuntimeError("unbound is not installed (Debian: apt-get install unbound)")
    with httpx.Client(base_url=hotline.base, timeout=30.0) as c:
        token = hotline.token(c, "isp-real", "isp", lists=[LIST], plaintext=True)
    isp = work / "isp"
    isp.mkdir()
    token_file = isp / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    state = isp / "state"
    config = isp / "isp.toml"
    config.write_text(
        f'server = "{hotline.base}"\nlist = "{LIST}"\ntoken_file = "{token_file}"\n'
        f'root_keys = ["{hotline.root_vkey}"]\nstate_dir = "{state}"\n'
        "plaintext = true\ninterval = 600\nfirst_poll_jitter = 0\nlong_poll = 55\n"
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    real = RealIsp(procs, free_port(), state)
    try:
        procs["run"] = _spawn(
            [sys.executable, "-m", "cleanfeed", "isp", "run", "-v", "--config", str(config)],
            isp / "run.log",
        )
        _until("the first sync", lambda: (state / "state.db").exists(), 60)
        _until("the first sync to commit", lambda: _held(state) is not None, 60)
        serve_port = free_port()
        procs["dns-serve"] = _spawn(
            [
                *(sys.executable, "-m", "cleanfeed", "isp", "dns-serve"),
                *("--state-dir", str(state), "--listen", f"127.0.0.1:{serve_port}"),
                *("--allow-transfer", "127.0.0.1/32", "--zone", ZONE),
                *("--notify-unsigned", f"127.0.0.1:{real.unbound_port}"),
            ],
            isp / "dns-serve.log",
        )
        udir = isp / "unbound"
        udir.mkdir()
        example = udir / "example.zone"
        example.write_text(
            "$ORIGIN example.\n$TTL 300\n"
            "@ IN SOA localhost. hostmaster.localhost. 1 3600 600 2419200 300\n"
            f"@ IN NS localhost.\n* A {OTHER_V4}\n"
        )
        spec = SecondarySpec(ZONE, "127.0.0.1", serve_port, "unused", str(udir / "cleanfeed.rpz"))
        uconf = udir / "unbound.conf"
        uconf.write_text(
            "server:\n"
            '    chroot: ""\n    username: ""\n'
            f'    directory: "{udir}"\n'
            '    pidfile: ""\n    use-syslog: no\n    logfile: ""\n'
            f"    interface: 127.0.0.1\n    port: {real.unbound_port}\n"
            "    do-ip6: no\n    do-daemonize: no\n    do-not-query-localhost: no\n"
            '    module-config: "respip iterator"\n'
            'auth-zone:\n    name: "example."\n'
            f'    zonefile: "{example}"\n    for-downstream: no\n    for-upstream: yes\n'
            + unbound_secondary(spec)
        )
        _until(
            "dns-serve to listen",
            lambda: _udp_answers(serve_port) or procs["dns-serve"].poll() is not None,
        )
        procs["unbound"] = _spawn([unbound, "-d", "-c", str(uconf)], udir / "unbound.log")
        _until(
            "unbound to answer",
            lambda: _udp_answers(real.unbound_port) or procs["unbound"].poll() is not None,
        )
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode}")
    except BaseException:
        real.stop()
        raise
    return real


def _udp_answers(port: int) -> bool:
    try:
        _dns_answer(port, "probe.example")
        return True
    except (dns.exception.Timeout, OSError):
        return False


def _held(state: Path) -> int | None:
    proc = _cli("isp", "status", "--state-dir", str(state), "--json", check=False)
    if proc.returncode != 0:
        return None
    try:
        version = json.loads(proc.stdout).get("version")
    except ValueError:
        return None
    return version if isinstance(version, int) else None


def enforce_samples(
    hotline: Hotline, real: RealIsp, n: int, log: Callable[[str], None]
) -> list[float]:
    """Publish-call-to-NXDOMAIN seconds, ``n`` times."""
    out: list[float] = []
    with httpx.Client(base_url=hotline.base, timeout=60.0) as c:
        for i in range(n):
            host = hotline.stage_host(c)
            time.sleep(1.0)  # let the real ISP settle back into its long-poll
            started = time.monotonic()
            hotline.publish(c)
            while not real.blocked(host):
                if time.monotonic() - started > SAMPLE_TIMEOUT:
                    raise RuntimeError(f"sample {i}: {host} not blocked after {SAMPLE_TIMEOUT} s")
                time.sleep(PROBE_PAUSE)
            out.append(time.monotonic() - started)
            log(f"freshness: sample {i + 1}/{n}: {out[-1]:.3f} s")
    return out


def _answered_after(log: Path, since: float) -> list[float]:
    """Seconds after ``since`` at which the server finished each checkpoint 200 (sorted)."""
    from datetime import datetime

    out: list[float] = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (
            record.get("event") == "isp_fetch"
            and record.get("resource") == "checkpoint"
            and record.get("status") == 200
        ):
            at = datetime.fromisoformat(record["time"]).timestamp()
            if at >= since:
                out.append(at - since)
    return sorted(out)


def _p(values: list[float], q: float) -> float:
    return percentile(sorted(values), q)


# --- the section ----------------------------------------------------------------------


def run(ctx: BenchContext) -> Section:
    """Measure long-poll memory and publish-to-enforced latency (rows 1 and 2)."""
    waiters = 200 if ctx.quick else 1000
    samples = 5 if ctx.quick else 20
    fleet_size = 50 if ctx.quick else 499
    work = ctx.work / "freshness"
    work.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    details: list[str] = []
    figures: list[Figure] = []

    # 1. Memory of held long-polls.
    hotline = start_hotline(work / "memory")
    try:
        pid = hotline.server.pid
        tokens = isp_tokens(hotline, waiters, "isp-mem")
        rss_idle = _rss_mb(pid)
        fleet = FleetThread(hotline.base, tokens, sync=False)
        try:
            _until(f"{waiters} held long-polls", lambda: _waiters(hotline.base) >= waiters, 300)
            rss_held = _rss_mb(pid)
            with httpx.Client(base_url=hotline.base, timeout=60.0) as c:
                hotline.stage_host(c)
                started = time.monotonic()
                started_wall = time.time()
                hotline.publish(c)
            assert fleet.fleet is not None
            _until("every waiter to wake", lambda: len(fleet.fleet.wakes) >= waiters, 300)  # type: ignore[union-attr]
            last_wake = max(fleet.fleet.wakes) - started
            _until(
                f"{waiters} held long-polls again",
                lambda: _waiters(hotline.base) >= waiters,
                300,
            )
            rss_after = _rss_mb(pid)
            errors = dict(fleet.fleet.errors) or "none"
            log_path = hotline.server.log_path
            # The server writes its request log in batches: wait for every line.
            _until(
                "the server to log every answer",
                lambda: len(_answered_after(log_path, started_wall)) >= waiters,
                120,
            )
            answered = _answered_after(log_path, started_wall)
        finally:
            fleet.stop()
    finally:
        hotline.server.stop()
    per_waiter_kb = (rss_held - rss_idle) * 1024 / waiters
    server_last = answered[min(waiters, len(answered)) - 1] if answered else float("nan")
    server_median = answered[len(answered) // 2] if answered else float("nan")
    ctx.log(
        f"freshness: {waiters} waiters: RSS {rss_idle:.1f} -> {rss_held:.1f} MB "
        f"({per_waiter_kb:.1f} KiB each), after the wake {rss_after:.1f} MB"
    )
    figures += [
        Figure(
            "freshness.waiters_rss_growth",
            f"server RSS growth holding {waiters:,} long-polls (one worker)",
            rss_held - rss_idle,
            "MB",
            [rss_held - rss_idle],
            quick=ctx.quick,
        ),
        Figure(
            "freshness.waiters_server_answered_all",
            f"publish call to the server's answer to the last of {waiters:,} held long-polls",
            server_last,
            "s",
            [server_last],
            quick=ctx.quick,
        ),
        Figure(
            "freshness.waiters_wake_all",
            f"publish call to the last of {waiters:,} held long-polls answered",
            last_wake,
            "s",
            [last_wake],
            quick=ctx.quick,
        ),
    ]
    details.append(
        f"**Held long-polls.** {waiters:,} simulated ISPs (own token, own connection) hold "
        f"`GET …/checkpoint?wait={WAIT}` on one `cleanfeed serve` worker: server RSS "
        f"{rss_idle:.1f} MB idle (tokens created, before they connect), {rss_held:.1f} MB "
        f"with all {waiters:,} held ({per_waiter_kb:.1f} KiB per held request, connection "
        f"included), {rss_after:.1f} MB once one publish had woken all of them and they "
        f"were held again (these re-poll only; row 2's fleet also fetches statements). "
        f"The server had answered half of them {server_median:.2f} s and all "
        f"{waiters:,} {server_last:.2f} s after the publish call (its request log); the "
        f"client process, receiving all of them on the same 2 cores, had the last "
        f"answer after {last_wake:.2f} s. Client errors (each retried after 1 s): "
        f"{errors}."
    )

    # 2 and 3. Publish to "enforced" at a real Unbound, alone and with a fleet.
    hotline = start_hotline(work / "enforce")
    real: RealIsp | None = None
    try:
        real = start_real_isp(hotline, work / "enforce")
        alone = enforce_samples(hotline, real, samples, ctx.log)
        tokens = isp_tokens(hotline, fleet_size, "isp-sim")
        rss_before = _rss_mb(hotline.server.pid)
        fleet = FleetThread(hotline.base, tokens)
        try:
            _until(
                f"{fleet_size} simulated long-polls",
                lambda: _waiters(hotline.base) >= fleet_size,
                300,
            )
            crowded = enforce_samples(hotline, real, samples, ctx.log)
            rss_peak = _rss_mb(hotline.server.pid)
            sim_errors = (dict(fleet.fleet.errors) or "none") if fleet.fleet else "?"
            sim_wakes = len(fleet.fleet.wakes) if fleet.fleet else 0
        finally:
            fleet.stop()
    finally:
        if real is not None:
            real.stop()
        hotline.server.stop()
    growth = rss_peak - rss_before
    figures += [
        Figure("freshness.row1_p50", "row 1: publish to Unbound enforcing, 1 ISP, p50",
               _p(alone, 50), "s", alone, P50_ROW1, quick=ctx.quick),
        Figure("freshness.row1_p99", "row 1: same, p99", _p(alone, 99), "s", alone,
               P99_ROW1, quick=ctx.quick),
        Figure("freshness.row2_p50",
               f"row 2: same with {fleet_size} more simulated ISPs long-polling, p50",
               _p(crowded, 50), "s", crowded, P50_ROW2, quick=ctx.quick),
        Figure("freshness.row2_p99", "row 2: same, p99", _p(crowded, 99), "s", crowded,
               P99_ROW2, quick=ctx.quick),
        Figure("freshness.row2_rss", f"row 2: server RSS growth with {fleet_size + 1} ISPs",
               growth, "MB", [growth], RSS_ROW2, quick=ctx.quick),
    ]  # fmt: skip
    details.append(
        f"**Publish to enforced.** `cleanfeed serve` (one worker, embedded signer); one real "
        f"ISP: `cleanfeed isp run --long-poll 55` (plaintext tier, interval 600 s, so only "
        f"the long-poll brings a version in quickly), `cleanfeed isp dns-serve` on its state, "
        f"and Unbound as its RPZ secondary (`allow-notify`, SOA refresh an hour). Each "
        f"sample adds and approves a new host entry, waits 1 s, then times from the "
        f"`POST …/publish` call until Unbound answers NXDOMAIN for that host (probed every "
        f"{PROBE_PAUSE * 1000:.0f} ms). {samples} samples per row; with so few, p99 is the "
        f"largest sample.\n\n"
        f"- 1 ISP: {', '.join(f'{v:.2f}' for v in alone)} s\n"
        f"- with {fleet_size} simulated ISPs long-polling (each fetches the new statements "
        f"when woken; {sim_wakes:,} wakes, {sim_errors} errors): "
        f"{', '.join(f'{v:.2f}' for v in crowded)} s; server RSS {rss_before:.1f} MB before "
        f"the fleet connected, {rss_peak:.1f} MB after the samples\n\n"
        f"Load average before: {load_before}."
    )
    return Section("freshness", "Freshness: long-poll and publish to enforced", figures,
                   "\n\n".join(details) + "\n")  # fmt: skip


if __name__ == "__main__":
    run_alone(run, __doc__)
