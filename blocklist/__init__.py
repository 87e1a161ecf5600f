"""The cleanfeed domain: pure modules, and two fenced I/O corners.

Pure (no files, no network, no database, no clock unless passed in):
canonicalisation of URLs into Safe Browsing expressions (``canonical``),
entry rules (``entries``), block references (``blockref``), the state
digest (``statedigest``), Merkle tree math (``merkle``), the text formats of
statements, checkpoints and keyrings, the audit-log chain (``auditlog``),
encodings and errors.

I/O, in two named places only (docs/adr/0004-blocklist-io-corners.md):

- ``blocklist.store``: the SQLAlchemy persistence, imported only by the
  server side (``api``, ``signer``);
- ``blocklist.tempfiles``: the names of atomic-write temporaries and their
  clean-up, shared by the signer and the clients (which may not import each
  other).

No pure module imports either (tests/test_layering.py).
"""

__all__: list[str] = []
