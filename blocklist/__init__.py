"""The cleanfeed domain: pure modules, and three fenced I/O corners.

Pure (no files, no network, no database, no clock unless passed in):
canonicalisation of URLs into Safe Browsing expressions (``canonical``),
entry rules (``entries``), block references (``blockref``), the state
digest (``statedigest``), Merkle tree math (``merkle``), the text formats of
statements, checkpoints and keyrings, the audit-log chain (``auditlog``),
encodings and errors.

I/O, in three named places only (docs/adr/0004-blocklist-io-corners.md):

- ``blocklist.store``: the SQLAlchemy persistence, imported only by the
  server side (``api``, ``signer``);
- ``blocklist.tempfiles``: the names of atomic-write temporaries and their
  clean-up, shared by the signer and the clients (which may not import each
  other);
- ``blocklist.httpdeadline``: one overall deadline per HTTP exchange (a
  wrapper of httpcore's network backend), shared by the clients' network
  floor and the signer's re-verification job, and imported by those two
  only.

No pure module imports any of them (tests/test_layering.py).
"""

__all__: list[str] = []
