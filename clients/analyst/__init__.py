"""The analyst command line: ``cleanfeed entries …`` and ``cleanfeed publish`` over HTTP.

Runs from a base install (httpx and click only), so analysts can script
their work from a workstation without the server extra.
"""

__all__: list[str] = []
