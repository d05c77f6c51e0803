"""Redaction: what a log line, an error, a banner or a page may show of a URL or a key.

One rule for the whole platform. ``redact_url`` hides what a URL carries as credentials (the password of its
user info, query values named like secrets, long opaque path segments such as a node provider's API key);
``Redactor`` hides known secret values wherever they appear in a text, and ``RedactingFilter`` applies a
``Redactor`` to every log record of a handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

MASK = "***"
MIN_SECRET_CHARS = 4  # a shorter "secret" would mask ordinary words; such values are refused elsewhere
SECRET_QUERY_KEYS = re.compile(r"(pass|pwd|secret|token|key|auth|sig|credential)", re.IGNORECASE)
RAW_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/]*):(?P<secret>.*)@(?P<rest>[^@]*)$")
OPAQUE_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]{20,}$")  # e.g. https://node.example/v3/<api key>


def redact_url(url: str) -> str:
    """``url`` without its credentials: password, secret-looking query values and, for network URLs (http, ws),
    opaque path segments masked. A URL without any is returned exactly as given."""
    raw = RAW_USERINFO.match(url)
    if raw is not None and any(c in raw["secret"] for c in "/?#@"):  # a password the URL parser would cut short
        return f"{raw['scheme']}{raw['user']}:{MASK}@{raw['rest']}"
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL we can parse: show its scheme at most
        return url.split(":", 1)[0] + ":" + MASK if ":" in url else MASK
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}"
    path = parts.path
    if parts.scheme.startswith(("http", "ws")):  # a file path (sqlite:///...) has no API keys in it
        path = "/".join(MASK if OPAQUE_SEGMENT.match(segment) else segment for segment in path.split("/"))
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    if (netloc, path, query) == (parts.netloc, parts.path, parts.query):
        return url
    prefix = f"{parts.scheme}://" if parts.scheme else "//"
    return prefix + netloc + path + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


def _redact_pair(pair: str) -> str:
    key, sep, value = pair.partition("=")
    return f"{key}={MASK}" if sep and value and SECRET_QUERY_KEYS.search(key) else pair


class Redactor:
    """Masks each of a set of secret values (and their URL-encoded forms) wherever it appears in a text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_CHARS:
                forms.update({secret, quote(secret, safe=""), secret.removeprefix("0x")})
        # longest first, so that a secret containing another is masked whole
        ordered = sorted((f for f in forms if len(f) >= MIN_SECRET_CHARS), key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(f) for f in ordered)) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text


class RedactingFilter(logging.Filter):
    """A logging filter that masks the secrets of a ``Redactor`` in each record's message and traceback."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redactor:
            return True
        message = record.getMessage()
        masked = self.redactor.text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        return True
