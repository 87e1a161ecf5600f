"""The floor both clients stand on: one home for what they share.

``cleanfeed isp`` and ``cleanfeed audit`` talk to the same server with the
same kind of token and write files the same way, so the pieces that must
behave identically live here once (issue 14, item 2):

- :mod:`clients.common.http`: the HTTP client, the overall deadline, status
  to error mapping, ``Retry-After``, header decoding, validators, body caps,
  and the server URL policy (no clear-text ``http://`` off loopback);
- :mod:`clients.common.fetcher`: typed, capped reads of a list's log
  endpoints (keyrings, checkpoints, statements, proofs), used by the ISP
  sync and the witness;
- :mod:`clients.common.limits`: response size caps and timeouts;
- :mod:`clients.common.credentials`: reading tokens and verification keys;
- :mod:`clients.common.files`: atomic, durable file replacement;
- :mod:`clients.common.workers`: how worker processes are started.

Nothing here imports :mod:`clients.isp` or :mod:`clients.audit`.
"""

__all__: list[str] = []
