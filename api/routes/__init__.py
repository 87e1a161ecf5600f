"""Thin HTTP routes: parse, call the store or signer, serialise.

One module per audience: :mod:`.analyst`, :mod:`.isp`, :mod:`.auditor`,
:mod:`.admin`, :mod:`.ops`. No SQL here and no ``HTTPException``: errors are
domain errors or :class:`api.errors.ApiProblem`, mapped to problem+json by
:mod:`api.errors`.
"""

__all__: list[str] = []
