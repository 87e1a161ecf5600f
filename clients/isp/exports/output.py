"""Render the verified list in one format and write the export atomically.

:func:`render` dispatches to the format's renderer (hashes and urls here,
:mod:`clients.isp.exports.squid`, :mod:`clients.isp.exports.dns`);
:func:`write_export` writes every file of a format only when its content
changed, each replaced atomically (:mod:`clients.common.files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from clients.common.files import write_if_changed
from clients.isp.exports.dns import (
    _PREAMBLES,
    _line_writer,
    _render_dns_list,
    _render_rpz,
)
from clients.isp.exports.entries import (
    _check_hashes,
    _Counter,
    _expressions_for,
)
from clients.isp.exports.formats import (
    DEFAULT_MODES,
    DEFAULT_RPZ_ZONE,
    FILE_SUFFIXES,
    SCOPE_OTHER,
    ExportError,
    ExportInput,
    ExportResult,
    ExportWriteError,
    _check_format,
    check_blockpage,
    check_ede,
)
from clients.isp.exports.squid import (
    _render_squid,
)

__all__ = [
    "output_paths",
    "render",
    "write_export",
]

# --- errors ------------------------------------------------------------------


# --- options -------------------------------------------------------------------


# --- data ----------------------------------------------------------------------


# --- helpers -------------------------------------------------------------------


# --- renderers -----------------------------------------------------------------


def _render_hashes(data: ExportInput) -> ExportResult:
    hashes = _check_hashes(data.hashes)
    body = "".join(h.hex() + "\n" for h in hashes).encode("ascii")
    return ExportResult({"": body}, len(hashes), 0, [])


def _render_urls(data: ExportInput) -> ExportResult:
    hashes = _check_hashes(data.hashes)
    counter = _Counter()
    lines: list[str] = []
    for expr in _expressions_for("urls", data, hashes):
        if expr and all(0x21 <= ord(c) <= 0x7E for c in expr):
            lines.append(expr)
            counter.enforced += 1
        else:
            # A line break inside an expression would split it in two.
            counter.skip(
                "expressions contain whitespace or non-ASCII and were left out", SCOPE_OTHER
            )
    body = "".join(f"{line}\n" for line in sorted(lines)).encode("ascii")
    return counter.result({"": body})


def render(
    fmt: str,
    data: ExportInput,
    *,
    rpz_zone: str = DEFAULT_RPZ_ZONE,
    blockpage: Sequence[str] = (),
    ede: int | None = None,
) -> ExportResult:
    """Render one export in memory.

    Args:
        fmt: one of :data:`FORMATS`.
        data: the verified list.
        rpz_zone: the RPZ zone name the resolver loads the ``rpz`` file as
            (used to check that owner names fit in 255 octets).
        blockpage: DNS formats: answer blocked hosts with these addresses
            (the block page's) instead of NXDOMAIN; see
            :func:`check_blockpage`.
        ede: RFC 8914 code for the ``rpz`` export's ``response-policy``
            statement (written to ``<output>.named.conf``); see
            :func:`check_ede`.

    Returns:
        The files and the enforcement counts (``written`` empty).

    Raises:
        UnknownFormat: ``fmt`` is not a format.
        MissingPlaintext: a format other than ``hashes`` without the
            expression of every hash.
        PlaintextMismatch: an expression does not hash to its key.
        ExportError: a hash is not 32 bytes, ``rpz_zone`` is invalid, or
            ``blockpage`` or ``ede`` is refused for this format.
    """
    kind = _check_format(fmt)
    addresses = check_blockpage(kind, blockpage) if blockpage else ()
    code = None if ede is None else check_ede(kind, ede)
    if kind == "hashes":
        return _render_hashes(data)
    if kind == "urls":
        return _render_urls(data)
    if kind == "squid":
        return _render_squid(data)
    if kind == "rpz":
        return _render_rpz(data, rpz_zone=rpz_zone, blockpage=addresses, ede=code)
    return _render_dns_list(kind, data, _line_writer(kind, addresses), "#", _PREAMBLES[kind])


def output_paths(fmt: str, output: Path) -> dict[str, Path]:
    """The files :func:`write_export` writes for ``fmt`` at ``output``.

    Raises:
        UnknownFormat: ``fmt`` is not a format.
    """
    output = Path(output)
    return {s: output.with_name(output.name + s) for s in FILE_SUFFIXES[_check_format(fmt)]}


def write_export(
    fmt: str,
    data: ExportInput,
    output: Path,
    *,
    mode: int | None = None,
    rpz_zone: str = DEFAULT_RPZ_ZONE,
    blockpage: Sequence[str] = (),
    ede: int | None = None,
) -> ExportResult:
    """Render an export and write its files atomically, skipping unchanged ones.

    Single-file formats write ``output`` itself. ``squid`` writes two files
    next to each other, ``<output>.dstdomain`` and ``<output>.url_regex``
    (``output`` is a base path, never a directory), so one config path
    prefix names both. Nothing is written when rendering fails, so the
    previous export stays in force. Each file is replaced atomically
    (:func:`clients.common.files.write_if_changed`); a file whose content is
    already in place is not touched.

    Args:
        fmt: one of :data:`FORMATS`.
        data: the verified list.
        output: the file (or, for ``squid``, the base path) to write.
        mode: permission bits of the files; default :data:`DEFAULT_MODES`.
        rpz_zone: see :func:`render`.
        blockpage: see :func:`render`.
        ede: see :func:`render`; an ``rpz`` export with a code also writes
            ``<output>.named.conf``.

    Returns:
        The rendered export, with ``written`` telling which files changed:
        run the filter's reload hook only when :attr:`ExportResult.changed`.

    Raises:
        UnknownFormat: ``fmt`` is not a format.
        MissingPlaintext: see :func:`render`.
        PlaintextMismatch: see :func:`render`.
        ExportError: ``output`` is a directory, or see :func:`render`.
        ExportWriteError: a file could not be written.
    """
    paths = output_paths(fmt, output)
    if Path(output).is_dir():
        raise ExportError(f"export output {output} is a directory; give a file path")
    result = render(fmt, data, rpz_zone=rpz_zone, blockpage=blockpage, ede=ede)
    file_mode = DEFAULT_MODES[_check_format(fmt)] if mode is None else mode
    written: dict[Path, bool] = {}
    for suffix, content in result.files.items():
        path = paths.get(suffix) or Path(output).with_name(Path(output).name + suffix)
        try:
            written[path] = write_if_changed(path, content, mode=file_mode)
        except OSError as e:
            raise ExportWriteError(f"cannot write export {path}: {e}") from e
    return replace(result, written=written)
