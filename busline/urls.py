"""URL helpers; above all, keeping passwords out of logs, reprs and error messages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

#: ``scheme://user:password@`` anywhere in a text (a URL inside an error message, a list).
_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s,;'\"]*):[^@\s/]*@")


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe to log). Several URLs joined
    by commas (a list of broker nodes) are each masked."""
    if "," in url:
        return ",".join(_mask_one(part) for part in url.split(","))
    return _mask_one(url)


def mask_text(text: str) -> str:
    """Return ``text`` with the password of every URL in it replaced by ``***``: for error
    messages that quote what the user typed."""
    return _CREDENTIALS.sub(r"\1:***@", text)


def _mask_one(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, ""))


def scheme_of(url: str) -> str:
    """Return the lower-cased scheme of ``url`` (``memory``, ``amqp``, ...)."""
    return urlsplit(url).scheme.lower()
