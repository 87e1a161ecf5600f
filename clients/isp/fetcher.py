"""The ISP client's network: the shared fetcher, built from an :class:`IspConfig`.

The transport defences (overall deadline, caps, statuses, header decoding,
validators, server URL policy) are the shared floor of both clients,
:mod:`clients.common.http`; the typed reads of the log endpoints are
:class:`clients.common.fetcher.Fetcher`. This module only adapts them to
the ISP client's configuration.
"""

from __future__ import annotations

import httpx

from clients.common import http
from clients.common.fetcher import Fetcher
from clients.errors import ConfigError
from clients.isp.config import IspConfig

__all__ = ["Fetcher", "build_http_client", "fetcher_for"]


def build_http_client(config: IspConfig) -> httpx.Client:
    """Build the production HTTP client from the configuration.

    See :func:`clients.common.http.build_http_client`.

    Raises:
        ClientError: the CA bundle cannot be loaded.
    """
    return http.build_http_client(config.timeouts, ca_bundle=config.ca_bundle, proxy=config.proxy)


def fetcher_for(config: IspConfig, client: httpx.Client) -> Fetcher:
    """The fetcher of the configured list, with the configured caps and deadline.

    Raises:
        ConfigError: server or list missing, or a refused server URL
            (:class:`~clients.errors.ServerUrlRefused`).
    """
    if config.server is None:
        raise ConfigError("missing required setting: --server")
    return Fetcher(
        client,
        server=config.server,
        list_name=config.list_name,
        token=config.token,
        limits=config.limits,
        response_deadline=config.timeouts.deadline,
        allow_insecure_http=config.allow_insecure_http,
    )
