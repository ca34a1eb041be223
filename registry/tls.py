"""The TLS context of the gateway's outbound HTTP clients, built once.

Building one loads and parses the whole CA bundle, and the gateway built
four at every start (the card fetcher's, the token verifier's, each
upstream pool's) and one more for every token exchange (CHANGELOG). An `SSLContext` is
configured once and only read afterwards, so every client and connection
may share it (Python's `ssl` docs: a context holds the settings and
certificates of many connections).

It is httpx's own default (certifi's CA bundle), with ``trust_env`` off as
the clients that use it set theirs: no environment variable redirects trust.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_tls() -> ssl.SSLContext:
    return httpx.create_ssl_context(trust_env=False)
