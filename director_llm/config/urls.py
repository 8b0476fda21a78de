"""URL checks for config values, done at load time so a bad URL is a located ``ConfigError``.

``urllib`` raises ``ValueError`` on a bad port (``redis://h:99999``) or a broken IPv6 host
(``redis://[::1:6379``) only when the URL is *used* (``.port``, ``.hostname``), which used to
surface as a traceback from whichever command first touched it. Every check here returns a
message (or None) and never raises; messages show the URL without its password and cut short.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

REDIS_SCHEMES = ("redis", "rediss", "unix")
#: Schemes asking for Redis Cluster: ``redis+cluster://host:port`` (``rediss+cluster://`` with
#: TLS) names one or more seed nodes; the client discovers the rest of the cluster from them.
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
HTTP_SCHEMES = ("http", "https")
_MAX_SHOWN = 80
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#@]*)@")
_QUERY_PARAM = re.compile(r"([?&;])([^=&#;]+)=([^&#;]*)")
#: Query parameter names (or parts of names) whose values are credentials.
SECRET_PARAM_HINTS = ("key", "token", "secret", "password", "passwd", "pwd", "sig", "credential", "auth")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter called ``name`` carries a credential (``key``, ``api_key``,
    ``access_token``, ``sig``, ``password``...)."""
    n = unquote(name).lower()
    return any(h in n for h in SECRET_PARAM_HINTS)


def url_secrets(url: str) -> list[str]:
    """The credentials inside ``url``, as written and percent-decoded: the userinfo password
    (or the user name when there is no password: ``https://TOKEN@host``) and the values of
    secret-looking query parameters. Never raises."""
    found: list[str] = []
    m = _USERINFO.match(url)
    if m:
        user, sep, password = m.group(2).partition(":")
        found.append(password if sep else user)
    for _, name, value in _QUERY_PARAM.findall(url.split("#", 1)[0]):
        if is_secret_param(name):
            found.append(value)
    out: list[str] = []
    for value in found:
        for v in (value, unquote(value)):
            if v and v not in out:
                out.append(v)
    return out


def redact_url(url: str, mask: str = "***") -> str:
    """``url`` with its credentials replaced by ``mask`` (``https://user:***@host/v1?key=***``),
    everything else kept. Never raises."""

    def userinfo(m: re.Match[str]) -> str:
        user, sep, _ = m.group(2).partition(":")
        return f"{m.group(1)}{user}:{mask}@" if sep else f"{m.group(1)}{mask}@"

    def param(m: re.Match[str]) -> str:
        return f"{m.group(1)}{m.group(2)}={mask}" if is_secret_param(m.group(2)) else m.group(0)

    return _QUERY_PARAM.sub(param, _USERINFO.sub(userinfo, url, count=1))


def redacted_url(url: str) -> str:
    """``url`` without user, password or query (safe to log): ``redis://host:port/db``.
    Never raises (a URL urllib cannot read gives a placeholder)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def shown(url: str) -> str:
    """``url`` quoted for an error message: credentials removed, at most 80 characters."""
    safe = redact_url(url)
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


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` asks for Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return _scheme(url) in CLUSTER_SCHEMES


def plain_redis_url(url: str) -> str:
    """``url`` with a cluster scheme turned into the one redis-py reads (``redis+cluster://h:p``
    -> ``redis://h:p``); any other URL unchanged."""
    scheme = _scheme(url)
    if scheme in CLUSTER_SCHEMES:
        return scheme.removesuffix("+cluster") + url[len(scheme) :]
    return url


def redis_url_problem(url: str) -> str | None:
    """Why redis-py could not use ``url``, or None. Mirrors ``redis.connection.parse_url``
    without importing redis (loading a config stays light)."""
    scheme = _scheme(url)
    if scheme in CLUSTER_SCHEMES:
        return _cluster_url_problem(url)
    if scheme not in REDIS_SCHEMES:
        return f"expected a redis://, rediss://, unix:// or (Redis Cluster) redis+cluster:// URL, got {shown(url)}"
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


def _cluster_url_problem(url: str) -> str | None:
    problem = _host_and_port(url)
    if problem:
        return f"{problem}; expected e.g. redis+cluster://10.0.0.1:7000"
    parts = urlsplit(url)
    db = parse_qs(parts.query).get("db", [None])[0]
    path = parts.path.strip("/")
    if (path and path != "0") or (db is not None and db != "0"):
        return (
            f"Redis Cluster has only database 0; drop the database number from {shown(url)} "
            "(e.g. redis+cluster://10.0.0.1:7000)"
        )
    return None


def http_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable http(s) base URL, or None."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in HTTP_SCHEMES:
        return f"expected an http(s) URL, got {shown(url)}"
    return _host_and_port(url)
