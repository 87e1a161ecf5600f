"""The HTTP API: FastAPI app factory, auth, routes, settings, CLI.

Thin: parse, call the domain (``blocklist``, ``blocklist.store``,
``signer``), serialise. Build an app with :func:`api.app.create_app`; the
``cleanfeed init``, ``serve`` and ``token`` commands live in :mod:`api.cli`.
"""

__all__: list[str] = []
