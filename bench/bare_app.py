"""The baseline of the HTTP comparison: a bare FastAPI app with one ``async def`` route.

The route returns 200 bytes of constant text. It runs under the same
uvicorn call as ``cleanfeed serve`` with one worker (api/cli/server.py:
``uvicorn.run(app, host=..., port=..., log_config=None, access_log=False)``),
so the ratio of the two request rates measures what cleanfeed adds on top
of the framework: authentication, rate limiting, routing to the list, ETag
and caches, middleware, logs and metrics.

Usage::

    python -m bench.bare_app --port 8099
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response

#: The route's path.
PATH = "/bare"

#: 200 bytes of constant text (about the size of a small checkpoint line set).
BODY = (b"cleanfeed bare baseline " * 9)[:199] + b"\n"
assert len(BODY) == 200


def create_app() -> FastAPI:
    """The bare application: one route, nothing else."""
    app = FastAPI()

    @app.get(PATH)
    async def bare() -> Response:
        return Response(content=BODY, media_type="text/plain; charset=utf-8")

    return app


def main() -> None:
    """Serve the bare app on 127.0.0.1 like ``cleanfeed serve`` serves the API."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same call as api/cli/server.py serve_command with --workers 1.
    uvicorn.run(create_app(), host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
