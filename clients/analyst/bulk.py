"""Bulk calls: the server's caps per call, the import file and its result file.

``cleanfeed entries import`` reads a CSV file in the format of
``POST /v1/lists/LIST/entries/bulk.csv`` (:func:`read_csv`), uploads it in
:func:`batches` under the server's caps, and writes the result of every row
(:func:`write_results`); ``cleanfeed entries approve`` sends ids in chunks
of :data:`MAX_BATCH_ROWS`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from clients.analyst.connection import EXIT_USAGE, CliFailure
from clients.common.files import PLAINTEXT_MODE, write_atomic

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ROWS",
    "MAX_IMPORT_FILE_BYTES",
    "NOT_SENT",
    "RESULT_BY_STATUS",
    "RESULT_COLUMNS",
    "Record",
    "batches",
    "csv_bytes",
    "read_csv",
    "write_results",
]

#: Rows per upload of ``entries import`` and ids per ``entries approve``
#: call: the server's cap per bulk call (MAX_BULK_ROWS).
MAX_BATCH_ROWS: Final = 10_000

#: Bytes of CSV per upload, below the server's 16 MiB cap for CSV bodies.
MAX_BATCH_BYTES: Final = 8 * 1024 * 1024

#: Largest CSV file ``entries import`` reads (bounded memory).
MAX_IMPORT_FILE_BYTES: Final = 1024 * 1024 * 1024

#: Result words of the per-row result file of ``entries import``.
RESULT_BY_STATUS: Final = {"added": "created", "existing": "existing", "failed": "refused"}


@dataclass(frozen=True)
class Record:
    """One data row of an import file."""

    row: int  # 1-based data row number (header excluded, blank lines skipped)
    line: int  # line of the file where the record starts
    cells: list[str]


def read_csv(path: Path) -> tuple[list[str], list[Record]]:
    """Read the header and records of an import file (the bulk.csv format).

    Raises:
        CliFailure: unreadable, too large, not UTF-8, not CSV, or no header.
    """
    try:
        size = path.stat().st_size
        if size > MAX_IMPORT_FILE_BYTES:
            raise CliFailure(f"{path}: larger than {MAX_IMPORT_FILE_BYTES} bytes", EXIT_USAGE)
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise CliFailure(f"cannot read {path}: {e.strerror}", EXIT_USAGE) from e
    except UnicodeDecodeError as e:
        raise CliFailure(f"{path}: not UTF-8 text", EXIT_USAGE) from e
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CliFailure(f"{path}: empty file (expected a header row)", EXIT_USAGE) from None
    except csv.Error as e:
        raise CliFailure(f"{path}: CSV: {e}", EXIT_USAGE) from e
    records: list[Record] = []
    start = reader.line_num + 1
    try:
        for cells in reader:
            line = start
            start = reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            records.append(Record(row=len(records) + 1, line=line, cells=cells))
    except csv.Error as e:
        raise CliFailure(f"{path}: CSV near line {reader.line_num}: {e}", EXIT_USAGE) from e
    if not records:
        raise CliFailure(f"{path}: no rows after the header", EXIT_USAGE)
    return header, records


def batches(header: list[str], records: list[Record], rows: int) -> Iterator[list[Record]]:
    """Split ``records`` into uploads of at most ``rows`` rows and MAX_BATCH_BYTES."""
    batch: list[Record] = []
    size = 0
    header_bytes = len(csv_bytes([header]))
    for record in records:
        cost = len(csv_bytes([record.cells]))
        if batch and (len(batch) >= rows or header_bytes + size + cost > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += cost
    if batch:
        yield batch


def csv_bytes(rows: Sequence[Sequence[str]]) -> bytes:
    """``rows`` as CSV (CRLF line ends, UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


#: Columns of the per-row result file of ``entries import``.
RESULT_COLUMNS: Final = ("row", "line", "result", "id", "hash", "code", "message")

#: Result of the rows an interrupted import did not send.
NOT_SENT: Final = "not_sent"


def write_results(target: Path, outcome: Sequence[tuple[Record, dict[str, Any]]]) -> None:
    """Write the per-row result file (atomically).

    Raises:
        CliFailure: the file cannot be written (exit 2).
    """
    table = [list(RESULT_COLUMNS)] + [
        [
            str(record.row),
            str(record.line),
            result["result"],
            "" if result.get("id") is None else str(result["id"]),
            result.get("hash") or "",
            result.get("code") or "",
            result.get("message") or "",
        ]
        for record, result in outcome
    ]
    try:
        # The result rows name URLs: owner-only, like the ISP's plaintext files.
        write_atomic(target, csv_bytes(table), mode=PLAINTEXT_MODE)
    except OSError as e:
        raise CliFailure(f"cannot write {target}: {e.strerror}", EXIT_USAGE) from e
