"""Who may call the HTTP APIs: bearer tokens (JWT) carrying a subject and roles.

Two kinds of token are accepted, told apart by their header's `alg`, each checked only with its own key
(so a public key can never be used as an HMAC secret):
- HS256, signed with AUTH_TOKEN_SECRET: the tokens `python -m backbone.auth token` mints (development,
  tests, the console, service accounts);
- RS256/ES256 of an identity provider whose signing keys are published at AUTH_JWKS_URL (fetched lazily
  in a worker thread, cached, fetched again for an unknown key id at most every few seconds).
Both must name AUTH_ISSUER as `iss` and AUTH_AUDIENCE as `aud`, and carry `sub`, `iat` and `exp`. The
`roles` claim lists role names; unknown ones are ignored (a provider's token may carry others).

`requires(*roles)` is the FastAPI dependency a route declares: 401 (with WWW-Authenticate: Bearer) when
the token is missing, malformed, expired or badly signed, 403 when it is valid but has none of the roles,
each with a `detail` that says which. It returns the Principal, whose subject is the audit actor.
`install(app, settings)` gives an app its verifier and shows every route's roles in its OpenAPI document.

A token may carry a `shop` claim: a checkout system's token bound to one shop (Principal.shop).

Command line: `python -m backbone.auth token [--subject dev] [--role staff ...] [--shop s]
[--ttl-seconds N]` prints a token signed with AUTH_TOKEN_SECRET; without --role it has all the roles (a
development token).
"""

import argparse
import asyncio
import os
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Protocol

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, model_validator

DEFAULT_ISSUER = "backorder"
DEFAULT_AUDIENCE = "backorder"
MIN_SECRET_LENGTH = 32
DEVELOPMENT_TTL_SECONDS = 12 * 3600
DEFAULT_TTL_SECONDS = 3600
# Clocks of the token's issuer and ours may differ a little.
LEEWAY_SECONDS = 30
_LOCAL_ALGORITHM = "HS256"
_PROVIDER_ALGORITHMS = ("RS256", "ES256")
_REQUIRED_CLAIMS = ["sub", "iat", "exp", "iss", "aud"]
_SUBJECT_MAX_LENGTH = 128
# The subject becomes the audit `actor` of the event contracts: an Identifier (backbone.contracts.types).
_SUBJECT = re.compile(rf"\S(?:.{{0,{_SUBJECT_MAX_LENGTH - 2}}}\S)?", re.DOTALL)


class Role(StrEnum):
    STAFF = "staff"  # stock adjustments and counts, SKU policy, suppliers, parked events, subscriptions
    SUPPORT = "support"  # acts for customers: cancels, reads orders and notifications with their data
    CHECKOUT = "checkout"  # places and reads orders (of its shop, if bound to one), subscribes customers
    READER = "reader"  # read-only views without customer names or e-mail addresses
    SUPPLIER = "supplier"  # a supplier's EDI gateway: posts interchanges to the EDI adapter


_ROLE_NAMES = frozenset(str(r) for r in Role)  # names other than these are ignored


ALL_ROLES: frozenset[Role] = frozenset(Role)
# The roles that see customers' names and e-mail addresses (everyone else gets them redacted).
CUSTOMER_DATA_ROLES: frozenset[Role] = frozenset({Role.STAFF, Role.SUPPORT})


@dataclass(frozen=True)
class Principal:
    """Who calls: the token's subject (the audit actor), its roles and, for a checkout system's token,
    the shop it speaks for (`shop` claim): such a token places and reads only that shop's orders and
    subscriptions. None: not bound to a shop."""

    subject: str
    roles: frozenset[Role]
    shop: str | None = None

    def has_any(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def sees_customer_data(self) -> bool:
        return self.has_any(CUSTOMER_DATA_ROLES)

    def may_act_for_shop(self, shop_id: str) -> bool:
        """Whether the caller may act on the shop's orders or subscriptions: a token bound to another
        shop may not, unless it also has support or staff (which act for every shop)."""
        return self.shop is None or self.shop == shop_id or self.has_any(CUSTOMER_DATA_ROLES)


ACTOR_FROM_TOKEN = "the audit actor comes from the bearer token's subject: leave `actor` out of the body"


class WithoutActor(BaseModel):
    """A request body of an audited command: who acts is the token's subject, so a body that names an
    `actor` is refused (422) rather than silently overridden."""

    @model_validator(mode="before")
    @classmethod
    def _actor_comes_from_the_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and "actor" in data:
            raise ValueError(ACTOR_FROM_TOKEN)
        return data


class AuthConfig(Protocol):
    """The settings the verifier needs (backbone.settings.AuthSettings has them)."""

    @property
    def auth_token_secret(self) -> Any: ...  # SecretStr | str | None

    @property
    def auth_jwks_url(self) -> str | None: ...

    @property
    def auth_issuer(self) -> str: ...

    @property
    def auth_audience(self) -> str: ...


class AuthNotConfigured(RuntimeError):
    """Neither AUTH_TOKEN_SECRET nor AUTH_JWKS_URL: the service would accept no token (or every one)."""


class InvalidToken(Exception):
    """The token is not acceptable (-> 401); the message says why."""


class KeysUnavailable(Exception):
    """The identity provider's keys could not be fetched (-> 503): the token cannot be checked now."""


def generate_secret() -> str:
    """A fresh random AUTH_TOKEN_SECRET (43 characters)."""
    return secrets.token_urlsafe(32)


def mint_token(
    secret: str,
    subject: str,
    roles: Collection[Role | str],
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    *,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    shop: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token for `subject` with `roles`, valid for `ttl_seconds` (negative: already expired);
    `shop` binds it to one shop's orders (a checkout system's token)."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"the secret must have at least {MIN_SECRET_LENGTH} characters")
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": subject,
        "roles": sorted(str(Role(r)) for r in roles),
        "iat": issued,
        "exp": issued + ttl_seconds,
        "iss": issuer,
        "aud": audience,
        **({"shop": shop} if shop is not None else {}),
    }
    return jwt.encode(claims, secret, algorithm=_LOCAL_ALGORITHM)


def development_token(secret: str, subject: str = "dev", ttl_seconds: int = DEVELOPMENT_TTL_SECONDS) -> str:
    """A token with all the roles, for local runs, demos and tests."""
    return mint_token(secret, subject, ALL_ROLES, ttl_seconds)


class Verifier:
    """Checks tokens against AUTH_TOKEN_SECRET and/or the identity provider's published keys."""

    def __init__(
        self,
        *,
        secret: str | None,
        jwks_url: str | None,
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
        keys_lifespan_seconds: float = 300.0,
        refetch_interval_seconds: float = 10.0,
    ) -> None:
        if not secret and not jwks_url:
            raise AuthNotConfigured(
                "no token verifier configured: set AUTH_TOKEN_SECRET (at least "
                f"{MIN_SECRET_LENGTH} characters) and/or AUTH_JWKS_URL"
            )
        self._secret = secret or None
        self._issuer = issuer
        self._audience = audience
        self._keys = (
            _ProviderKeys(jwks_url, keys_lifespan_seconds, refetch_interval_seconds) if jwks_url else None
        )

    @classmethod
    def from_settings(cls, settings: AuthConfig) -> "Verifier":
        secret = settings.auth_token_secret
        plain = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
        return cls(
            secret=plain,
            jwks_url=settings.auth_jwks_url,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )

    async def verify(self, token: str) -> Principal:
        """The token's principal; InvalidToken (401) or KeysUnavailable (503) otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the bearer token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm == _LOCAL_ALGORITHM and self._secret is not None:
            key: Any = self._secret
        elif algorithm in _PROVIDER_ALGORITHMS and self._keys is not None:
            key = await self._keys.key_for(header.get("kid"), str(algorithm))
        else:
            raise InvalidToken(f"tokens signed with {algorithm!r} are not accepted here")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the bearer token has expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the bearer token's signature is not valid") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the bearer token is not meant for {self._audience!r} (aud)") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(f"the bearer token was not issued by {self._issuer!r} (iss)") from None
        except jwt.MissingRequiredClaimError as e:
            raise InvalidToken(f"the bearer token lacks the {e.claim!r} claim") from None
        except jwt.PyJWTError as e:
            raise InvalidToken(f"the bearer token is not valid: {e}") from None
        return _principal(claims)


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims["sub"]
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise InvalidToken(f"the bearer token's subject must be 1 to {_SUBJECT_MAX_LENGTH} characters")
    named = claims.get("roles", [])
    if isinstance(named, str):
        named = named.split()  # a space-separated list, as some providers write scopes
    if not isinstance(named, list):
        raise InvalidToken("the bearer token's roles claim must be a list of role names")
    shop = claims.get("shop")
    if shop is not None and (not isinstance(shop, str) or not _SUBJECT.fullmatch(shop)):
        raise InvalidToken(f"the bearer token's shop must be 1 to {_SUBJECT_MAX_LENGTH} characters")
    roles = frozenset(Role(r) for r in named if isinstance(r, str) and r in _ROLE_NAMES)
    return Principal(subject, roles, shop)


class _ProviderKeys:
    """The identity provider's signing keys by key id: fetched on first use and when a token names a key
    not seen yet (a rotation), at most every `refetch_interval` seconds (so a flood of tokens with made-up
    key ids cannot make us flood the provider), and again after `lifespan` seconds. The fetch is blocking
    I/O (PyJWKClient): it runs in a worker thread, one at a time."""

    def __init__(self, url: str, lifespan: float, refetch_interval: float) -> None:
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, cache_keys=False, timeout=10)
        self._lifespan = lifespan
        self._refetch_interval = refetch_interval
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key_for(self, kid: object, algorithm: str) -> Any:
        if not isinstance(kid, str):
            raise InvalidToken("the bearer token names no key (kid)")
        if self._stale() or (kid not in self._keys and self._may_refetch()):
            async with self._lock:  # one fetch at a time; the others find its result
                if self._stale() or (kid not in self._keys and self._may_refetch()):
                    await self._fetch()
        found = self._keys.get(kid)
        if found is None:
            raise InvalidToken(f"the identity provider has no key {kid!r}")
        if found.algorithm_name != algorithm:
            raise InvalidToken(f"key {kid!r} is not for {algorithm}")
        return found.key

    def _stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at > self._lifespan

    def _may_refetch(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at > self._refetch_interval

    async def _fetch(self) -> None:
        try:
            keys = await asyncio.to_thread(self._client.get_signing_keys, refresh=True)
        except jwt.PyJWKClientError as e:
            if self._keys and not self._stale_beyond_grace():
                return  # keep the keys we have through a short outage of the provider
            raise KeysUnavailable(f"the identity provider's keys cannot be fetched: {e}") from None
        self._keys = {k.key_id: k for k in keys if k.key_id and k.algorithm_name in _PROVIDER_ALGORITHMS}
        self._fetched_at = time.monotonic()

    def _stale_beyond_grace(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at > 4 * self._lifespan


# --- FastAPI ------------------------------------------------------------------------------------------

BEARER_SCHEME = "bearer"
_bearer = HTTPBearer(
    scheme_name=BEARER_SCHEME,
    bearerFormat="JWT",
    description="A JWT from `python -m backbone.auth token` (AUTH_TOKEN_SECRET) or the identity provider "
    "(AUTH_JWKS_URL); its `roles` claim decides what it may do",
    auto_error=False,
)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="backorder"'}


def _unauthorized(reason: str) -> HTTPException:
    description = reason.replace('"', "'").replace("\\", "/")  # a quoted-string in the header
    challenge = f'Bearer realm="backorder", error="invalid_token", error_description="{description}"'
    return HTTPException(401, detail=reason, headers={"WWW-Authenticate": challenge})


RoleDependency = Callable[..., Awaitable[Principal]]


def requires(*roles: Role) -> RoleDependency:
    """A dependency admitting a valid token with at least one of `roles`; returns its Principal."""
    if not roles:
        raise ValueError("name at least one role")
    wanted = tuple(r for r in Role if r in roles)  # in a fixed order, for messages and documents
    names = ", ".join(wanted)

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        verifier: Verifier | None = getattr(request.app.state, "auth_verifier", None)
        if verifier is None:  # fail closed: an app nobody called install() on admits nobody
            raise HTTPException(503, detail="authentication is not configured on this service")
        if credentials is None:
            if request.headers.get("authorization"):
                raise _unauthorized("the Authorization header must be 'Bearer <token>'")
            raise HTTPException(401, detail="this needs a bearer token", headers=_CHALLENGE)
        try:
            principal = await verifier.verify(credentials.credentials)
        except InvalidToken as e:
            raise _unauthorized(str(e)) from None
        except KeysUnavailable as e:
            raise HTTPException(503, detail=str(e), headers={"Retry-After": "5"}) from None
        if not principal.has_any(wanted):
            has = ", ".join(sorted(principal.roles)) or "no role"
            raise HTTPException(403, detail=f"this needs one of the roles {names}; your token has {has}")
        return principal

    dependency.roles = wanted  # type: ignore[attr-defined]  # read by install() for the OpenAPI document
    return dependency


# The role sets the services' routes share: read-only views, and staff's commands.
ReadsViews = Annotated[Principal, Depends(requires(Role.STAFF, Role.SUPPORT, Role.READER))]
Staff = Annotated[Principal, Depends(requires(Role.STAFF))]
SendsEdi = Annotated[Principal, Depends(requires(Role.SUPPLIER, Role.STAFF))]


def install(app: FastAPI, settings: AuthConfig) -> None:
    """Give `app` its verifier (AuthNotConfigured without any) and document each guarded route's roles
    (call it once every router is included)."""
    app.state.auth_verifier = Verifier.from_settings(settings)
    build = app.openapi  # FastAPI's own, which caches its document in app.openapi_schema

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_roles(app, build())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def route_roles(app: FastAPI) -> dict[tuple[str, str], tuple[Role, ...] | None]:
    """(method, path) -> the roles the route admits, None for an open one; every API route of `app`."""
    table: dict[tuple[str, str], tuple[Role, ...] | None] = {}
    for context in iter_route_contexts(app.routes):
        dependant = getattr(context, "dependant", None)
        if not isinstance(context.original_route, APIRoute) or dependant is None:
            continue
        found = _roles_in(dependant)
        for method in sorted(context.methods or ()):
            table[method, str(context.path_format)] = None if found is None else tuple(found)
    return table


def _roles_in(dependant: Dependant) -> Sequence[Role] | None:
    roles = getattr(dependant.call, "roles", None)
    if roles is not None:
        return list(roles)
    for sub in dependant.dependencies:
        found = _roles_in(sub)
        if found is not None:
            return found
    return None


_AUTH_RESPONSES = {
    "401": {"description": "No bearer token, or one that is malformed, expired or badly signed"},
    "403": {"description": "The token is valid but has none of the roles the route needs"},
}


def _document_roles(app: FastAPI, schema: dict[str, Any]) -> None:
    """Each guarded operation names its roles (`x-roles`, and a line of its description) and its 401/403."""
    for (method, path), roles in route_roles(app).items():
        operation = schema.get("paths", {}).get(path, {}).get(method.lower())
        if roles is None or operation is None:
            continue
        operation["x-roles"] = [str(r) for r in roles]
        note = f"Roles: {', '.join(roles)}."
        operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
        for status, response in _AUTH_RESPONSES.items():
            operation.setdefault("responses", {}).setdefault(status, response)


# --- command line -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backbone.auth", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print a token signed with AUTH_TOKEN_SECRET")
    token.add_argument("--subject", default="dev", help="who the token speaks for (the audit actor)")
    token.add_argument(
        "--role",
        action="append",
        choices=[str(r) for r in Role],
        help="repeat for several; default: all four (a development token)",
    )
    token.add_argument("--shop", help="bind the token to one shop's orders (a checkout system's token)")
    token.add_argument(
        "--ttl-seconds", type=int, default=DEVELOPMENT_TTL_SECONDS, help="validity (default 12 h)"
    )
    args = parser.parse_args(argv)
    secret = os.environ.get("AUTH_TOKEN_SECRET", "")
    if len(secret) < MIN_SECRET_LENGTH:
        print(f"AUTH_TOKEN_SECRET must be set (at least {MIN_SECRET_LENGTH} characters)", file=sys.stderr)
        return 2
    print(
        mint_token(
            secret,
            args.subject,
            args.role or ALL_ROLES,
            args.ttl_seconds,
            issuer=os.environ.get("AUTH_ISSUER", DEFAULT_ISSUER),
            audience=os.environ.get("AUTH_AUDIENCE", DEFAULT_AUDIENCE),
            shop=args.shop,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
