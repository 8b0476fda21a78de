"""URL checks for config values, done at load time so a bad URL is a located ``ConfigError``.

``urllib`` raises ``ValueError`` on a bad port (``redis://h:99999``) or a broken IPv6 host
(``redis://[::1:6379``) only when the URL is *used* (``.port``, ``.hostname``), which used to
surface as a traceback from whichever command first touched it. Every check here returns a
message (or None) and never raises; messages show the URL without its password and cut short.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

REDIS_SCHEMES = ("redis", "rediss", "unix")
HTTP_SCHEMES = ("http", "https")
_MAX_SHOWN = 80
_USERINFO = re.compile(r"//[^/@]*@")


def shown(url: str) -> str:
    """``url`` quoted for an error message: userinfo (password) removed, at most 80 characters."""
    safe = _USERINFO.sub("//***@", url)
    if len(safe) > _MAX_SHOWN:
        safe = safe[:_MAX_SHOWN] + "..."
    return f'"{safe}"'


def _host_and_port(url: str) -> str | None:
    """Problem with the network location of ``url``, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in 0-65535
        host = parts.hostname
    except ValueError as exc:
        return f"{exc} in {shown(url)}"
    if parts.scheme != "unix" and not host:
        return f"no host in {shown(url)}"
    return None


def redis_url_problem(url: str) -> str | None:
    """Why redis-py could not use ``url``, or None. Mirrors ``redis.connection.parse_url``
    without importing redis (loading a config stays light)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in REDIS_SCHEMES:
        return f"expected a redis://, rediss:// or unix:// URL, got {shown(url)}"
    problem = _host_and_port(url)
    if problem:
        return f"{problem}; expected e.g. redis://localhost:6379/0 (IPv6: redis://[::1]:6379/0)"
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if scheme != "unix":
        db = query.get("db", [None])[0]
        path = parts.path.strip("/")
        if db is not None and not db.isdigit():
            return f"the db parameter must be a number, in {shown(url)}"
        if db is None and path and not path.isdigit():
            return f"the path must be a database number (like /0), in {shown(url)}"
    return None


def http_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable http(s) base URL, or None."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in HTTP_SCHEMES:
        return f"expected an http(s) URL, got {shown(url)}"
    return _host_and_port(url)
