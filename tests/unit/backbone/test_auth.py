"""backbone.auth without the services: tokens, the verifier (the shared secret and an identity provider's
published keys), the FastAPI dependency's 401/403 answers, the OpenAPI document, the command line and the
settings that refuse to run without a verifier."""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, ValidationError

from backbone import auth
from backbone.auth import (
    ALL_ROLES,
    AuthNotConfigured,
    InvalidToken,
    KeysUnavailable,
    Principal,
    Role,
    Verifier,
    WithoutActor,
    development_token,
    generate_secret,
    mint_token,
    requires,
)
from backbone.settings import AuthSettings, ServiceSettings

SECRET = generate_secret()


def verify(token: str, verifier: Verifier | None = None) -> Principal:
    return asyncio.run((verifier or Verifier(secret=SECRET, jwks_url=None)).verify(token))


def refusal(token: str, verifier: Verifier | None = None) -> str:
    with pytest.raises(InvalidToken) as refused:
        verify(token, verifier)
    return str(refused.value)


def signed(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256", **headers: Any) -> str:
    base = {"sub": "ann", "roles": ["staff"], "iat": int(time.time()), "exp": int(time.time()) + 60}
    return jwt.encode({**base, "iss": "backorder", "aud": "backorder", **claims}, key, algorithm, headers)


# --- tokens and the shared secret ---------------------------------------------------------------------


def test_a_minted_token_names_its_subject_and_roles() -> None:
    principal = verify(mint_token(SECRET, "ann", [Role.STAFF, "reader"]))
    assert principal == Principal("ann", frozenset({Role.STAFF, Role.READER}))
    assert principal.sees_customer_data  # staff
    assert verify(development_token(SECRET)).roles == ALL_ROLES
    claims = jwt.decode(mint_token(SECRET, "ann", [Role.READER], 60), SECRET, ["HS256"], audience="backorder")
    assert set(claims) == {"sub", "roles", "iat", "exp", "iss", "aud"}
    assert claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: "not-a-jwt", "not a well-formed JWT"),
        (lambda: mint_token(SECRET, "ann", ALL_ROLES, ttl_seconds=-120), "has expired"),
        (lambda: mint_token("y" * 32, "ann", ALL_ROLES), "signature is not valid"),
        (lambda: mint_token(SECRET, "ann", ALL_ROLES, audience="elsewhere"), "not meant for 'backorder'"),
        (lambda: mint_token(SECRET, "ann", ALL_ROLES, issuer="someone"), "not issued by 'backorder'"),
        (lambda: signed({"exp": None}), "lacks the 'exp' claim"),
        (lambda: signed({"sub": None}), "lacks the 'sub' claim"),
        (lambda: signed({"sub": " ann"}), "subject must be 1 to 128 characters"),
        (lambda: signed({"sub": "a" * 129}), "subject must be 1 to 128 characters"),
        (lambda: signed({"roles": {"staff": True}}), "roles claim must be a list"),
        (lambda: signed({"shop": ""}), "shop must be"),
        (lambda: jwt.encode({"sub": "ann"}, None, algorithm="none"), "'none' are not accepted"),
        (lambda: signed({}, key="x" * 64, algorithm="HS512"), "'HS512' are not accepted"),
    ],
)
def test_bad_tokens_are_refused_saying_why(token: Callable[[], str], reason: str) -> None:
    assert reason in refusal(token())  # minted now: a token made at collection may expire before


def test_a_little_clock_skew_is_tolerated_but_not_more() -> None:
    assert verify(mint_token(SECRET, "ann", ALL_ROLES, ttl_seconds=-10)).subject == "ann"
    assert "expired" in refusal(mint_token(SECRET, "ann", ALL_ROLES, ttl_seconds=-(auth.LEEWAY_SECONDS + 5)))


def test_unknown_roles_are_ignored_and_a_space_separated_list_is_read() -> None:
    assert verify(signed({"roles": ["staff", "admin", 7]})).roles == {Role.STAFF}
    assert verify(signed({"roles": "reader support"})).roles == {Role.READER, Role.SUPPORT}
    assert verify(signed({"roles": []})).roles == frozenset()


def test_a_checkout_token_may_be_bound_to_a_shop() -> None:
    bound = verify(mint_token(SECRET, "till-1", [Role.CHECKOUT], shop="shop-a"))
    assert (bound.shop, bound.may_act_for_shop("shop-a"), bound.may_act_for_shop("shop-b")) == (
        "shop-a",
        True,
        False,
    )
    assert verify(mint_token(SECRET, "till", [Role.CHECKOUT])).may_act_for_shop("any")  # unbound
    # support and staff act for every shop, whatever the token's shop says
    assert Principal("sue", frozenset({Role.SUPPORT}), "shop-a").may_act_for_shop("shop-b")


def test_customer_data_is_for_support_and_staff() -> None:
    assert [r for r in Role if Principal("x", frozenset({r})).sees_customer_data] == [
        Role.STAFF,
        Role.SUPPORT,
    ]


def test_a_short_secret_is_refused_when_minting() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        mint_token("short", "ann", ALL_ROLES)


def test_without_any_verifier_nothing_is_accepted() -> None:
    with pytest.raises(AuthNotConfigured, match="AUTH_TOKEN_SECRET"):
        Verifier(secret=None, jwks_url=None)
    with pytest.raises(AuthNotConfigured):
        Verifier(secret="", jwks_url="")


def test_a_shared_secret_token_is_refused_where_only_an_identity_provider_is_trusted() -> None:
    only_provider = Verifier(secret=None, jwks_url="http://127.0.0.1:9/keys")
    assert "'HS256' are not accepted" in refusal(development_token(SECRET), only_provider)


# --- settings -----------------------------------------------------------------------------------------


def test_settings_refuse_to_start_a_service_without_a_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUTH_TOKEN_SECRET", "AUTH_JWKS_URL"):  # a shell with `infra.py env` exported has one
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="no token verifier configured: set AUTH_TOKEN_SECRET"):
        ServiceSettings(service_name="order", database_url="postgresql://x/y")
    with pytest.raises(ValidationError, match="at least 32"):
        ServiceSettings(service_name="order", database_url="postgresql://x/y", auth_token_secret="short")
    settings = ServiceSettings(
        service_name="order", database_url="postgresql://x/y", auth_token_secret=SECRET
    )
    assert SECRET not in repr(settings)  # a secret never shows in logs or tracebacks
    assert (settings.auth_issuer, settings.auth_audience) == ("backorder", "backorder")


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_TOKEN_SECRET", SECRET)
    monkeypatch.setenv("AUTH_JWKS_URL", "https://idp.example/keys")
    monkeypatch.setenv("AUTH_ISSUER", "https://idp.example/")
    monkeypatch.setenv("AUTH_AUDIENCE", "backorder-api")
    settings = AuthSettings()
    assert settings.auth_jwks_url == "https://idp.example/keys"
    verifier = Verifier.from_settings(settings)
    ours = mint_token(SECRET, "ann", ALL_ROLES, issuer="https://idp.example/", audience="backorder-api")
    assert verify(ours, verifier).subject == "ann"
    assert "not issued by 'https://idp.example/'" in refusal(development_token(SECRET), verifier)
    elsewhere = mint_token(SECRET, "ann", ALL_ROLES, issuer="https://idp.example/")
    assert "not meant for 'backorder-api'" in refusal(elsewhere, verifier)


# --- the FastAPI dependency ---------------------------------------------------------------------------


class Change(WithoutActor):
    note: str


def app_with_auth(*, installed: bool = True) -> FastAPI:
    app = FastAPI()

    @app.post("/stock")
    async def change(
        body: Change, who: Annotated[Principal, Depends(requires(Role.STAFF))]
    ) -> dict[str, str]:
        return {"actor": who.subject, "note": body.note}

    @app.get("/report", dependencies=[Depends(requires(Role.READER, Role.STAFF))])
    async def report() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    if installed:
        auth.install(app, AuthSettings(auth_token_secret=SECRET))
    return app


async def call(
    app: FastAPI, method: str, path: str, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)


async def test_401_without_a_valid_token_403_without_the_role() -> None:
    app = app_with_auth()
    missing = await call(app, "GET", "/report")
    assert (missing.status_code, missing.json()) == (401, {"detail": "this needs a bearer token"})
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="backorder"'
    basic = await call(app, "GET", "/report", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert (basic.status_code, basic.json()["detail"]) == (
        401,
        "the Authorization header must be 'Bearer <token>'",
    )
    expired = await call(app, "GET", "/report", mint_token(SECRET, "ann", ALL_ROLES, ttl_seconds=-120))
    assert (expired.status_code, expired.json()["detail"]) == (401, "the bearer token has expired")
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]

    checkout = await call(
        app, "POST", "/stock", mint_token(SECRET, "till", [Role.CHECKOUT, Role.READER]), json={}
    )
    assert (checkout.status_code, checkout.json()) == (
        403,
        {"detail": "this needs one of the roles staff; your token has checkout, reader"},
    )
    nothing = await call(app, "GET", "/report", mint_token(SECRET, "nobody", []))
    assert nothing.json()["detail"] == "this needs one of the roles staff, reader; your token has no role"
    assert (await call(app, "GET", "/report", mint_token(SECRET, "r", [Role.READER]))).status_code == 200
    assert (await call(app, "GET", "/health")).status_code == 200


async def test_the_actor_is_the_tokens_subject_and_a_body_naming_one_is_refused() -> None:
    app = app_with_auth()
    staff = mint_token(SECRET, "ann", [Role.STAFF])
    done = await call(app, "POST", "/stock", staff, json={"note": "damaged"})
    assert done.json() == {"actor": "ann", "note": "damaged"}
    named = await call(app, "POST", "/stock", staff, json={"note": "damaged", "actor": "bob"})
    assert named.status_code == 422
    assert auth.ACTOR_FROM_TOKEN in named.json()["detail"][0]["msg"]
    # The role is checked before the body: a caller without it learns nothing about the body's rules.
    assert (await call(app, "POST", "/stock", json={"actor": "bob"})).status_code == 401


def test_a_body_model_refuses_an_actor() -> None:
    class Body(WithoutActor):
        delta: int

    with pytest.raises(ValidationError, match="actor comes from the bearer token"):
        Body.model_validate({"delta": 1, "actor": "bob"})
    assert Body.model_validate({"delta": 1}).delta == 1
    assert issubclass(Body, BaseModel)


async def test_an_app_nobody_installed_auth_on_admits_nobody() -> None:
    refused = await call(app_with_auth(installed=False), "GET", "/report", development_token(SECRET))
    assert (refused.status_code, refused.json()["detail"]) == (
        503,
        "authentication is not configured on this service",
    )


def test_requires_needs_a_role() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        requires()


def test_the_openapi_document_shows_the_scheme_and_each_routes_roles() -> None:
    app = app_with_auth()
    document = app.openapi()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    change = document["paths"]["/stock"]["post"]
    assert (change["security"], change["x-roles"]) == ([{"bearer": []}], ["staff"])
    assert {"401", "403"} <= set(change["responses"])
    assert change["description"].endswith("Roles: staff.")
    assert document["paths"]["/report"]["get"]["x-roles"] == ["staff", "reader"]
    health = document["paths"]["/health"]["get"]
    assert "security" not in health and "x-roles" not in health
    assert auth.route_roles(app) == {
        ("POST", "/stock"): (Role.STAFF,),
        ("GET", "/report"): (Role.STAFF, Role.READER),
        ("GET", "/health"): None,
    }
    assert json.dumps(document)  # serialisable as served


# --- the command line ---------------------------------------------------------------------------------


def test_the_command_line_prints_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTH_TOKEN_SECRET", SECRET)
    assert (
        auth.main(["token", "--subject", "ann", "--role", "staff", "--role", "reader", "--shop", "s1"]) == 0
    )
    principal = verify(capsys.readouterr().out.strip())
    assert principal == Principal("ann", frozenset({Role.STAFF, Role.READER}), "s1")
    assert auth.main(["token"]) == 0  # a development token: all four roles, subject dev
    assert verify(capsys.readouterr().out.strip()) == Principal("dev", ALL_ROLES)


def test_the_command_line_needs_the_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTH_TOKEN_SECRET", raising=False)
    assert auth.main(["token"]) == 2
    assert "AUTH_TOKEN_SECRET must be set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        auth.main(["token", "--role", "admin"])


# --- an identity provider's keys (JWKS) ---------------------------------------------------------------

# RS256/ES256 need the cryptography package (PyJWT's "crypto" extra); without it AUTH_JWKS_URL is refused
# by the settings, and these tests cannot run.
needs_crypto = pytest.mark.skipif(
    importlib.util.find_spec("cryptography") is None, reason="RS256/ES256 need the cryptography package"
)


class KeyServer:
    """The identity provider's JWKS endpoint: serves `keys`, counts the fetches, can be slow or away."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.delay = 0.0
        self.down = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                time.sleep(owner.delay)
                if owner.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps({"keys": owner.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/keys"


@contextlib.contextmanager
def key_server() -> Iterator[KeyServer]:
    keys = KeyServer()
    thread = threading.Thread(target=keys.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield keys
    finally:
        keys.server.shutdown()
        keys.server.server_close()


def hmac_signed(key: bytes, **headers: Any) -> str:
    """An HS256 token signed by hand (PyJWT refuses an asymmetric key as an HMAC secret)."""

    def encoded(part: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")

    now = int(time.time())
    claims = {"sub": "mallory", "roles": ["staff"], "iat": now, "exp": now + 60, "iss": "backorder"}
    message = (
        encoded({"alg": "HS256", "typ": "JWT", **headers}) + b"." + encoded({**claims, "aud": "backorder"})
    )
    signature = base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).rstrip(b"=")
    return (message + b"." + signature).decode()


def rsa_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(private: Any, kid: str, algorithm: str) -> dict[str, Any]:
    family = jwt.algorithms.RSAAlgorithm if algorithm == "RS256" else jwt.algorithms.ECAlgorithm
    jwk = family.to_jwk(private.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}


def provider_token(private: Any, kid: str, algorithm: str, **claims: Any) -> str:
    return signed({"sub": "idp-user", "roles": ["support"], **claims}, private, algorithm, kid=kid)


@needs_crypto
async def test_tokens_of_an_identity_provider_are_checked_with_its_published_keys() -> None:
    rsa_private, ec_private = rsa_key(), ec_key()
    with key_server() as keys:
        keys.keys = [public_jwk(rsa_private, "r1", "RS256"), public_jwk(ec_private, "e1", "ES256")]
        verifier = Verifier(secret=SECRET, jwks_url=keys.url, refetch_interval_seconds=0.2)
        assert (await verifier.verify(provider_token(rsa_private, "r1", "RS256"))).subject == "idp-user"
        assert (await verifier.verify(provider_token(ec_private, "e1", "ES256"))).roles == {Role.SUPPORT}
        assert keys.fetches == 1  # cached
        assert (await verifier.verify(development_token(SECRET))).subject == "dev"  # both verifiers

        forged = provider_token(rsa_key(), "r1", "RS256")
        with pytest.raises(InvalidToken, match="signature is not valid"):
            await verifier.verify(forged)
        with pytest.raises(InvalidToken, match="not for ES256"):
            await verifier.verify(provider_token(ec_private, "r1", "ES256"))
        with pytest.raises(InvalidToken, match="names no key"):
            await verifier.verify(signed({}, ec_private, "ES256"))
        # The provider's public key as an HMAC secret (the classic algorithm confusion): an HS256 token
        # is only ever checked with AUTH_TOKEN_SECRET.
        from cryptography.hazmat.primitives import serialization

        public_pem = rsa_private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(InvalidToken, match="signature is not valid"):
            await verifier.verify(hmac_signed(public_pem, kid="r1"))


@needs_crypto
async def test_a_new_key_is_fetched_but_made_up_key_ids_cannot_make_us_flood_the_provider() -> None:
    first, rotated = rsa_key(), rsa_key()
    with key_server() as keys:
        keys.keys = [public_jwk(first, "r1", "RS256")]
        eager = Verifier(secret=None, jwks_url=keys.url, refetch_interval_seconds=0)
        assert (await eager.verify(provider_token(first, "r1", "RS256"))).subject == "idp-user"
        keys.keys = [public_jwk(rotated, "r2", "RS256")]  # the provider rotated its key
        assert (await eager.verify(provider_token(rotated, "r2", "RS256"))).subject == "idp-user"
        assert keys.fetches == 2

        patient = Verifier(secret=None, jwks_url=keys.url, refetch_interval_seconds=60)
        assert (await patient.verify(provider_token(rotated, "r2", "RS256"))).subject == "idp-user"
        before = keys.fetches
        for n in range(20):
            with pytest.raises(InvalidToken, match="has no key"):
                await patient.verify(provider_token(rotated, f"made-up-{n}", "RS256"))
        assert keys.fetches == before


@needs_crypto
async def test_fetching_the_keys_never_blocks_the_event_loop() -> None:
    private = rsa_key()
    with key_server() as keys:
        keys.keys, keys.delay = [public_jwk(private, "r1", "RS256")], 0.5
        verifier = Verifier(secret=None, jwks_url=keys.url)
        ticks = 0

        async def ticking() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(ticking())
        try:
            tokens = [provider_token(private, "r1", "RS256") for _ in range(5)]
            principals = await asyncio.gather(*(verifier.verify(t) for t in tokens))
        finally:
            ticker.cancel()
        assert {p.subject for p in principals} == {"idp-user"}
        assert ticks >= 10  # the loop ran on during the half second the keys took
        assert keys.fetches == 1  # one fetch for the five concurrent first tokens


@needs_crypto
async def test_keys_that_cannot_be_fetched_mean_503_not_401() -> None:
    private = rsa_key()
    with key_server() as keys:
        keys.down = True
        verifier = Verifier(secret=None, jwks_url=keys.url)
        with pytest.raises(KeysUnavailable, match="cannot be fetched"):
            await verifier.verify(provider_token(private, "r1", "RS256"))

        app = FastAPI()

        @app.get("/report", dependencies=[Depends(requires(Role.SUPPORT))])
        async def report() -> dict[str, str]:
            return {}

        auth.install(app, AuthSettings(auth_jwks_url=keys.url))
        answer = await call(app, "GET", "/report", provider_token(private, "r1", "RS256"))
        assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")

        keys.down = False
        keys.keys = [public_jwk(private, "r1", "RS256")]
        assert (await call(app, "GET", "/report", provider_token(private, "r1", "RS256"))).status_code == 200
