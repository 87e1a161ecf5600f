"""Error tree of the domain package.

Every error raised on purpose by :mod:`blocklist` derives from
:class:`BlocklistError`. Errors that describe bad input also derive from
``ValueError`` so callers that only know the standard library still catch
them.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousHost",
    "BlocklistError",
    "DeltaError",
    "DomesticHosting",
    "FormatError",
    "InvalidEntry",
    "InvalidHost",
    "InvalidURL",
    "ProofError",
    "PublicSuffix",
]


class BlocklistError(Exception):
    """Root of every error the domain raises on purpose."""

    #: A stable, machine-readable code (used by the API's problem+json).
    code = "blocklist_error"


class InvalidURL(BlocklistError, ValueError):
    """A URL that cannot be canonicalised (no host, bad scheme, too long...)."""

    code = "invalid_url"


class AmbiguousHost(InvalidURL):
    """An entry URL whose host a browser and Safe Browsing would read differently.

    Userinfo, a backslash, or a percent-encoded delimiter in the authority
    (issue 12, item 15): a crafted report could otherwise get an innocent
    host listed while the browser visits another one.
    """

    code = "ambiguous_host"


class InvalidEntry(BlocklistError, ValueError):
    """An entry whose fields break the entry rules (scope, reach, country...)."""

    code = "invalid_entry"


class InvalidHost(InvalidEntry):
    """An entry's host is neither a valid host name after IDNA nor an IP address.

    Only entries are held to this (issue 12, item 16); lookups of visited
    URLs stay as lenient as Safe Browsing.
    """

    code = "invalid_host"


class DomesticHosting(InvalidEntry):
    """The entry is hosted in the list's home country: takedown, not blocking."""

    code = "domestic_hosting"


class PublicSuffix(InvalidEntry):
    """The entry's host is a public suffix (``co.uk``, ``blogspot.com``, ``github.io``).

    Lookups try parent hosts, so an entry of any scope on a public suffix
    blocks that path (or everything) on every site registered under it
    (DESIGN.md, "Safeguards on what an entry may block").
    """

    code = "public_suffix"


class FormatError(BlocklistError, ValueError):
    """A document (statement, checkpoint, keyring, encoding) is not canonical."""

    code = "format_error"


class ProofError(BlocklistError):
    """A Merkle proof or compact range does not verify."""

    code = "proof_error"


class DeltaError(BlocklistError):
    """A delta adds a present hash or removes an absent one."""

    code = "delta_error"
