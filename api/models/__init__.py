"""Request and response models of the HTTP API, one module per API area.

Every request model forbids unknown fields (mass assignment: a body naming
``version``, ``created_by`` or ``status`` is refused with 422, never
silently dropped) and caps every string, list and integer. Hashes travel as
base64 in JSON (DESIGN.md, "Interfaces other programs rely on"); in URL
paths and query strings as 64 lower-case hex digits.

The modules follow :mod:`api.routes`: :mod:`.common` (the bases
:class:`~api.models.common.Forbid` and :class:`~api.models.common.Out`, the
request limits and constrained field types), :mod:`.entries` (the analysts'
routes), :mod:`.safeguards`, :mod:`.isp`, :mod:`.auditor`, :mod:`.witnesses`,
:mod:`.admin`, :mod:`.ops` and :mod:`.problems` (the RFC 9457 problem
document of every error). Import each model from its module.
"""

__all__: list[str] = []
