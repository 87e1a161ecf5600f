"""The cleanfeed domain: pure code with no I/O.

Canonicalisation of URLs into Safe Browsing expressions, entry rules, the
state digest, Merkle tree math and the text formats of statements,
checkpoints and keyrings. ``blocklist.store`` (the SQLAlchemy persistence)
is the only sub-package that touches a database, and it is imported only by
the server side.
"""
