"""docs/api-errors.md lists exactly the codes the API can answer with."""

from __future__ import annotations

import re
from pathlib import Path

from api.errors import STATUS_BY_ERROR, documented_codes, status_for
from blocklist.errors import DomesticHosting, InvalidEntry
from blocklist.store.errors import NotFound, SelfApproval

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-errors.md"
_ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3}) \|", re.MULTILINE)


def test_doc_table_matches_the_code() -> None:
    rows = {code: int(status) for code, status in _ROW.findall(DOC.read_text("utf-8"))}
    assert rows == documented_codes()


def test_subclasses_inherit_their_parents_status() -> None:
    assert status_for(DomesticHosting("x")) == STATUS_BY_ERROR[InvalidEntry] == 422
    assert status_for(SelfApproval("x")) == 403
    assert status_for(NotFound("x")) == 404

    class NewStoreError(NotFound):
        code = "new_code"

    assert status_for(NewStoreError("x")) == 404
    assert status_for(RuntimeError("x")) == 500
