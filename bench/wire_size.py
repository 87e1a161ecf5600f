"""Wire size: bytes per added entry in a gzip'ed statements response.

Issue 8 target: <= 45 bytes. ``cleanfeed serve`` serves versions of 1,000
and 10,000 additions (cut by the publisher's core, :mod:`bench.deploy`);
the statements response of each (``GET …/statements?since=N-1&limit=1``
with ``Accept-Encoding: gzip``, as the ISP client sends it) is read raw,
still compressed, and its body length divided by the number of additions.
Headers are not counted (they are the same for any version size).
"""

from __future__ import annotations

import gzip
import json

import httpx

from bench import deploy
from bench.common import BenchContext, Figure, Section, Target, cleanfeed_server, fmt, run_alone

TARGET = Target("<=", 45.0, "<= 45 bytes")


def _fetch_raw(base: str, token: str, since: int) -> tuple[bytes, str]:
    url = f"{base}/v1/lists/{deploy.LIST}/statements?since={since}&limit=1"
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    with httpx.Client(timeout=60) as c, c.stream("GET", url, headers=headers) as r:
        r.raise_for_status()
        raw = b"".join(r.iter_raw())
        return raw, r.headers.get("content-encoding", "identity")


def run(ctx: BenchContext) -> Section:
    """Measure the compressed size per addition (see module doc)."""
    root = ctx.work / "wire"
    root.mkdir(parents=True, exist_ok=True)
    dep = deploy.create(root / "data")
    sizes = (1_000, 10_000)
    versions = {}
    for n in sizes:
        deploy.generate_listed(dep, n)
        versions[n] = dep.version()
    token = dep.token("isp", "isp-wire")
    dep.close()
    rows = []
    figures = []
    with cleanfeed_server(dep.data_dir, root / "server.log", no_signer=True) as server:
        for n in sizes:
            raw, encoding = _fetch_raw(server.base, token, versions[n] - 1)
            if encoding != "gzip":
                raise RuntimeError(f"statements response not gzip'ed ({encoding})")
            body = gzip.decompress(raw)
            note = json.loads(body)["statements"][0]
            adds = note.count("\nadd ")
            if adds != n:
                raise RuntimeError(f"version {versions[n]} has {adds} additions, not {n}")
            per = len(raw) / n
            rows.append((n, len(raw), len(body), len(note.encode()), per))
            figures.append(
                Figure(
                    f"wire.per_add_{n}",
                    f"gzip'ed statements response per added entry ({n:,} additions)",
                    per,
                    "bytes",
                    [per],
                    TARGET if n == sizes[-1] else None,
                    quick=ctx.quick,
                )
            )
    # The target row is the large version; the small one shows the fixed overhead.
    figures.reverse()
    details = (
        "Server gzip level 6 (Starlette GZipMiddleware). An `add` line is 49 bytes of "
        "text (`add ` + 44 base64 characters + newline) carrying 32 random bytes, so no "
        "compressor gets below ~33 bytes per entry; JSON escaping adds the `\\n` pairs.\n\n"
        "| additions | gzip body (bytes) | JSON body (bytes) | note (bytes) "
        "| gzip bytes per addition |\n"
        "|---:|---:|---:|---:|---:|\n"
        + "".join(f"| {n:,} | {z:,} | {j:,} | {t:,} | {fmt(p)} |\n" for n, z, j, t, p in rows)
    )
    return Section("wire", "Wire size", figures, details)


if __name__ == "__main__":
    run_alone(run, __doc__)
