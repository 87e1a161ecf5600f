"""The HTTP API: FastAPI app factory, auth, routes, settings, CLI.

Thin: parse, call the domain (``blocklist``, ``blocklist.store``,
``signer``), serialise. Build an app with :func:`api.app.create_app`; the
server's commands (``cleanfeed init``, ``serve``, ``token`` …) live in :mod:`api.cli`.
"""

__all__: list[str] = []
