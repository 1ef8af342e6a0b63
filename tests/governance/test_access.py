"""Identity and access: tokens (shown once, hashed, expiring, revocable, last use), the role
matrix, the embedded rule, OIDC JWTs against a JWKS (file and HTTP), rate limits, the CLI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import plinth
from plinth._core.clock import utcnow
from plinth.errors import ConfigError, NotFoundError
from plinth.governance import access, roles, tokens
from plinth.governance.access import Access, Forbidden, Principal, Unauthenticated, authorize
from plinth.governance.ratelimit import RateLimited, RateLimiter

ISSUER = "https://idp.example.test"
AUDIENCE = "plinth-api"


def _workspace(home: Path, **settings: Any) -> plinth.Workspace:
    return plinth.Workspace(settings=plinth.Settings(home=home, user="ana", **settings))


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[plinth.Workspace]:
    workspace = _workspace(tmp_path / "ws", auth=True)
    yield workspace
    workspace.close()


def _bearer(secret: str) -> str:
    return f"Bearer {secret}"


# -- tokens -----------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_only_its_hash_is_stored(ws):
    new = tokens.create_token(ws, "ci", role="viewer")
    secret = new.secret
    assert secret.startswith("plt_") and len(secret) == 4 + 43
    assert secret not in repr(new) and new.info.prefix == secret[4:12]
    assert all(secret not in json.dumps(t.to_dict()) for t in tokens.list_tokens(ws))
    from sqlalchemy import text

    with ws.catalog.session() as session:
        (stored,) = session.execute(text("SELECT token_hash FROM api_tokens")).one()
        every_row = [
            repr(tuple(row))
            for table in ("api_tokens", "audit_events", "role_bindings")
            for row in session.execute(text(f"SELECT * FROM {table}"))
        ]
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in row or secret[4:] in row for row in every_row)
    ws.catalog.close()  # checkpoint the WAL, then look at every byte on disk
    for path in ws.home.rglob("*"):
        if path.is_file():
            assert secret[4:].encode() not in path.read_bytes(), path


def test_two_tokens_never_share_a_secret_and_bad_names_are_refused(ws):
    secrets = {tokens.create_token(ws, f"t{i}").secret for i in range(20)}
    assert len(secrets) == 20
    for name in ("", "x" * 129, "bad\nname"):
        with pytest.raises(ConfigError, match="not a valid token name"):
            tokens.create_token(ws, name)
    with pytest.raises(ConfigError, match="not a role"):
        tokens.create_token(ws, "x", role="root")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90m", 5400), ("12h", 43200), ("30d", 30 * 86400), ("2w", 14 * 86400), ("1y", 365 * 86400)],
)
def test_lifetimes_parse(text, seconds):
    now = utcnow()
    assert tokens.parse_expiry(text, now=now) - now == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["soon", "0d", "-1d", "1.5d", "30", "d30"])
def test_bad_lifetimes_are_refused(text):
    with pytest.raises(ConfigError):
        tokens.parse_expiry(text)


def test_valid_expired_and_revoked_tokens(ws):
    valid = tokens.create_token(ws, "ok")
    expired = tokens.create_token(ws, "old")
    revoked = tokens.create_token(ws, "gone")
    from plinth.catalog.models import ApiToken

    with ws.catalog.session() as session:
        session.get(ApiToken, expired.info.id).expires_at = utcnow() - timedelta(seconds=1)
    tokens.revoke_token(ws, revoked.info.id)
    gate = Access(ws, ttl_s=0)
    principal = gate.authenticate(_bearer(valid.secret))
    assert principal.subject == "ana" and principal.token_id == valid.info.id
    with pytest.raises(Unauthenticated, match="expired at"):
        gate.authenticate(_bearer(expired.secret))
    with pytest.raises(Unauthenticated, match="was revoked"):
        gate.authenticate(_bearer(revoked.secret))
    statuses = {t.name: t.status() for t in tokens.list_tokens(ws)}
    assert statuses == {"ok": "active", "old": "expired", "gone": "revoked"}
    assert [t.name for t in tokens.list_tokens(ws, include_revoked=False)] == ["old", "ok"]


def test_revoking_is_audited_idempotent_and_removes_the_tokens_roles(ws):
    new = tokens.create_token(ws, "ci", role="deployer")
    first = tokens.revoke_token(ws, new.info.id)
    again = tokens.revoke_token(ws, new.info.id)
    assert first.revoked_at == again.revoked_at
    assert roles.list_bindings(ws) == []
    from plinth.catalog import audit

    events = [(e.action, e.resource) for e in audit.events(ws, newest_first=False)]
    rid = f"token:{new.info.id}"
    assert events == [
        ("token.create", rid),
        ("role.grant", f"role:default/{rid}"),
        ("token.revoke", rid),
    ]
    assert all(new.secret[4:] not in json.dumps(e.details) for e in audit.events(ws))
    assert audit.verify(ws).ok
    with pytest.raises(NotFoundError, match="plinth token list"):
        tokens.revoke_token(ws, "tok_missing")


def test_a_revoked_token_stops_working_within_the_cache_time(ws):
    new = tokens.create_token(ws, "ci")
    gate = Access(ws, ttl_s=0.3)
    gate.authenticate(_bearer(new.secret))
    tokens.revoke_token(ws, new.info.id)
    gate.authenticate(_bearer(new.secret))  # cached for up to ttl_s
    time.sleep(0.35)
    with pytest.raises(Unauthenticated, match="revoked"):
        gate.authenticate(_bearer(new.secret))


def test_last_used_is_written_at_most_once_a_minute(ws):
    from plinth.catalog.models import ApiToken

    new = tokens.create_token(ws, "ci")
    assert new.info.last_used_at is None
    gate = Access(ws, ttl_s=0)
    gate.authenticate(_bearer(new.secret))
    first = tokens.get_token(ws, new.info.id).last_used_at
    assert first is not None
    for _ in range(5):
        gate.authenticate(_bearer(new.secret))
    assert tokens.get_token(ws, new.info.id).last_used_at == first
    with ws.catalog.session() as session:
        session.get(ApiToken, new.info.id).last_used_at = first - timedelta(minutes=2)
    gate.authenticate(_bearer(new.secret))
    assert tokens.get_token(ws, new.info.id).last_used_at > first


def test_steady_state_authentication_asks_the_catalog_nothing(ws):
    from sqlalchemy import event

    new = tokens.create_token(ws, "ci", role="viewer")
    gate = Access(ws)
    gate.authenticate(_bearer(new.secret))
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(ws.catalog.engine, "before_cursor_execute", count)
    try:
        for _ in range(200):
            gate.authorize(gate.authenticate(_bearer(new.secret)), "predictions:read")
        with pytest.raises(Unauthenticated):
            gate.authenticate("Bearer plt_unknown")
        for _ in range(50):
            with pytest.raises(Unauthenticated):
                gate.authenticate("Bearer plt_unknown")
    finally:
        event.remove(ws.catalog.engine, "before_cursor_execute", count)
    assert len([s for s in statements if "api_tokens" in s]) == 1  # the one unknown token


@pytest.mark.parametrize(
    "header",
    [None, "", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Bearer   ", "bearer plt_x y",
     "Bearer plt_" + "a" * 20_000, "Bearer notatoken", "Bearer plt_é"],
)  # fmt: skip
def test_missing_and_malformed_credentials_are_401(ws, header):
    with pytest.raises(Unauthenticated) as caught:
        Access(ws).authenticate(header)
    assert caught.value.status_code == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


# -- roles ------------------------------------------------------------------------------------

#: The matrix as docs/security.md states it, written out independently of the code.
V, D, P, A = "viewer", "developer", "deployer", "admin"
EXPECTED = {
    **{f"{r}:read": V for r in ("tables", "features", "runs", "models", "deployments")},
    "monitoring:read": V,
    "predictions:read": V,
    **{f"{r}:write": D for r in ("tables", "features", "runs", "models", "monitoring")},
    "predictions:write": D,
    "models:promote": P,
    "deployments:write": P,
    "deployments:deploy": P,
    "tokens:read": A,
    "tokens:write": A,
    **{f"{r}:admin": A for r in roles.RESOURCES},
}


@pytest.mark.parametrize("role", roles.ROLES)
def test_the_role_matrix(role):
    rank = roles.ROLES.index
    granted = {p for p, least in EXPECTED.items() if rank(least) <= rank(role)}
    assert roles.permissions_of(role) == granted
    principal = Principal("u", "token", {"default": role})
    for permission, least in EXPECTED.items():
        if rank(least) <= rank(role):
            authorize(principal, permission, "default")
        else:
            with pytest.raises(Forbidden) as caught:
                authorize(principal, permission, "default")
            assert caught.value.status_code == 403
            assert f"plinth role grant u {least}" in str(caught.value)


def test_a_viewer_token_cannot_move_an_alias(ws):
    viewer = tokens.create_token(ws, "dashboard", role="viewer")  # owner ana is admin
    deployer = tokens.create_token(ws, "release", role="deployer")
    gate = Access(ws)
    as_viewer = gate.authenticate(_bearer(viewer.secret))
    with pytest.raises(Forbidden, match="may not models:promote") as caught:
        authorize(as_viewer, "models:promote", "default")
    assert caught.value.status_code == 403 and "its role there is viewer" in str(caught.value)
    authorize(as_viewer, "models:read", "default")
    authorize(gate.authenticate(_bearer(deployer.secret)), "models:promote", "default")


def test_roles_are_per_project_and_unknown_permissions_fail_loudly():
    dev = Principal("bo", "oidc", {"fraud": "developer"})
    authorize(dev, "models:write", "fraud")
    with pytest.raises(Forbidden, match="holds no role there"):
        authorize(dev, "models:read", "default")
    with pytest.raises(ValueError, match="Unknown permission"):
        authorize(dev, "models:fly", "fraud")
    authorize(access.OPEN, "tokens:admin", "anything")


def test_grant_revoke_list_and_audit(ws):
    assert roles.grant(ws, "bob", "developer").role == "developer"
    assert roles.grant(ws, "bob", "deployer", project="fraud").project == "fraud"
    assert roles.grant(ws, "bob", "viewer").role == "viewer"  # replaces
    listed = [(b.project, b.subject, b.role) for b in roles.list_bindings(ws)]
    assert listed == [("default", "bob", "viewer"), ("fraud", "bob", "deployer")]
    assert roles.revoke(ws, "bob", project="fraud").role == "deployer"
    with pytest.raises(NotFoundError, match="holds no role"):
        roles.revoke(ws, "bob", project="fraud")
    with pytest.raises(ConfigError, match="not a role"):
        roles.grant(ws, "bob", "owner")
    with pytest.raises(ConfigError, match="not a valid subject"):
        roles.grant(ws, "two words", "viewer")
    with pytest.raises(ConfigError, match="not a valid project"):
        roles.grant(ws, "bob", "viewer", project="../x")
    with pytest.raises(NotFoundError, match="No token"):
        roles.grant(ws, "token:tok_missing", "viewer")
    from plinth.catalog import audit

    grants = audit.events(ws, action="role.grant", newest_first=False)
    assert [e.details for e in grants] == [
        {"role": "developer", "previous": None},
        {"role": "deployer", "previous": None},
        {"role": "viewer", "previous": "developer"},
    ]
    assert audit.events(ws, action="role.revoke")[0].resource == "role:fraud/bob"


def test_the_embedded_rule_and_a_binding_replacing_it(ws, tmp_path):
    mine = tokens.create_token(ws, "mine")
    theirs = tokens.create_token(ws, "theirs", owner="bob")
    gate = Access(ws, ttl_s=0)
    assert gate.authenticate(_bearer(mine.secret)).roles == {"default": "admin"}
    assert gate.authenticate(_bearer(theirs.secret)).roles == {}
    roles.grant(ws, "ana", "viewer")
    assert gate.authenticate(_bearer(mine.secret)).roles == {"default": "viewer"}
    assert access.local_principal(ws).roles == {"default": "viewer"}
    shared = plinth.Settings(home=tmp_path, user="ana", database_url="postgresql://u@h/db")
    assert roles.implicit_role(shared, "ana", "default") is None


def test_auth_may_be_off_only_with_the_embedded_catalog(tmp_path):
    from plinth.serving.options import ServeOptions
    from plinth.serving.state import ServingState, targets_of

    shared = "postgresql://u:secret@db.internal:5432/plinth"
    off = plinth.Settings(home=tmp_path, database_url=shared)
    with pytest.raises(ConfigError, match="Authentication is off") as caught:
        access.require_auth_allowed(off, off.catalog_url)
    assert "secret" not in str(caught.value) and "PLINTH_AUTH=true" in str(caught.value)
    on = plinth.Settings(home=tmp_path, database_url=shared, auth=True)
    access.require_auth_allowed(on, on.catalog_url)
    embedded = plinth.Settings(home=tmp_path)
    access.require_auth_allowed(embedded, embedded.catalog_url)
    with pytest.raises(ConfigError, match="Authentication is off"):
        ServingState(plinth.Workspace(settings=off), targets_of(["m@champion"]), ServeOptions())
    assert "off" in access.auth_status(embedded) and "on" in access.auth_status(on)


def test_serve_refuses_auth_off_over_a_shared_catalog_before_starting(tmp_path, monkeypatch):
    from plinth.serving.server import serve

    monkeypatch.setenv("PLINTH_DATABASE_URL", "postgresql://u@db.internal/plinth")
    with pytest.raises(ConfigError, match="PLINTH_AUTH=true"):
        serve(["m@champion"], home=str(tmp_path / "ws"), workers=2)


# -- rate limits ------------------------------------------------------------------------------


def test_token_bucket_bursts_then_refills():
    now = [0.0]
    limiter = RateLimiter(2.0, clock=lambda: now[0])
    assert [limiter.check("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.check("a") == pytest.approx(0.5)
    assert limiter.check("b") == 0.0  # per key
    with pytest.raises(RateLimited) as caught:
        limiter.enforce("a")
    assert caught.value.status_code == 429 and caught.value.retry_after == 1
    now[0] = 0.5
    assert limiter.check("a") == 0.0
    with pytest.raises(ValueError):
        RateLimiter(0)


# -- OIDC -------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


class Idp:
    """A fake identity provider: an RSA and an EC signing key, their JWKS, and a signer."""

    def __init__(self, folder: Path) -> None:
        from joserfc.jwk import ECKey, KeySet, RSAKey

        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa1"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec1"})
        self.jwks = KeySet([self.rsa, self.ec]).as_dict(private=False)
        self.path = folder / "jwks.json"
        self.path.write_text(json.dumps(self.jwks))

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-42", "iat": now, "exp": now + 600}
        base.update(changes)
        return {k: v for k, v in base.items() if v is not None}

    def sign(self, claims: dict[str, Any] | None = None, *, key: Any = None, alg: str = "RS256",
             kid: str | None = None) -> str:  # fmt: skip
        from joserfc import jwt

        key = key or (self.ec if alg == "ES256" else self.rsa)
        header = {"alg": alg, "kid": kid or key.kid}
        return jwt.encode(header, claims or self.claims(), key, algorithms=[alg])


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Idp:
    return Idp(tmp_path_factory.mktemp("idp"))


class _JwksHandler(http.server.BaseHTTPRequestHandler):
    hits: list[str]
    documents: dict[str, bytes]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = self.documents.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body or b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server(idp: Idp) -> Iterator[tuple[str, list[str]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JwksHandler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _JwksHandler.hits = []
    _JwksHandler.documents = {
        "/jwks.json": json.dumps(idp.jwks).encode(),
        "/.well-known/openid-configuration": json.dumps({"jwks_uri": f"{base}/jwks.json"}).encode(),
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base, _JwksHandler.hits
    server.shutdown()
    server.server_close()


def _oidc_ws(tmp_path: Path, jwks: str, issuer: str = ISSUER) -> plinth.Workspace:
    return _workspace(
        tmp_path / "oidc", auth=True, oidc_issuer=issuer, oidc_audience=AUDIENCE,
        oidc_jwks_url=jwks,
    )  # fmt: skip


def _attacks(idp: Idp) -> dict[str, str]:
    """JWTs that must each be refused, by name."""
    from joserfc.jwk import RSAKey

    impostor = RSAKey.generate_key(2048, parameters={"kid": "rsa1"})
    now = int(time.time())
    public_pem = idp.rsa.as_pem(private=False)
    confused_header = {"alg": "HS256", "typ": "JWT", "kid": "rsa1"}
    unsigned = unsigned_jwt(confused_header, idp.claims())
    signing_input = unsigned.rsplit(".", 1)[0].encode()
    confused = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    return {
        "wrong issuer": idp.sign(idp.claims(iss="https://evil.example")),
        "wrong audience": idp.sign(idp.claims(aud="someone-else")),
        "expired": idp.sign(idp.claims(exp=now - 3600)),
        "no expiry": idp.sign(idp.claims(exp=None)),
        "not yet valid": idp.sign(idp.claims(nbf=now + 3600)),
        "no subject": idp.sign(idp.claims(sub=None)),
        "forged signature": idp.sign(key=impostor),
        "tampered claims": _retarget(idp.sign(), sub="admin"),
        "alg none": unsigned_jwt({"alg": "none", "typ": "JWT"}, idp.claims()),
        "alg None": unsigned_jwt({"alg": "None"}, idp.claims()),
        "HS256 with the public key": f"{unsigned.rsplit('.', 1)[0]}.{_b64(confused)}",
        "unknown key id": idp.sign(key=impostor, kid="rsa-rotated"),
        "three dots of junk": "a.b.c",
    }


def _retarget(token: str, **changes: Any) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(changes)
    return f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"


def test_oidc_tokens_from_a_jwks_file(tmp_path, idp):
    ws = _oidc_ws(tmp_path, str(idp.path))
    gate = Access(ws, ttl_s=0)
    principal = gate.authenticate(_bearer(idp.sign()))
    assert (principal.subject, principal.kind, principal.roles) == ("oidc:u-42", "oidc", {})
    with pytest.raises(Forbidden):
        gate.authorize(principal, "predictions:read")
    roles.grant(ws, "oidc:u-42", "viewer")
    principal = gate.authenticate(_bearer(idp.sign(alg="ES256")))
    gate.authorize(principal, "predictions:read")
    claimed = gate.authenticate(_bearer(idp.sign(idp.claims(sub="u-7", plinth_role="deployer"))))
    assert claimed.roles == {"default": "deployer"}
    bound_wins = idp.sign(idp.claims(plinth_role="admin"))
    assert gate.authenticate(_bearer(bound_wins)).roles == {"default": "viewer"}
    bogus_claim = idp.sign(idp.claims(sub="u-8", plinth_role="root"))
    assert gate.authenticate(_bearer(bogus_claim)).roles == {}
    ws.close()


def test_forged_expired_misdirected_and_unsigned_jwts_are_401(tmp_path, idp):
    ws = _oidc_ws(tmp_path, str(idp.path))
    gate = Access(ws, ttl_s=0)
    reasons = {
        "expired": "has expired",
        "wrong audience": "claims are not accepted",
        "alg none": "algorithm 'none' is refused",
        "HS256 with the public key": "algorithm 'HS256' is refused",
        "forged signature": "signature does not verify",
        "tampered claims": "signature does not verify",
    }
    for name, token in _attacks(idp).items():
        with pytest.raises(Unauthenticated) as caught:
            gate.authenticate(_bearer(token))
        assert caught.value.status_code == 401, name
        assert reasons.get(name, "") in str(caught.value), (name, str(caught.value))
    ws.close()


def test_oidc_keys_from_a_local_http_server_are_cached(tmp_path, idp, jwks_server):
    base, hits = jwks_server
    ws = _oidc_ws(tmp_path, f"{base}/jwks.json")
    gate = Access(ws, ttl_s=0)
    for _ in range(5):
        assert gate.authenticate(_bearer(idp.sign())).subject == "oidc:u-42"
    assert hits == ["/jwks.json"]
    with pytest.raises(Unauthenticated):
        gate.authenticate(_bearer(_attacks(idp)["forged signature"]))
    with pytest.raises(Unauthenticated, match="key id"):
        gate.authenticate(_bearer(_attacks(idp)["unknown key id"]))
    assert hits == ["/jwks.json"]  # refetches for unknown kids are throttled (once a minute)
    ws.close()


def test_oidc_discovery_from_the_issuer(tmp_path, idp, jwks_server):
    base, hits = jwks_server
    ws = _workspace(tmp_path / "disc", auth=True, oidc_issuer=base, oidc_audience=AUDIENCE)
    token = idp.sign(idp.claims(iss=base))
    assert Access(ws).authenticate(_bearer(token)).subject == "oidc:u-42"
    assert hits == ["/.well-known/openid-configuration", "/jwks.json"]
    ws.close()


def test_oidc_configuration_errors(tmp_path, idp):
    no_audience = _workspace(tmp_path / "a", auth=True, oidc_issuer=ISSUER)
    with pytest.raises(ConfigError, match="PLINTH_OIDC_AUDIENCE is empty"):
        Access(no_audience)
    plain_http = _oidc_ws(tmp_path, "http://idp.example.test/jwks.json")
    with pytest.raises(Unauthenticated, match="plain http"):
        Access(plain_http).authenticate(_bearer(idp.sign()))
    missing = _oidc_ws(tmp_path, str(tmp_path / "nope.json"))
    with pytest.raises(Unauthenticated, match="cannot be verified now"):
        Access(missing).authenticate(_bearer(idp.sign()))
    off = _workspace(tmp_path / "b", auth=True)
    with pytest.raises(Unauthenticated, match="OIDC is not configured"):
        Access(off).authenticate(_bearer(idp.sign()))


# -- CLI --------------------------------------------------------------------------------------


def _cli(home: Path, *args: str) -> int:
    from plinth.cli.main import main

    return main([*args, "--home", str(home)])


def test_cli_token_and_role_commands(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PLINTH_USER", "ana")
    home = tmp_path / "cli"
    assert _cli(home, "token", "create", "ci", "--role", "viewer", "--expires", "30d") == 0
    out = capsys.readouterr().out
    secret = out.splitlines()[0]
    assert secret.startswith("plt_") and "not shown again" in out
    assert _cli(home, "token", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert secret not in json.dumps(listed) and listed[0]["roles"] == ["viewer@default"]
    token_id = listed[0]["id"]
    assert _cli(home, "token", "list") == 0
    assert token_id in capsys.readouterr().out
    assert _cli(home, "role", "grant", "bob", "deployer", "--project", "fraud") == 0
    assert "Granted bob: deployer in project 'fraud'" in capsys.readouterr().out
    assert _cli(home, "role", "list", "--json") == 0
    bindings = json.loads(capsys.readouterr().out)
    assert {(b["subject"], b["role"]) for b in bindings} == {
        (f"token:{token_id}", "viewer"), ("bob", "deployer"), ("ana", "admin"),
    }  # fmt: skip
    assert _cli(home, "role", "list") == 0
    assert "implicit" in capsys.readouterr().out
    assert _cli(home, "role", "revoke", "bob", "--project", "fraud") == 0
    assert _cli(home, "token", "revoke", token_id) == 0
    assert "Revoked token" in capsys.readouterr().out
    assert _cli(home, "token", "revoke", token_id) == 0
    assert "already revoked" in capsys.readouterr().out
    assert _cli(home, "token", "list", "--all", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "revoked"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("token", "create", "x", "--role", "root"), "not a role"),
        (("token", "create", "x", "--expires", "soon"), "not a token lifetime"),
        (("token", "revoke", "tok_nope"), "No token has the id"),
        (("role", "grant", "bob", "superuser"), "not a role"),
        (("role", "revoke", "nobody"), "holds no role"),
    ],
)
def test_cli_errors_exit_1_with_a_message(tmp_path, capsys, args, message):
    assert _cli(tmp_path / "cli", *args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
