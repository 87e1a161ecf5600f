"""How every analyst command reaches the API: options, client, errors, exit codes.

The common options (each also an environment variable): ``--server URL``
(``CLEANFEED_SERVER``); the token from ``--token-file FILE``
(``CLEANFEED_TOKEN_FILE``) or the ``CLEANFEED_TOKEN`` variable, never as a
command-line argument, where it would land in shell history and the process
table; ``--list NAME`` (``CLEANFEED_LIST``, default ``main``); ``--json``;
``--timeout``. :func:`open_api` turns them into an :class:`Api`, whose
:meth:`Api.call` waits out 429 answers and maps every other failure to a
:class:`CliFailure` with its exit code (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import click
import httpx

from cleanfeed import __version__
from clients.common.credentials import read_token_file
from clients.errors import ConfigError

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXIT_CODES",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "HELP_EPILOG",
    "LIST_ENV",
    "MAX_RATE_RETRIES",
    "MAX_RETRY_AFTER",
    "SERVER_ENV",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "Api",
    "CliFailure",
    "common_options",
    "emit",
    "open_api",
]

#: Environment variables of the common options.
SERVER_ENV: Final = "CLEANFEED_SERVER"
TOKEN_ENV: Final = "CLEANFEED_TOKEN"  # noqa: S105 - a variable name, not a secret
TOKEN_FILE_ENV: Final = "CLEANFEED_TOKEN_FILE"  # noqa: S105 - a variable name
LIST_ENV: Final = "CLEANFEED_LIST"

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_PARTIAL: Final = 3
EXIT_UNREACHABLE: Final = 4

#: Documented exit codes (``--help`` and docs/quickstart.md print this table).
EXIT_CODES: Final = {
    EXIT_OK: "done",
    EXIT_REFUSED: "the server refused the request (problem code printed), or add not confirmed",
    EXIT_USAGE: "usage or configuration error (token, server URL, input file)",
    EXIT_PARTIAL: "a bulk command finished, but some rows were refused (see the results)",
    EXIT_UNREACHABLE: "the server could not be reached or did not answer as the API",
}

#: Seconds per request: a bulk call of 10,000 rows takes a few seconds.
DEFAULT_TIMEOUT: Final = 120.0

#: 429 answers waited out per request before giving up (each waits the
#: server's Retry-After, at most MAX_RETRY_AFTER seconds).
MAX_RATE_RETRIES: Final = 5
MAX_RETRY_AFTER: Final = 60.0

#: The ``--help`` epilog of every command: the exit codes.
HELP_EPILOG: Final = "Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()) + "."


class CliFailure(click.ClickException):
    """An error printed once to stderr with its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        """Create a failure exiting with ``exit_code``."""
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance


@dataclass
class Api:
    """An authenticated client of one server and list."""

    server: str
    list_name: str
    client: httpx.Client
    as_json: bool

    def path(self, suffix: str) -> str:
        """``/v1/lists/<list><suffix>``."""
        return f"/v1/lists/{quote(self.list_name, safe='')}{suffix}"

    def call(self, method: str, path: str, *, expect: Sequence[int] = (200,), **kwargs: Any) -> Any:
        """Send one request and return its JSON body.

        A 429 is waited out (its ``Retry-After``, bounded) and retried.

        Raises:
            CliFailure: a problem answer (exit 1), an unreachable server or
                an answer that is not the API's (exit 4).
        """
        for attempt in range(MAX_RATE_RETRIES + 1):
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.HTTPError as e:
                raise CliFailure(
                    f"cannot reach {self.server}: {type(e).__name__}: {e}", EXIT_UNREACHABLE
                ) from e
            if response.status_code == 429 and attempt < MAX_RATE_RETRIES:
                wait = _retry_after(response)
                click.echo(f"rate limited: retrying in {wait:g} s", err=True)
                time.sleep(wait)
                continue
            break
        if response.status_code in expect:
            try:
                return response.json()
            except ValueError as e:
                raise CliFailure(
                    f"{self.server} answered {response.status_code} without JSON", EXIT_UNREACHABLE
                ) from e
        raise _problem_failure(self.server, response)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(MAX_RETRY_AFTER, max(1.0, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


def _problem_failure(server: str, response: httpx.Response) -> CliFailure:
    """Describe an error answer: ``error: <code>: <detail>`` for a problem document."""
    media = response.headers.get("content-type", "").split(";", 1)[0].strip()
    if media == "application/problem+json":
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if isinstance(problem, dict) and isinstance(problem.get("code"), str):
            detail = str(problem.get("detail", ""))
            return CliFailure(f"{problem['code']} ({response.status_code}): {detail}", EXIT_REFUSED)
    return CliFailure(
        f"{server} answered {response.status_code} {response.reason_phrase}; is this a "
        "cleanfeed server?",
        EXIT_UNREACHABLE,
    )


def _check_server(url: str | None) -> str:
    if not url:
        raise CliFailure(
            f"no server: pass --server URL or set {SERVER_ENV} (e.g. https://hotline.example)",
            EXIT_USAGE,
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliFailure(
            f"--server must be an http(s) URL such as https://hotline.example, got {url!r}",
            EXIT_USAGE,
        )
    if parts.query or parts.fragment:
        raise CliFailure("--server must not carry a query or fragment", EXIT_USAGE)
    return url.rstrip("/")


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            return read_token_file(token_file)
        except ConfigError as e:
            raise CliFailure(str(e), EXIT_USAGE) from e
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise CliFailure(
            f"no token: pass --token-file FILE or set {TOKEN_FILE_ENV} or {TOKEN_ENV}",
            EXIT_USAGE,
        )
    return token


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options every command shares: server, token file, list, JSON, timeout."""
    options = [
        click.option(
            "--server",
            envvar=SERVER_ENV,
            default=None,
            help=f"Server base URL, e.g. https://hotline.example (env {SERVER_ENV}).",
        ),
        click.option(
            "--token-file",
            envvar=TOKEN_FILE_ENV,
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help=f"File holding the analyst token (env {TOKEN_FILE_ENV}; or the token "
            f"itself in {TOKEN_ENV}).",
        ),
        click.option(
            "--list",
            "list_name",
            envvar=LIST_ENV,
            default="main",
            show_default=True,
            help=f"List name (env {LIST_ENV}).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
        click.option(
            "--timeout",
            type=click.FloatRange(min=1, max=3600),
            default=DEFAULT_TIMEOUT,
            show_default=True,
            help="Seconds per request.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def open_api(
    server: str | None, token_file: Path | None, list_name: str, as_json: bool, timeout: float
) -> Api:
    base = _check_server(server)
    token = _token(token_file)
    client = httpx.Client(
        base_url=base,
        headers={
            "Authorization": f"Bearer {token}",
            "User-Agent": f"cleanfeed-analyst/{__version__}",
        },
        timeout=timeout,
        follow_redirects=False,
    )
    # Closed when the command ends, whatever way it ends.
    click.get_current_context().call_on_close(client.close)
    return Api(server=base, list_name=list_name, client=client, as_json=as_json)


def emit(api: Api, document: Any, text: Callable[[], None]) -> None:
    """Print ``document`` as JSON under ``--json``, else run ``text``."""
    if api.as_json:
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        text()
