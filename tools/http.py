"""``HttpClient``: the one shared ``aiohttp.ClientSession`` of a toolset or worker.

Why a wrapper rather than a bare session:

* one session (one connection pool) per process, opened by ``start()`` and
  closed by ``close()`` from the owner's lifecycle, never per call;
* an explicit ``aiohttp.ClientTimeout`` (aiohttp's default total is 300 s);
* a host allow-list (``Settings.http_allowed_hosts``): a URL whose host is not
  listed raises ``ToolHTTPError`` before any request is sent; redirects are not
  followed, since a redirect could lead off the allow-list;
* statuses become typed errors: >= 500 and connection failures are retryable
  ``ToolHTTPError``; 4xx and 3xx are terminal; aiohttp's own timeouts become
  ``ToolTimeoutError``;
* response bodies are capped, as the peer is not trusted.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from yarl import URL

from flightrec.contracts.errors import ConfigError, ToolHTTPError, ToolTimeoutError
from flightrec.contracts.settings import Settings

__all__ = ["MAX_RESPONSE_BYTES", "HttpClient"]

MAX_RESPONSE_BYTES = 1 << 20


class HttpClient:
    """Shared HTTP session with timeouts, a host allow-list and typed errors."""

    def __init__(
        self,
        settings: Settings,
        *,
        timeout_s: float | None = None,
        max_connections: int = 100,
    ) -> None:
        total = timeout_s if timeout_s is not None else settings.tool_timeout_s
        if total <= 0:
            raise ConfigError("HTTP timeout must be positive", timeout_s=total)
        self._allowed_hosts = frozenset(h.lower() for h in settings.http_allowed_hosts)
        self._timeout = aiohttp.ClientTimeout(total=total, connect=min(total, 5.0))
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session (idempotent)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                # no proxies or .netrc from the environment: the allow-list is the
                # only way out
                trust_env=False,
            )

    async def close(self) -> None:
        """Close the session and its connections (idempotent)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> HttpClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def check_url(self, url: str) -> URL:
        """The parsed URL if its scheme is http(s) and its host is allow-listed."""
        parsed = URL(url)
        host = (parsed.host or "").lower()
        if parsed.scheme not in {"http", "https"} or host not in self._allowed_hosts:
            raise ToolHTTPError(
                "host is not on the HTTP allow-list", host=host, scheme=parsed.scheme
            )
        return parsed

    async def get_json(self, url: str, *, timeout_s: float | None = None) -> Any:
        """GET ``url`` and decode its JSON body."""
        return await self.request_json("GET", url, timeout_s=timeout_s)

    async def post_json(self, url: str, payload: Any, *, timeout_s: float | None = None) -> Any:
        """POST ``payload`` as JSON to ``url`` and decode the JSON answer."""
        return await self.request_json("POST", url, payload=payload, timeout_s=timeout_s)

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        payload: Any = None,
        timeout_s: float | None = None,
    ) -> Any:
        """One request with the checks described in the module docstring."""
        target = self.check_url(url)
        if self._session is None or self._session.closed:
            raise ConfigError("HttpClient used before start() or after close()")
        options: dict[str, Any] = {}
        if timeout_s is not None:
            options["timeout"] = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 5.0))
        path = target.path
        try:
            async with self._session.request(
                method, target, json=payload, allow_redirects=False, **options
            ) as resp:
                body = await _read_capped(resp)
                status = resp.status
        except TimeoutError:  # aiohttp's timeouts subclass it
            raise ToolTimeoutError("HTTP request timed out", method=method, path=path) from None
        except aiohttp.ClientError as exc:
            raise ToolHTTPError(
                f"HTTP request failed: {type(exc).__name__}",
                retryable=True,
                method=method,
                path=path,
            ) from None
        if status >= 500:
            raise ToolHTTPError("server error", retryable=True, status=status, path=path)
        if status >= 300:
            raise ToolHTTPError("request refused", retryable=False, status=status, path=path)
        try:
            return json.loads(body)
        except ValueError:
            raise ToolHTTPError("response is not JSON", status=status, path=path) from None


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ToolHTTPError("response body too large", limit=MAX_RESPONSE_BYTES)
        chunks.append(chunk)
    return b"".join(chunks)
