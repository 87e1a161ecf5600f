"""Checkpoints: the signed tree head of the version log (c2sp.org/tlog-checkpoint).

DESIGN.md, "Versions, the log and what is signed", item 4. The note text is

```
<origin>
<tree size>
<base64 root hash>
[<extension line>...]
```

each line ending in ``\\n``. The size is a canonical decimal, the root the
canonical padded base64 of the 32-byte RFC 9162 root. Extension lines are
optional, opaque and non-empty (the spec does not recommend them); this
project emits none, but keeps any it parses so the signed text round-trips
byte for byte.

The origin rules live here (:func:`validate_origin`) because the origin is
also the signed-note key name of the log: keyrings and statements use the
same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from blocklist.encoding import MAX_DECIMAL, b64decode, b64encode, fits_utf8, parse_decimal
from blocklist.errors import FormatError

__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "MAX_ORIGIN_LENGTH",
    "Checkpoint",
    "validate_origin",
]

#: Longest origin, in characters: room for a host name (253) and a short path
#: while keeping every header line, and the note key name, small.
MAX_ORIGIN_LENGTH = 255

#: Largest checkpoint text, in UTF-8 bytes. Ours are about 330 bytes (origin,
#: 19-digit size, 44-character root); the cap bounds what a client reads from
#: the network before rejecting it (endless-data protection).
MAX_CHECKPOINT_BYTES = 4096

#: Length of a 32-byte hash in padded base64.
_B64_HASH_LENGTH = 44


def validate_origin(origin: str, *, what: str = "origin") -> None:
    """Check a list origin: 1 to 255 printable ASCII characters, no ``+``.

    The allowed characters are U+0021..U+007E except ``+`` (U+002B): what a
    signed-note key name may hold (c2sp.org/signed-note forbids spaces and
    ``+``), restricted to ASCII so that every document carrying the origin
    (keyring, statement, checkpoint) has a single spelling of it and cannot
    hide control characters or look-alike letters. A schema-less URL such as
    ``example.org/cleanfeed/main`` is the recommended form.

    Raises:
        FormatError: the origin breaks these rules.
    """
    if not isinstance(origin, str):
        raise FormatError(f"{what}: must be a string")
    if not origin:
        raise FormatError(f"{what}: must not be empty")
    if len(origin) > MAX_ORIGIN_LENGTH:
        raise FormatError(f"{what}: longer than {MAX_ORIGIN_LENGTH} characters")
    for c in origin:
        if not "!" <= c <= "~" or c == "+":
            raise FormatError(
                f"{what}: character {c!r} not allowed (printable ASCII other than "
                "space and '+' only)"
            )


def _validate_extension(line: str, what: str) -> None:
    if not isinstance(line, str):
        raise FormatError(f"{what}: must be a string")
    if not line:
        raise FormatError(f"{what}: empty line")
    for c in line:
        o = ord(c)
        # Signed notes must not contain control characters other than the
        # line ends (c2sp.org/signed-note); surrogates cannot be UTF-8.
        if o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF:
            raise FormatError(f"{what}: control character U+{o:04X} not allowed")


@dataclass(frozen=True)
class Checkpoint:
    """A log tree head: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Validate every field so that only encodable checkpoints exist.

        Raises:
            FormatError: a field breaks the format rules.
        """
        validate_origin(self.origin)
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise FormatError("tree size must be an int")
        if not 0 <= self.size <= MAX_DECIMAL:
            raise FormatError(f"tree size {self.size} is outside 0..{MAX_DECIMAL}")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise FormatError("root hash must be 32 bytes")
        if isinstance(self.extensions, str):
            raise FormatError("extensions must be a sequence of lines, not a string")
        extensions = tuple(self.extensions)
        for i, line in enumerate(extensions):
            _validate_extension(line, f"extension line {i + 1}")
        object.__setattr__(self, "extensions", extensions)
        if len(self.to_text().encode("utf-8")) > MAX_CHECKPOINT_BYTES:
            raise FormatError(f"checkpoint text exceeds {MAX_CHECKPOINT_BYTES} bytes")

    def to_text(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` then extension lines."""
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text, accepting only the canonical spelling.

        Raises:
            FormatError: size cap exceeded, no final newline, fewer than
                three lines, an empty line, a bad origin, a non-canonical
                size or root, or a control character in an extension line.
        """
        if not isinstance(text, str):
            raise FormatError("checkpoint text must be a string")
        try:
            fits = fits_utf8(text, MAX_CHECKPOINT_BYTES)
        except UnicodeEncodeError as e:
            raise FormatError("checkpoint text is not valid Unicode (lone surrogate)") from e
        if not fits:
            raise FormatError(f"checkpoint text exceeds {MAX_CHECKPOINT_BYTES} bytes")
        if not text.endswith("\n"):
            raise FormatError("checkpoint text must end in a newline")
        lines = text[:-1].split("\n")
        for i, line in enumerate(lines, start=1):
            if not line:
                raise FormatError(f"line {i}: empty line")
        if len(lines) < 3:
            raise FormatError(
                f"checkpoint has {len(lines)} lines, needs origin, tree size and root hash"
            )
        validate_origin(lines[0], what="line 1 (origin)")
        size = parse_decimal(lines[1], what="line 2 (tree size)")
        if len(lines[2]) != _B64_HASH_LENGTH:
            raise FormatError(
                f"line 3 (root hash): expected {_B64_HASH_LENGTH} base64 characters, "
                f"got {len(lines[2])}"
            )
        root = b64decode(lines[2], length=32, what="line 3 (root hash)")
        extensions = tuple(lines[3:])
        for i, line in enumerate(extensions, start=4):
            _validate_extension(line, f"line {i} (extension)")
        return cls(lines[0], size, root, extensions)
