"""The services' HTTP APIs as the console reads them: with its own short-lived reader token, a timeout per
call, and every failure turned into a SourceDown that names the service and what went wrong (the board
shows it instead of breaking)."""

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from backbone.auth import Role, mint_token

SERVICES = ("order", "inventory", "procurement", "notifier")


class SourceDown(Exception):
    """A service did not answer as expected; `str()` says how, for the board's banner."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class ReaderToken:
    """The console's own token (role reader), minted again when half its lifetime has passed."""

    def __init__(self, secret: str, ttl_seconds: int, *, issuer: str, audience: str) -> None:
        self._secret, self._ttl = secret, ttl_seconds
        self._issuer, self._audience = issuer, audience
        self._token = ""
        self._renew_at = 0.0

    def current(self) -> str:
        now = time.time()
        if now >= self._renew_at:
            self._token = mint_token(
                self._secret,
                "console",
                [Role.READER],
                self._ttl,
                issuer=self._issuer,
                audience=self._audience,
                now=now,
            )
            self._renew_at = now + self._ttl / 2
        return self._token


class Sources:
    """`concurrency`: calls in flight at once, so a board of many SKUs does not flood a service."""

    def __init__(
        self, http: httpx.AsyncClient, urls: Mapping[str, str], token: ReaderToken, concurrency: int = 8
    ) -> None:
        self._http = http
        self._urls = dict(urls)
        self._token = token
        self._slots = asyncio.Semaphore(concurrency)

    async def get(
        self, source: str, path: str, params: Mapping[str, Any] | None = None, *, missing_ok: bool = False
    ) -> Any:
        """The JSON body of GET `path` on `source`; None for a 404 if `missing_ok`; SourceDown otherwise."""
        headers = {"Authorization": f"Bearer {self._token.current()}"}
        try:
            async with self._slots:
                response = await self._http.get(f"{self._urls[source]}{path}", params=params, headers=headers)
        except httpx.TimeoutException:
            raise SourceDown(source, "no answer in time") from None
        except httpx.HTTPError as e:
            raise SourceDown(source, f"unreachable ({type(e).__name__})") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code != 200:
            raise SourceDown(source, f"GET {path} answered {response.status_code}: {_detail(response)}")
        try:
            return response.json()
        except ValueError:
            raise SourceDown(source, f"GET {path} answered with something other than JSON") from None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail if detail is not None else body)[:200]
