"""A Squid external ACL helper that answers with the exact ``check`` semantics.

Squid's ``url_regex`` sees the raw request URL, so regexes can only
approximate the canonical lookups (see :mod:`clients.isp.exports`). This
helper applies them exactly: each URL is canonicalised and its Safe Browsing
lookup expressions are hashed and looked up in the verified set, by the same
:class:`clients.isp.lookup.Matcher` as ``cleanfeed isp check``.

Configuration (squid.conf; docs/isp.md has the lines a test runs)::

    external_acl_type cleanfeed ttl=300 negative_ttl=60 children-max=4 children-startup=1 \\
        concurrency=100 %URI /opt/cleanfeed/bin/cleanfeed isp squid-helper \\
        --hashes-file /var/lib/cleanfeed/exports/cleanfeed.hashes
    acl cleanfeed_listed external cleanfeed
    deny_info 451:ERR_CLEANFEED cleanfeed_listed
    http_access deny cleanfeed_listed

Name the installed ``cleanfeed`` script, never ``python -m
clients.isp.squid_helper``: Squid starts a helper with ``argv[0]`` set to
``(python)``, from which the interpreter cannot find its virtual
environment (``No module named 'clients'``). A script's ``#!`` line gives
the interpreter its real path. ``children-startup=1`` makes Squid start a
helper at start and reconfigure, and a helper that exits before answering
(it loads its list before reading a request) is then a FATAL error
("helpers are crashing too rapidly"), not a silent deny of every request.

The hashes file is a ``hashes`` export; the helper notices when the file is
replaced (atomically, by ``cleanfeed isp export``) and reloads it, at most
once per ``--reload-interval`` seconds, so no Squid reconfigure is needed
after a sync. A file that fails to load leaves the previous set in force.

Protocol (squid.conf.documented, ``external_acl_type``): Squid writes one
request per line, ``[channel-ID] FORMAT-values``, the values URL-escaped so
none holds whitespace (with ``%URI`` only, Squid may append ``%DATA``, which
expands to ``-``: extra values are ignored). With ``concurrency=N`` each line
starts with a channel ID between 0 and N-1, which the answer must repeat.
The helper answers each line with one line, flushed at once:

* ``OK message=CF1-...``: the URL is listed (the ACL matches: deny it).
  The message is the matched entry's ``block_ref``
  (:func:`blocklist.blockref.block_ref` of the first listed expression's
  hash), which Squid's error page shows as ``%o`` (``deny_info
  451:ERR_CLEANFEED``, :mod:`clients.isp.squid_template`). Squid 5
  URL-decodes an unquoted value (``Helper::Reply::parseResponseKeys``); a
  block reference holds only ``A-Z``, ``2-7`` and ``-``, which need no
  escaping, and is written with :func:`_token` so that stays true;
* ``ERR``: it is not listed. A URL that cannot be canonicalised (no host,
  another scheme...) has no lookup expressions and so cannot be listed: it
  gets ``ERR message="..."``, never a match;
* ``BH message="..."``: the helper could not produce a result (an empty or
  oversized request line, an internal error). Squid treats the ACL as
  unresolved for that request.

Channel IDs are detected per line unless forced with ``--channels``: a first
value made only of digits is a channel ID (a URL from ``%URI`` always has a
scheme, or for CONNECT is ``host:port``, never bare digits). For CONNECT
requests ``%URI`` is ``host:port``; canonicalisation reads that as a host
and port, so whole-host entries match there, as they should: the path of an
HTTPS request is not visible without TLS interception.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Protocol
from urllib.parse import quote, unquote_to_bytes

from blocklist.blockref import block_ref
from blocklist.errors import FormatError, InvalidURL
from clients.isp.lookup import Matcher, read_hashes_file

__all__ = [
    "DEFAULT_RELOAD_INTERVAL",
    "MAX_MESSAGE",
    "MAX_REQUEST_LINE",
    "HashesFileSource",
    "MatcherSource",
    "StaticSource",
    "main",
    "respond",
    "serve",
]

#: Longest request line accepted, in bytes. Squid's MAX_URL is 8 KiB and its
#: URL-escaping at most triples a byte; the rest is room for the channel ID
#: and ``%DATA``. A longer line is answered BH (prevents unbounded memory).
MAX_REQUEST_LINE: Final = 32 * 1024

#: Longest ``message=`` value written back (Squid shows it in error pages).
MAX_MESSAGE: Final = 200

#: Default seconds between checks of the hashes file for a new version.
DEFAULT_RELOAD_INTERVAL: Final = 10.0

_PROG: Final = "cleanfeed squid-helper"


class MatcherSource(Protocol):
    """Where the helper gets the matcher for each request."""

    def current(self) -> Matcher:
        """Return the matcher to use now."""
        ...


@dataclass(frozen=True)
class StaticSource:
    """A fixed matcher (tests, or a caller that manages reloads itself)."""

    matcher: Matcher

    def current(self) -> Matcher:
        """Return the fixed matcher."""
        return self.matcher


class HashesFileSource:
    """A ``hashes`` export, reloaded when the file is replaced.

    The file is checked (one ``stat``) at most every ``interval`` seconds;
    it is re-read when its inode, size or modification time changed, which
    an atomic replace always changes (new inode). A new file that cannot be
    read or parsed is reported on stderr once and the previous set stays in
    force: a broken update must not empty the filter.
    """

    def __init__(
        self,
        path: Path,
        *,
        interval: float = DEFAULT_RELOAD_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """Load ``path`` now.

        Raises:
            OSError: the file cannot be read.
            FormatError: the file is not a ``hashes`` export.
        """
        self._path = Path(path)
        self._interval = interval
        self._clock = clock
        self._log = log or _log_stderr
        self._signature = self._stat()
        self._matcher = Matcher(read_hashes_file(self._path))
        self._checked = clock()
        # The signature of a replacement that failed to load (not retried
        # until the file changes again), and whether stat failed: each
        # problem is reported once, not at every check.
        self._failed: tuple[int, int, int] | None = None
        self._missing = False

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self._path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> Matcher:
        """Return the matcher, reloading the file first if it was replaced."""
        now = self._clock()
        if now - self._checked < self._interval:
            return self._matcher
        self._checked = now
        try:
            signature = self._stat()
        except OSError as e:
            if not self._missing:
                self._log(f"cannot stat {self._path}: {e}; keeping the loaded list")
                self._missing = True
            return self._matcher
        self._missing = False
        if signature == self._signature or signature == self._failed:
            return self._matcher
        try:
            matcher = Matcher(read_hashes_file(self._path))
        except (OSError, FormatError) as e:
            self._log(f"cannot load {self._path}: {e}; keeping the loaded list")
            self._failed = signature
            return self._matcher
        self._matcher = matcher
        self._signature = signature
        self._failed = None
        self._log(f"reloaded {self._path}: {len(matcher)} hashes")
        return matcher


def _log_stderr(message: str) -> None:
    # Squid copies a helper's stderr into cache.log.
    print(f"{_PROG}: {message}", file=sys.stderr, flush=True)


def _quote(value: str) -> bytes:
    """A keyword value in Squid's quoted form: ``"..."`` with ``\\`` escapes."""
    text = "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in value[:MAX_MESSAGE])
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'.encode("ascii")


def _token(value: str) -> bytes:
    """A keyword value in Squid's unquoted form: URL-escaped, no whitespace.

    Squid 5 URL-decodes an unquoted ``key=value`` of a helper reply
    (``Helper::Reply::parseResponseKeys``), so escaping every byte outside
    RFC 3986 "unreserved" gives back exactly ``value``.
    """
    return quote(value[:MAX_MESSAGE], safe="").encode("ascii")


def _is_channel(token: bytes, channels: bool | None) -> bool:
    if channels is None:
        # A %URI value is never bare digits; a channel ID always is.
        return token.isdigit()
    return channels


def _answer(channel: bytes | None, result: bytes) -> bytes:
    return result if channel is None else channel + b" " + result


def respond(
    source: MatcherSource,
    line: bytes,
    *,
    channels: bool | None = None,
    url_escaped: bool = True,
) -> bytes:
    """Answer one request line (without its newline).

    Args:
        source: gives the matcher to use.
        line: ``[channel-ID] URI [more values...]`` as Squid sent it.
        channels: True if every line starts with a channel ID
            (``concurrency`` > 0), False if none does, None to detect.
        url_escaped: whether Squid URL-escaped the values (the default;
            ``protocol=2.5`` helpers get them raw).

    Returns:
        The answer line without its newline: ``[channel-ID] OK
        message=BLOCK_REF``, ``ERR`` (possibly with ``message=``) or ``BH
        message=...``.
    """
    tokens = line.split()
    channel = tokens.pop(0) if tokens and _is_channel(tokens[0], channels) else None
    if not tokens:
        return _answer(channel, b"BH message=" + _quote("empty request: expected %URI"))
    raw = tokens[0]
    try:
        # Squid URL-escapes each value (once) so it holds no whitespace;
        # undo exactly that, then canonicalise as `check` does.
        url = unquote_to_bytes(raw) if url_escaped else raw
        result = source.current().match(url)
    except InvalidURL as e:
        return _answer(channel, b"ERR message=" + _quote(f"not a listable URL: {e}"))
    except Exception as e:  # the helper must answer every line
        return _answer(channel, b"BH message=" + _quote(f"internal error: {type(e).__name__}"))
    if not result.listed or result.hash is None:
        return _answer(channel, b"ERR")
    # The block reference names the matched entry without revealing it
    # (DESIGN.md part 2, "Block reference"); ERR_CLEANFEED shows it as %o.
    # No hit is counted here: counting happens in one place only (issue 18
    # item 5), and the helper keeps no record of what it answered.
    return _answer(channel, b"OK message=" + _token(block_ref(result.hash)))


def serve(
    source: MatcherSource,
    stdin: BinaryIO,
    stdout: BinaryIO,
    *,
    channels: bool | None = None,
    url_escaped: bool = True,
) -> int:
    """Answer request lines from ``stdin`` on ``stdout`` until end of input.

    Every answer is flushed at once: Squid waits for it before sending more
    (without concurrency) or before completing the request.

    Returns:
        The number of requests answered.

    Raises:
        OSError: reading or writing failed (other than a closed stdout,
            which ends the loop: Squid is gone).
    """
    answered = 0
    while True:
        line = stdin.readline(MAX_REQUEST_LINE + 1)
        if not line:
            return answered
        if len(line) > MAX_REQUEST_LINE and not line.endswith(b"\n"):
            # Oversized: drop the rest of the line, answer on its channel.
            while True:
                rest = stdin.readline(MAX_REQUEST_LINE)
                if not rest or rest.endswith(b"\n"):
                    break
            first = line.split(maxsplit=1)[:1]
            channel = first[0] if first and _is_channel(first[0], channels) else None
            answer = _answer(channel, b"BH message=" + _quote("request line too long"))
        else:
            answer = respond(
                source, line.rstrip(b"\r\n"), channels=channels, url_escaped=url_escaped
            )
        try:
            stdout.write(answer + b"\n")
            stdout.flush()
        except BrokenPipeError:
            return answered
        answered += 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Squid external_acl_type helper: answers OK for listed URLs (%URI).",
    )
    parser.add_argument(
        "--hashes-file",
        type=Path,
        help="a 'hashes' export (cleanfeed isp export --format hashes)",
    )
    parser.add_argument(
        "--reload-interval",
        type=float,
        default=DEFAULT_RELOAD_INTERVAL,
        help="seconds between checks for a replaced hashes file (default %(default)s)",
    )
    parser.add_argument(
        "--channels",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether lines carry a channel ID (external_acl_type concurrency > 0)",
    )
    parser.add_argument(
        "--no-unescape",
        action="store_true",
        help="values are not URL-escaped (external_acl_type protocol=2.5)",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    source: MatcherSource | None = None,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> int:
    """Run the helper.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
        source: the matcher source; when None, ``--hashes-file`` is required.
        stdin: request stream (default the process's binary stdin).
        stdout: answer stream (default the process's binary stdout).

    Returns:
        0 at end of input; 2 when the hashes file cannot be loaded or the
        arguments are wrong (Squid logs the message from stderr).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if source is None:
        if args.hashes_file is None:
            parser.error("--hashes-file is required")
        try:
            source = HashesFileSource(args.hashes_file, interval=args.reload_interval)
        except (OSError, FormatError) as e:
            _log_stderr(f"cannot load {args.hashes_file}: {e}")
            return 2
    channels = {"auto": None, "yes": True, "no": False}[args.channels]
    serve(
        source,
        stdin if stdin is not None else sys.stdin.buffer,
        stdout if stdout is not None else sys.stdout.buffer,
        channels=channels,
        url_escaped=not args.no_unescape,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
