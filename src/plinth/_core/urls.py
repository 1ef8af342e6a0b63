"""URL and secret helpers: redact credentials before a URL, argument or parameter is stored,
logged or shown."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Example:
        >>> redact_url("postgresql://bob:secret@db:5432/x")
        'postgresql://bob:***@db:5432/x'
        >>> redact_url("sqlite:///tmp/a.db")
        'sqlite:///tmp/a.db'
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url
    # Keep the host and port text as written (the port may be malformed).
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# -- secrets in free text, arguments and parameters -------------------------------------------

MASK = "***"
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):[^\s@]+@")
_TOKEN = re.compile(r"\bplt_[A-Za-z0-9_\-]{4,}")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/\-]{8,}=*")
_SECRET_WORDS = (
    r"password|passwd|pwd|pass|secret|token|api[_\-]?key|apikey|access[_\-]?key|"
    r"secret[_\-]?key|private[_\-]?key|client[_\-]?secret|auth[_\-]?token|access[_\-]?token|"
    r"refresh[_\-]?token|credentials?|sig|signature|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|sas"
)
_ASSIGNMENT = re.compile(rf"(?i)(?P<key>\b(?:[A-Za-z0-9]+[_\-.])*(?:{_SECRET_WORDS}))=[^&\s\"',;]+")
_SECRET_NAME = re.compile(
    r"(?i)^(?:.*[_\-.])?(?:password|passwd|pwd|secret|api_?key|apikey|access_?key|secret_?key|"
    r"private_?key|client_?secret|auth_?token|access_?token|refresh_?token|credentials?|token)$"
)
_SECRET_FLAG = re.compile(r"^--?(?P<name>[A-Za-z0-9_\-.]+)$")


def is_secret_name(name: str) -> bool:
    """Whether a parameter, option or variable name says its value is a secret.

    Example:
        >>> [is_secret_name(n) for n in ("db_password", "API-KEY", "token", "max_tokens")]
        [True, True, True, False]
    """
    return bool(_SECRET_NAME.match(name.replace("-", "_")))


def redact_text(text: str) -> str:
    """Return ``text`` with the secrets it may hold masked: passwords in URLs, ``plt_`` tokens,
    bearer tokens and ``password=...``-style assignments (URL query parameters included).

    Example:
        >>> redact_text("from postgresql://bob:s3cret@db/x with plt_AbCdEf0123456789")
        'from postgresql://bob:***@db/x with plt_***'
        >>> redact_text("https://h/f?sig=abc&x=1 password=hunter2")
        'https://h/f?sig=***&x=1 password=***'
    """
    if not text:
        return text
    out = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    out = _TOKEN.sub(f"plt_{MASK}", out)
    out = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", out)
    return _ASSIGNMENT.sub(lambda m: f"{m.group('key')}={MASK}", out)


def redact_arguments(arguments: list[str]) -> list[str]:
    """Return command-line arguments with secrets masked, including the value after an option
    named like a secret (``--password X``, ``--token X``).

    Example:
        >>> redact_arguments(["--db", "postgresql://u:pw@h/d", "--token", "abc", "--lr", "0.1"])
        ['--db', 'postgresql://u:***@h/d', '--token', '***', '--lr', '0.1']
        >>> redact_arguments(["--api-key=abc"])
        ['--api-key=***']
    """
    out: list[str] = []
    hide_next = False
    for argument in arguments:
        text = str(argument)
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        flag = _SECRET_FLAG.match(text)
        if flag and is_secret_name(flag.group("name")):
            hide_next = True
            out.append(text)
            continue
        name, sep, _ = text.lstrip("-").partition("=")
        if sep and text.startswith("-") and is_secret_name(name):
            out.append(f"{text.partition('=')[0]}={MASK}")
            continue
        out.append(redact_text(text))
    return out


def redact_value(value: Any, name: str | None = None) -> Any:
    """Return a parameter value (or a JSON-like structure of them) with secrets masked.

    A value whose name says it is a secret (``password``, ``api_key``, ``token`` ...) is masked
    whole; strings anywhere are passed through :func:`redact_text`.

    Example:
        >>> redact_value({"db": "mysql://u:pw@h/d", "db_password": "x", "lr": 0.1})
        {'db': 'mysql://u:***@h/d', 'db_password': '***', 'lr': 0.1}
    """
    if name is not None and is_secret_name(name) and value is not None:
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value
