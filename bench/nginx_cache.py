"""nginx cache: a public list's polls and statements, direct vs through the documented cache.

docs/operations.md ("A cache in front of a public list (nginx)") gives an
nginx configuration for a list created with ``--public``. This module reads
that configuration from the document itself (so the benchmark and
tests/e2e/test_nginx_cache.py run exactly what operators are told to run),
substitutes only what a loopback run must change (the upstream port, the
listen address without TLS, the cache directory, optionally the list name
and the checkpoint's validity) and wraps it in a minimal ``nginx.conf``
whose files all live in a work directory, so nginx runs as the user running
it, in the foreground.

The benchmark: a fresh data directory initialised as ``cleanfeed init --list
pub --public`` does, ``cleanfeed serve`` (one worker, embedded signer, rate
limit raised out of reach) and nginx (one worker process, the documented
configuration with its 10 s checkpoint validity) on loopback ports, version
1 cut by ``POST /v1/lists/pub/publish``. ``wrk -c50 -t2`` measures, in the
same run and with the same options, four scenarios: the up-to-date poll
(``checkpoint`` with ``If-None-Match``, answered 304, no token) and
``statements/1`` (no token), each directly against ``cleanfeed serve`` and
through nginx; several rounds in alternating order, medians. The nginx
access log then says how many requests reached ``cleanfeed serve``.

Without nginx (or wrk) the section records a note and no figures.
"""

from __future__ import annotations

import collections
import os
import pwd
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import (
    ROOT,
    BenchContext,
    Figure,
    Section,
    ServerProcess,
    WrkResult,
    bench_env,
    cleanfeed_server,
    fmt_runs,
    free_port,
    load_average,
    lua_headers_script,
    median,
    run_wrk,
    uvicorn_options_note,
)

#: The document whose nginx configuration is run.
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
#: Heading of the section holding it (its first ``nginx`` code block).
DOC_SECTION = "## A cache in front of a public list (nginx)"
#: The list name the documented locations are written for.
DOC_LIST = "pub"
#: The documented cache directory, upstream and listen lines, and validity.
DOC_CACHE_DIR = "/var/cache/nginx/cleanfeed"
DOC_UPSTREAM = "server 127.0.0.1:8080;"
DOC_LISTEN = "listen 443 ssl;"
DOC_VALIDITY_LINE = "proxy_cache_valid 200 10s;"

#: Header the documented configuration adds to cached locations.
CACHE_STATUS_HEADER = "X-Cache-Status"

#: Access-log line written by the wrapper (what the tests and this benchmark read).
ACCESS_LOG_FORMAT = "$request_method $request_uri $status $upstream_cache_status"

#: ``$upstream_cache_status`` values of requests nginx answers without the upstream.
ANSWERED_BY_NGINX = frozenset({"HIT", "UPDATING", "STALE"})

#: The validity of ``proxy_cache_valid`` as nginx accepts it (a bounded time).
_VALIDITY = re.compile(r"\A[1-9][0-9]{0,4}(ms|s|m)?\Z")


class DocumentedConfigError(RuntimeError):
    """The document's nginx block is missing or no longer has a line this run substitutes."""


def find_nginx() -> str | None:
    """The nginx binary (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def documented_config(doc: Path | None = None) -> str:
    """The first ``nginx`` code block of the section :data:`DOC_SECTION` of ``doc``.

    Args:
        doc: the document (default :data:`OPERATIONS_DOC`).

    Raises:
        DocumentedConfigError: no such section or block.
    """
    doc = doc or OPERATIONS_DOC
    text = doc.read_text(encoding="utf-8")
    start = text.find("\n" + DOC_SECTION + "\n")
    if start < 0:
        raise DocumentedConfigError(f"{doc} has no section {DOC_SECTION!r}")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    match = re.search(r"^```nginx\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    if match is None:
        raise DocumentedConfigError(f"{doc}, {DOC_SECTION!r}: no ```nginx block")
    return match.group(1)


def _replace(text: str, old: str, new: str, *, count: int | None = 1) -> str:
    found = text.count(old)
    if found == 0 or (count is not None and found != count):
        raise DocumentedConfigError(
            f"the documented nginx configuration has {found} occurrence(s) of {old!r}, "
            f"expected {count if count is not None else 'at least one'}: update {__name__}"
        )
    return text.replace(old, new)


def site_config(
    *,
    upstream_port: int,
    listen_port: int,
    cache_dir: Path,
    list_name: str = DOC_LIST,
    validity: str | None = None,
    doc: Path | None = None,
) -> str:
    """The documented configuration with the loopback substitutions, nothing else changed.

    Args:
        upstream_port: port of ``cleanfeed serve`` on 127.0.0.1.
        listen_port: port nginx listens on, 127.0.0.1, plain HTTP (no TLS
            on loopback; the documented ``listen 443 ssl`` is replaced).
        cache_dir: replaces the documented ``proxy_cache_path`` directory.
        list_name: replaces the documented list name ``pub`` in the locations.
        validity: replaces the checkpoint's documented 10 s validity (tests
            use a short one to see a new version without waiting 10 s).
        doc: the document to read (default :data:`OPERATIONS_DOC`).

    Raises:
        DocumentedConfigError: the document no longer has one of the lines
            substituted here (the substitutions are exact, so a changed
            document fails loudly instead of being tested half-way).
        ValueError: ``validity`` is not a plain nginx time.
    """
    text = documented_config(doc)
    text = _replace(text, f"proxy_cache_path {DOC_CACHE_DIR} ", f"proxy_cache_path {cache_dir} ")
    text = _replace(text, DOC_UPSTREAM, f"server 127.0.0.1:{upstream_port};")
    text = _replace(text, DOC_LISTEN, f"listen 127.0.0.1:{listen_port};")
    text = _replace(text, f"/v1/lists/{DOC_LIST}/", f"/v1/lists/{list_name}/", count=None)
    if validity is not None:
        if not _VALIDITY.match(validity):
            raise ValueError(f"not an nginx time: {validity!r}")
        text = _replace(text, DOC_VALIDITY_LINE, f"proxy_cache_valid 200 {validity};")
    return text


def nginx_conf(work: Path, site: str) -> str:
    """A whole ``nginx.conf`` around ``site``: every file under ``work``, in the foreground."""
    # As root, nginx would run its workers as "nobody", who cannot enter a
    # 0700 temporary directory; run them as the user running this code.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {work / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    indented = "".join(f"    {line}\n" if line else "\n" for line in site.splitlines())
    return (
        f"{user}"
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {work / 'nginx.pid'};\n"
        f"lock_file {work / 'nginx.lock'};\n"
        "error_log stderr notice;\n"
        "events {\n    worker_connections 1024;\n}\n"
        "http {\n"
        f"    log_format cache_status '{ACCESS_LOG_FORMAT}';\n"
        f"    access_log {work / 'access.log'} cache_status;\n"
        f"{temp}"
        f"{indented}"
        "}\n"
    )


@dataclass
class NginxCache:
    """nginx running the documented configuration in front of one upstream."""

    process: ServerProcess
    work: Path
    config: Path

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` of nginx."""
        return self.process.base

    @property
    def access_log(self) -> Path:
        """One :data:`ACCESS_LOG_FORMAT` line per request."""
        return self.work / "access.log"

    def stop(self) -> None:
        """Stop nginx (its master and workers: their own process group)."""
        self.process.stop()

    def __enter__(self) -> NginxCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_nginx(
    nginx: str,
    work: Path,
    *,
    upstream_port: int,
    list_name: str = DOC_LIST,
    validity: str | None = None,
) -> NginxCache:
    """Write the configuration under ``work`` and start nginx on a free loopback port.

    Ready when ``/healthz`` answers 200 through it (proxied to the upstream).

    Raises:
        DocumentedConfigError: see :func:`site_config`.
        RuntimeError: nginx refused the configuration or did not start.
    """
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = site_config(
        upstream_port=upstream_port,
        listen_port=port,
        cache_dir=work / "cache",
        list_name=list_name,
        validity=validity,
    )
    config = work / "nginx.conf"
    config.write_text(nginx_conf(work, site))
    argv = [nginx, "-p", f"{work}/", "-c", str(config)]
    process = ServerProcess(argv, port, work / "nginx.stderr", bench_env())
    return NginxCache(process, work, config)


@dataclass(frozen=True)
class AccessLine:
    """One request as nginx logged it."""

    method: str
    uri: str
    status: int
    cache_status: str  # "-" where the location has no cache


def read_access_log(path: Path) -> Iterator[AccessLine]:
    """The lines of an access log written with :data:`ACCESS_LOG_FORMAT`."""
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            method, uri, status, cache_status = line.split()
            yield AccessLine(method, uri, int(status), cache_status)


# --- the benchmark -----------------------------------------------------------------


#: Scenarios, in the order of the first round: (key, through nginx, document).
SCENARIOS = (
    ("poll_direct", False, "checkpoint"),
    ("poll_cached", True, "checkpoint"),
    ("statement_direct", False, "statements/1"),
    ("statement_cached", True, "statements/1"),
)


def _unavailable(reason: str) -> Section:
    return Section(
        "nginx",
        "nginx cache in front of a public list",
        [],
        f"Not measured: {reason}. No figures recorded.\n",
    )


def _prepare(root: Path) -> tuple[Path, str]:
    """A data directory with the public list ``pub`` (what ``cleanfeed init --public`` makes)."""
    from signer.datadir import init_data_dir

    init = init_data_dir(root / "data", list_name=DOC_LIST, public=True)
    return init.data_dir, init.admin_token


def _check(direct: str, cached: str, admin_token: str) -> str:
    """Publish version 1; check each scenario once by hand; return the checkpoint ETag.

    Raises:
        RuntimeError: a scenario does not answer as the benchmark assumes.
    """
    lst = f"/v1/lists/{DOC_LIST}"
    with httpx.Client(timeout=30) as c:
        r = c.post(f"{direct}{lst}/publish", headers={"Authorization": f"Bearer {admin_token}"})
        if r.status_code != 200 or r.json()["version"] != 1:
            raise RuntimeError(f"publishing version 1 answered {r.status_code}: {r.text}")
        etag = c.get(f"{direct}{lst}/checkpoint").raise_for_status().headers["etag"]
        for base in (direct, cached):
            for _ in range(2):  # the second one through nginx is a HIT
                r = c.get(f"{base}{lst}/checkpoint", headers={"If-None-Match": etag})
                if r.status_code != 304:
                    raise RuntimeError(f"{base}: poll answered {r.status_code}, not 304")
                s = c.get(f"{base}{lst}/statements/1").raise_for_status()
                if not s.text.startswith("cleanfeed-version/v1\n"):
                    raise RuntimeError(f"{base}: statements/1 is not a statement")
        for path in ("checkpoint", "statements/1"):
            headers = c.get(f"{cached}{lst}/{path}", headers={"If-None-Match": etag}).headers
            if headers.get(CACHE_STATUS_HEADER) != "HIT":
                raise RuntimeError(f"{path} through nginx is not a cache HIT: {headers}")
    return etag


def run(ctx: BenchContext) -> Section:
    """Measure the four scenarios (see module doc)."""
    nginx = find_nginx()
    if nginx is None:
        return _unavailable("nginx is not installed (Debian: `apt-get install nginx`)")
    if shutil.which("wrk") is None:
        return _unavailable("wrk is not installed")
    root = ctx.work / "nginx"
    root.mkdir(parents=True, exist_ok=True)
    duration = 3 if ctx.quick else 10
    rounds = 3 if ctx.quick else 5
    data_dir, admin_token = _prepare(root)
    runs: dict[str, list[WrkResult]] = {key: [] for key, _, _ in SCENARIOS}
    load_before = load_average()
    # No scheduled publish or re-signature: the polled checkpoint stays the same.
    server = cleanfeed_server(
        data_dir, root / "server.log", unlimited=True, extra_env={"CLEANFEED_SCHEDULE": "false"}
    )
    try:
        with start_nginx(nginx, root / "cache", upstream_port=server.port) as cache:
            etag = _check(server.base, cache.base, admin_token)
            poll = lua_headers_script(root / "poll.lua", {"If-None-Match": etag})
            plain = lua_headers_script(root / "plain.lua", {})
            urls = {
                key: (
                    f"{cache.base if cached else server.base}/v1/lists/{DOC_LIST}/{doc}",
                    poll if doc == "checkpoint" else plain,
                )
                for key, cached, doc in SCENARIOS
            }
            for key, (url, script) in urls.items():
                ctx.log(f"nginx: warm-up {key}")
                run_wrk(url, script, duration=2)
            before = sum(1 for _ in read_access_log(cache.access_log))
            order = [key for key, _, _ in SCENARIOS]
            for r in range(rounds):
                for key in order if r % 2 == 0 else order[::-1]:
                    url, script = urls[key]
                    result = run_wrk(url, script, duration=duration)
                    ctx.log(
                        f"nginx: round {r + 1}/{rounds} {key}: {result.requests_per_second:.0f}"
                    )
                    runs[key].append(result)
            # nginx writes a request's log line when it is done: after wrk, all are there.
            statuses = collections.Counter(
                (line.uri.removeprefix(f"/v1/lists/{DOC_LIST}/"), line.cache_status)
                for k, line in enumerate(read_access_log(cache.access_log))
                if k >= before
            )
            after = httpx.get(f"{server.base}/v1/lists/{DOC_LIST}/checkpoint", timeout=10)
            if after.headers.get("etag") != etag:
                raise RuntimeError("the checkpoint changed during the run: polls were not 304s")
    finally:
        server.stop()
    figures = _figures(runs, ctx.quick)
    details = _details(runs, statuses, duration, rounds, load_before, nginx)
    return Section("nginx", "nginx cache in front of a public list", figures, details)


def _figures(runs: dict[str, list[WrkResult]], quick: bool) -> list[Figure]:
    rps = {key: [x.requests_per_second for x in rs] for key, rs in runs.items()}
    what = {
        "poll_direct": "up-to-date poll (304, no token), `cleanfeed serve` directly",
        "poll_cached": "up-to-date poll (304, no token), through the nginx cache",
        "statement_direct": "`statements/1` (no token), `cleanfeed serve` directly",
        "statement_cached": "`statements/1` (no token), through the nginx cache",
    }
    figures = [
        Figure(f"nginx.{key}_rps", what[key], median(rps[key]), "req/s", rps[key], quick=quick)
        for key, _, _ in SCENARIOS
    ]
    for name, label in (("poll", "up-to-date poll"), ("statement", "`statements/1`")):
        ratios = [c / d for c, d in zip(rps[f"{name}_cached"], rps[f"{name}_direct"], strict=True)]
        figures.append(
            Figure(
                f"nginx.{name}_speedup",
                f"{label}: through nginx / directly, req/s ratio (same round)",
                median(ratios),
                "x",
                ratios,
                quick=quick,
            )
        )
    errors = {key: sum(x.non_2xx_3xx for x in rs) for key, rs in runs.items()}
    if any(errors.values()):
        for f in figures:
            f.note = f"non-2xx/3xx responses: {errors}"
    return figures


def _details(
    runs: dict[str, list[WrkResult]],
    statuses: collections.Counter[tuple[str, str]],
    duration: int,
    rounds: int,
    load_before: str,
    nginx: str,
) -> str:
    lines = [
        f"`cleanfeed serve`: {uvicorn_options_note()}; embedded signer, JSON request logs to "
        "a file, no scheduled publish or re-signature (the polled checkpoint stays the same), rate "
        "limit raised out of reach; public list `pub` at version 1 (the canary). "
        f'nginx (`{nginx}`): the configuration of docs/operations.md, "A cache in front of '
        'a public list (nginx)", as written (10 s checkpoint validity, upstream keepalive '
        "16) but plain HTTP on 127.0.0.1, one worker process, access log to a file. Load: "
        f"`wrk -c50 -t2 -d{duration}s --latency`, no token, on the same 2-core machine as both "
        f"servers, {rounds} rounds in alternating order after a 2 s warm-up of each; ratio = "
        f"median of the per-round ratios. Load average before: {load_before}.",
        "",
        "| scenario | req/s per round | latency avg / p99 (last round) | non-2xx/3xx |",
        "|---|---|---|---:|",
    ]
    label = {
        "poll_direct": "`GET /v1/lists/pub/checkpoint` + If-None-Match (304), directly",
        "poll_cached": "the same poll through nginx",
        "statement_direct": "`GET /v1/lists/pub/statements/1` (200), directly",
        "statement_cached": "`statements/1` through nginx",
    }
    for key, rs in runs.items():
        if not rs:
            continue
        last = rs[-1]
        lines.append(
            f"| {label[key]} | {fmt_runs([x.requests_per_second for x in rs])} | "
            f"{last.latency_avg} / {last.latency_p99} | {sum(x.non_2xx_3xx for x in rs)} |"
        )
    counted = ", ".join(f"{doc} {status}: {n:,}" for (doc, status), n in sorted(statuses.items()))
    upstream = sum(n for (_, status), n in statuses.items() if status not in ANSWERED_BY_NGINX)
    lines += [
        "",
        f"nginx's cache status of the measured requests (its access log): {counted}. "
        f"{upstream:,} of {sum(statuses.values()):,} reached `cleanfeed serve` (HIT, and "
        "UPDATING = the stale copy while one request revalidates, are answered by nginx "
        "alone): the checkpoint is revalidated once per 10 s validity, `statements/1` is "
        "never fetched again.",
    ]
    return "\n".join(lines) + "\n"
