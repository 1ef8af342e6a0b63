"""OIDC bearer tokens: JWTs signed by an identity provider, checked against its JWKS.

A JWT is accepted when, and only when:

* its header names ``RS256`` or ``ES256`` (``none``, every ``HS*`` and anything else is
  refused before a key is looked at, so a public key can never be used as an HMAC secret);
* its signature verifies with the key of its ``kid`` in the issuer's JWKS;
* ``iss`` equals ``PLINTH_OIDC_ISSUER``, ``aud`` names ``PLINTH_OIDC_AUDIENCE``, ``exp`` is
  present and in the future (30 seconds of leeway for clock skew), ``nbf`` if present has
  passed, and ``sub`` is a non-empty string.

The principal's subject is ``oidc:<sub>``. Its role in a project comes from a binding for that
subject (``plinth role grant oidc:<sub> viewer``); when there is none, a ``plinth_role`` claim
naming one of the four roles applies to the workspace's project (``PLINTH_PROJECT``) only.
Bindings win over the claim, so an administrator can always narrow what the identity provider
hands out.

The JWKS comes from ``PLINTH_OIDC_JWKS_URL`` (``https://...``, ``http://`` only to a loopback
address, or a local file) or, when that is empty, from the issuer's
``/.well-known/openid-configuration``. Keys are cached for ten minutes; a token with an
unknown ``kid`` triggers a refetch at most once a minute (key rotation). When the issuer is
unreachable the keys already held stay in use, and a failed fetch is retried after ten
seconds at the earliest.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from plinth.errors import ConfigError, PlinthError

if TYPE_CHECKING:
    from plinth._core.settings import Settings

__all__ = ["ALGORITHMS", "JWKS_TTL_S", "InvalidJWT", "JwksSource", "OidcIdentity", "OidcVerifier"]

#: The only signature algorithms accepted.
ALGORITHMS = ("RS256", "ES256")
#: How long fetched signing keys are trusted before they are fetched again.
JWKS_TTL_S = 600.0
#: The least time between two fetches caused by an unknown key id.
REFETCH_S = 60.0
#: After a failed fetch, the least time before the next try.
RETRY_FAILED_S = 10.0
LEEWAY_S = 30
_MAX_JWKS_BYTES = 1 << 20
_MAX_JWT_CHARS = 16_384
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class InvalidJWT(PlinthError):
    """A bearer JWT is malformed, forged, expired or not meant for this server."""

    status_code = 401


@dataclass(frozen=True)
class OidcIdentity:
    """What a verified JWT says: its subject, expiry (epoch seconds) and claimed role."""

    subject: str
    expires_at: float
    claimed_role: str | None
    claims: dict[str, Any]


def _b64json(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def peek_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWT, unverified (to refuse a bad ``alg`` early).

    Example:
        >>> peek_header("eyJhbGciOiJub25lIn0.e30.")["alg"]
        'none'
    """
    parts = token.split(".")
    if len(parts) != 3 or len(token) > _MAX_JWT_CHARS:
        raise InvalidJWT("The bearer token is not a JWT (three base64url parts).")
    try:
        header = _b64json(parts[0])
    except (ValueError, UnicodeError) as exc:
        raise InvalidJWT("The bearer token's JWT header is not base64url JSON.") from exc
    if not isinstance(header, dict):
        raise InvalidJWT("The bearer token's JWT header is not a JSON object.")
    return header


class JwksSource:
    """Where signing keys come from, with a cache: a URL or a file, or discovery from the
    issuer.

    Example:
        >>> # keys = JwksSource("https://idp.example.com/.well-known/jwks.json").key_set()
    """

    def __init__(self, location: str, *, issuer: str = "", ttl_s: float = JWKS_TTL_S) -> None:
        self.location = location
        self.issuer = issuer
        self.ttl_s = ttl_s
        self._keys: Any = None
        self._fetched = 0.0
        self._failure: tuple[float, ConfigError] | None = None
        self._lock = threading.Lock()

    def key_set(self, *, refresh: bool = False) -> Any:
        """The issuer's keys as a ``joserfc`` KeySet, fetched when stale (or ``refresh`` and
        the last fetch is over a minute old)."""
        now = time.monotonic()
        with self._lock:
            stale = self._keys is None or now - self._fetched > self.ttl_s
            if stale or (refresh and now - self._fetched > REFETCH_S):
                if self._failure is not None and now - self._failure[0] < RETRY_FAILED_S:
                    if self._keys is None:
                        raise self._failure[1]
                    return self._keys  # keep the old keys while the issuer is unreachable
                try:
                    self._keys = self._load()
                except ConfigError as exc:
                    self._failure = (now, exc)
                    if self._keys is None:
                        raise
                    return self._keys
                self._failure = None
                self._fetched = now
            return self._keys

    def _load(self) -> Any:
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        location = self.location or self._discover()
        data = _read_json(location, "JWKS")
        try:
            return KeySet.import_key_set(data)
        except (JoseError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"The JWKS at '{location}' holds no usable key: {exc}.",
                hint="Point PLINTH_OIDC_JWKS_URL at the issuer's jwks_uri.",
            ) from exc

    def _discover(self) -> str:
        if not self.issuer:
            raise ConfigError(
                "OIDC needs the issuer's signing keys, and neither PLINTH_OIDC_JWKS_URL nor "
                "PLINTH_OIDC_ISSUER is set.",
                hint="Set PLINTH_OIDC_JWKS_URL to the issuer's jwks_uri.",
            )
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        found = _read_json(url, "OpenID configuration").get("jwks_uri")
        if not isinstance(found, str) or not found:
            raise ConfigError(
                f"The OpenID configuration at '{url}' names no jwks_uri.",
                hint="Set PLINTH_OIDC_JWKS_URL to the issuer's JWKS.",
            )
        return found


def _read_json(location: str, what: str) -> dict[str, Any]:
    parts = urlsplit(location)
    try:
        if parts.scheme in ("http", "https"):
            if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
                raise ConfigError(
                    f"The {what} URL '{location}' is plain http; keys fetched that way can be "
                    "swapped on the wire.",
                    hint="Use https:// (http:// is accepted for 127.0.0.1 and localhost only).",
                )
            import urllib.request

            request = urllib.request.Request(location, headers={"Accept": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as answer:
                raw = answer.read(_MAX_JWKS_BYTES + 1)
        else:
            path = Path(parts.path if parts.scheme == "file" else location).expanduser()
            raw = path.read_bytes()[: _MAX_JWKS_BYTES + 1]
        if len(raw) > _MAX_JWKS_BYTES:
            raise ConfigError(f"The {what} at '{location}' is over 1 MiB.")
        data = json.loads(raw)
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"Cannot read the {what} at '{location}': {exc}.",
            hint="Check PLINTH_OIDC_JWKS_URL / PLINTH_OIDC_ISSUER and that the issuer is up.",
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"The {what} at '{location}' is not a JSON object.")
    return data


class OidcVerifier:
    """Verify bearer JWTs for one issuer and audience.

    Example:
        >>> # verifier = OidcVerifier.from_settings(ws.settings)
        >>> # verifier.verify(jwt).subject
        >>> # 'oidc:0f3c...'
    """

    def __init__(self, issuer: str, audience: str, jwks: JwksSource) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        """The verifier the settings describe, or ``None`` when OIDC is off (no issuer).

        Example:
            >>> from plinth._core.settings import Settings
            >>> OidcVerifier.from_settings(Settings(home="/tmp/ws")) is None
            True
        """
        if not settings.oidc_issuer:
            return None
        if not settings.oidc_audience:
            raise ConfigError(
                "PLINTH_OIDC_ISSUER is set but PLINTH_OIDC_AUDIENCE is empty; without an "
                "audience, tokens the issuer made for any other application would be accepted.",
                hint="Set PLINTH_OIDC_AUDIENCE to the client id (aud) the issuer puts in tokens "
                "for Plinth.",
            )
        source = JwksSource(settings.oidc_jwks_url, issuer=settings.oidc_issuer)
        return cls(settings.oidc_issuer, settings.oidc_audience, source)

    def verify(self, token: str) -> OidcIdentity:
        """Check a compact JWT's algorithm, signature and claims; raise :class:`InvalidJWT`.

        Example:
            >>> # verifier.verify("eyJhbGciOiJSUzI1NiIs...").subject
        """
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError
        from joserfc.jws import JWSRegistry

        header = peek_header(token)
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidJWT(
                f"The JWT's algorithm {alg!r} is refused.",
                hint=f"Plinth accepts {' and '.join(ALGORITHMS)} tokens only.",
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidJWT("The JWT's key id (kid) is not a string.")
        registry = JWSRegistry(algorithms=list(ALGORITHMS))
        try:
            try:
                key = self.jwks.key_set().get_by_kid(kid)
            except InvalidKeyIdError:
                key = self.jwks.key_set(refresh=True).get_by_kid(kid)
            decoded = jwt.decode(token, key, algorithms=list(ALGORITHMS), registry=registry)
        except InvalidKeyIdError as exc:
            raise InvalidJWT(f"The JWT's key id {kid!r} is not in the issuer's JWKS.") from exc
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidJWT(
                f"The JWT's signature does not verify ({type(exc).__name__})."
            ) from exc
        return self._identity(decoded.claims)

    def _identity(self, claims: dict[str, Any]) -> OidcIdentity:
        from joserfc.errors import ExpiredTokenError, JoseError
        from joserfc.jwt import JWTClaimsRegistry

        rules = JWTClaimsRegistry(
            leeway=LEEWAY_S,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            rules.validate(claims)
        except ExpiredTokenError as exc:
            raise InvalidJWT(
                "The JWT has expired.", hint="Get a fresh token from the identity provider."
            ) from exc
        except JoseError as exc:
            raise InvalidJWT(f"The JWT's claims are not accepted: {exc}.") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > 200:
            raise InvalidJWT("The JWT's subject (sub) is empty or too long.")
        role = claims.get("plinth_role")
        return OidcIdentity(
            f"oidc:{subject}",
            float(claims["exp"]),
            role if isinstance(role, str) else None,
            claims,
        )
