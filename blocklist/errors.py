"""Error tree of the domain package.

Every error raised on purpose by :mod:`blocklist` derives from
:class:`BlocklistError`. Errors that describe bad input also derive from
``ValueError`` so callers that only know the standard library still catch
them.
"""

from __future__ import annotations


class BlocklistError(Exception):
    """Root of every error the domain raises on purpose."""

    #: A stable, machine-readable code (used by the API's problem+json).
    code = "blocklist_error"


class InvalidURL(BlocklistError, ValueError):
    """A URL that cannot be canonicalised (no host, bad scheme, too long...)."""

    code = "invalid_url"


class InvalidEntry(BlocklistError, ValueError):
    """An entry whose fields break the entry rules (scope, reach, country...)."""

    code = "invalid_entry"


class DomesticHosting(InvalidEntry):
    """The entry is hosted in the list's home country: takedown, not blocking."""

    code = "domestic_hosting"


class FormatError(BlocklistError, ValueError):
    """A document (statement, checkpoint, keyring, encoding) is not canonical."""

    code = "format_error"


class ProofError(BlocklistError):
    """A Merkle proof or compact range does not verify."""

    code = "proof_error"


class DeltaError(BlocklistError):
    """A delta adds a present hash or removes an absent one."""

    code = "delta_error"
