"""One redaction for everything that leaves the process: screen, events, evidence,
exports and error messages.

Two layers, both applied wherever text leaves:

* **Structural** (:func:`redact`): a connection string shown with its secrets replaced
  by ``***``. Which parts are secret is read by the driver's own parser, never by a
  pattern of ours: libpq (through ``psycopg.conninfo``) for PostgreSQL URIs *and*
  ``key=value`` strings, with libpq's own list of secret keywords (those it marks ``*``:
  ``password``, ``sslpassword``, ``oauth_client_secret``, whatever the installed libpq
  knows); redis-py's ``parse_url`` for Redis; pymongo's ``uri_parser`` for MongoDB; and
  ``urllib`` for http(s) and anything else. A string the driver cannot read is shown as
  ``***`` whole: what we cannot parse, we do not show.
* **By value** (:func:`scrub`, :func:`scrub_data`, :func:`scrub_json_bytes`): every secret
  the process has learnt is searched for in free text, in each form it can take there
  (as is, percent-encoded, libpq-quoted, JSON-escaped, ``repr``-escaped). The secrets are
  each password a driver's parser found in a target (:func:`remember_uri`) and each value
  an ``${ENV}`` placeholder was expanded to (:func:`remember`), whatever part of the
  target it landed in. This is the guarantee that holds when an error message, a row or
  a note quotes a secret in a shape no parser expected.

What it costs: a value of fewer than :data:`MIN_HUNTED` characters, or one that reads
as a number (a port, a database number), is not searched for in free text: it would blot
out ordinary words and numbers in every message and row (and inside JSON evidence a
masked number would no longer be JSON). Such a password is still redacted
wherever it stands in a connection string. Drivers are imported only when a connection
string of theirs is first redacted, so a command that touches no target loads none.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

MASK = "***"
MIN_HUNTED = 4
"""Shortest secret searched for in free text (see the module's docstring)."""

_lock = threading.Lock()
_values: set[str] = set()
_pending_uris: set[str] = set()
_seen_uris: set[str] = set()
_forms: tuple[str, ...] = ()
_json_forms: tuple[bytes, ...] = ()


# --------------------------------------------------------------------------- registry


def remember(*values: str) -> None:
    """Search for each of ``values`` (a secret) in every text that leaves from now on."""
    added = False
    with _lock:
        for value in values:
            if _hunted(value) and value not in _values:
                _values.add(value)
                added = True
        if added:
            _rebuild()


def remember_uri(uri: str) -> None:
    """Search, from now on, for the secrets the driver's parser finds in ``uri``.

    Cheap: the URI is parsed (and its driver imported) only when text is next scrubbed.
    """
    with _lock:
        if uri and uri not in _seen_uris:
            _pending_uris.add(uri)


def _hunted(value: object) -> bool:
    if not isinstance(value, str) or len(value) < MIN_HUNTED:
        return False
    try:
        float(value)  # a port, a database number, "1e3", "nan": not searched for
    except ValueError:
        return True
    return False


def forms(secret: str) -> set[str]:
    """The shapes ``secret`` takes in text: as is, percent-encoded (both ways), libpq-
    quoted, ``repr``- and JSON-escaped."""
    libpq = secret.replace("\\", "\\\\").replace("'", "\\'")
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret, safe=""),
        libpq,
        repr(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
    }


def _rebuild() -> None:
    """Recompute the search lists (caller holds the lock). Longest first, so that no
    secret is left half-replaced by a shorter one inside it."""
    global _forms, _json_forms
    shapes = {f for v in _values for f in forms(v) if len(f) >= MIN_HUNTED}
    _forms = tuple(sorted(shapes, key=len, reverse=True))
    json_shapes = {
        json.dumps(f, ensure_ascii=escaped)[1:-1].encode("utf-8", "surrogatepass")
        for f in shapes
        for escaped in (False, True)  # ensure_ascii on or off: \u00e9 or é
    }
    _json_forms = tuple(sorted(json_shapes, key=len, reverse=True))


def _settle() -> tuple[str, ...]:
    """Parse the URIs remembered since the last call; the current search list."""
    if not _pending_uris:
        return _forms
    with _lock:
        pending = list(_pending_uris)
        _pending_uris.clear()
        _seen_uris.update(pending)
    for uri in pending:
        try:
            found = _parse(uri)[1]
        except Exception:  # unreadable by its driver: hunt the whole string instead
            found = {uri}
        remember(*found)
    return _forms


def _forget_all() -> None:
    """Tests only: start from an empty registry."""
    global _forms, _json_forms
    with _lock:
        _values.clear()
        _pending_uris.clear()
        _seen_uris.clear()
        _forms, _json_forms = (), ()


# --------------------------------------------------------------------------- scrubbing


def scrub(text: str, uri: str | None = None) -> str:
    """``text`` with ``uri`` shown redacted and every known secret replaced by ``***``."""
    if uri:
        remember_uri(uri)
        if uri in text:
            text = text.replace(uri, redact(uri))
    for shape in _settle():
        if shape in text:
            text = text.replace(shape, MASK)
    return text


def scrub_data(value: Any) -> Any:
    """A JSON-ready value (an event payload, a row) with every known secret replaced in
    its strings, keys included. Returned as is when nothing is known."""
    shapes = _settle()
    if not shapes:
        return value
    return _walk(value, shapes)


def _walk(value: Any, shapes: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for shape in shapes:
            if shape in value:
                value = value.replace(shape, MASK)
        return value
    if isinstance(value, dict):
        return {_walk(k, shapes): _walk(v, shapes) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, shapes) for v in value]
    return value


def scrub_json_bytes(data: bytes) -> bytes:
    """UTF-8 JSON text (evidence lines) with every known secret replaced, as it appears
    inside a JSON string; the result is still valid JSON."""
    _settle()
    for shape in _json_forms:
        if shape in data:
            data = data.replace(shape, MASK.encode())
    return data


# --------------------------------------------------------------------------- connection strings


def redact(uri: str) -> str:
    """``uri`` as it may be shown: every secret its driver's parser finds, and the value
    of every secret parameter, replaced by ``***``; ``***`` when it cannot be parsed."""
    try:
        kind, found = _parse(uri)
        shown = _conninfo_shown(uri) if kind == "conninfo" else _uri_shown(uri, kind, found)
    except Exception:  # the driver cannot read it: show nothing of it
        return MASK
    for value in sorted(found, key=len, reverse=True):
        if _hunted(value):
            for shape in sorted(forms(value), key=len, reverse=True):
                shown = shown.replace(shape, MASK)
    return shown


def secrets_of(uri: str) -> set[str]:
    """The secret values the driver's parser finds in ``uri`` (decoded)."""
    try:
        return _parse(uri)[1]
    except Exception:
        return {uri}


def kind_of(uri: str) -> str:
    """Which parser reads ``uri``: postgres, conninfo (libpq ``key=value``), redis,
    mongo, http or other. libpq's own rule: without ``://`` it is ``key=value``."""
    scheme, sep, _rest = uri.partition("://")
    if not sep:
        return "conninfo"
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return "postgres"
    if scheme in ("redis", "rediss", "unix"):
        return "redis"
    if scheme in ("mongodb", "mongodb+srv"):
        return "mongo"
    if scheme in ("http", "https"):
        return "http"
    return "other"


def _parse(uri: str) -> tuple[str, set[str]]:
    """(kind, secret values) as the driver reads them; raises when it cannot."""
    kind = kind_of(uri)
    if kind in ("postgres", "conninfo"):
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(uri)
        return kind, {str(params[k]) for k in libpq_secret_keys() if params.get(k)}
    if kind == "redis":
        from redis.connection import parse_url

        found = set()
        password = parse_url(uri).get("password")
        if password:
            found.add(str(password))
        # redis-py lets the userinfo password win over ?password=; the other is a secret too
        found |= {v for k, v in _query_pairs(urlsplit(uri).query) if k == "password" and v}
        return kind, found
    if kind == "mongo":
        user_password, options = _mongo_parts(uri)
        found = {user_password} if user_password else set()
        for name, value in options.items():
            if name.lower() in MONGO_SECRET_OPTIONS and value:
                found.add(str(value))
        return kind, found
    parts = urlsplit(uri)
    found = set()
    if parts.password:
        found.add(unquote(parts.password))
    return kind, found


@lru_cache(maxsize=1)
def libpq_secret_keys() -> frozenset[str]:
    """The connection keywords the installed libpq itself says to hide (``dispchar``
    ``*``): its authority, not a list of ours."""
    from psycopg import pq

    return frozenset(
        opt.keyword.decode()
        for opt in pq.Conninfo.get_defaults()
        if opt.dispchar == b"*" and opt.keyword
    )


MONGO_SECRET_OPTIONS = frozenset(
    {"tlscertificatekeyfilepassword", "sslpemkeypassword", "authmechanismproperties"}
)
"""MongoDB URI options that hold a secret (pymongo names them but marks none): the key
file's password, and the mechanism properties (an AWS session token travels there)."""


def _mongo_parts(uri: str) -> tuple[str | None, dict[str, Any]]:
    """The password and options of a MongoDB URI, read by pymongo's own functions.

    pymongo's ``parse_uri`` would resolve a ``mongodb+srv`` host in DNS, which a
    redaction must never do, so the string is split the way its ``_validate_uri`` splits
    it (options at the first ``?``, userinfo at the last ``@``) and the pieces go to its
    public ``parse_userinfo`` and ``split_options``, which raise on what they cannot read.
    """
    from pymongo import uri_parser

    rest = uri.partition("://")[2]
    host_and_db, _, opts = rest.partition("?")
    host_part = host_and_db.partition("/")[0]
    password = None
    if "@" in host_part:
        userinfo = host_part.rpartition("@")[0]
        password = uri_parser.parse_userinfo(userinfo)[1] or None
    options: dict[str, Any] = {}
    if opts:
        options = dict(uri_parser.split_options(opts, validate=False, warn=False, normalize=False))
    return password, options


def _query_pairs(query: str) -> Iterable[tuple[str, str]]:
    for piece in query.split("&"):
        name, _eq, value = piece.partition("=")
        yield unquote_plus(name), unquote_plus(value)


def _uri_shown(uri: str, kind: str, found: set[str]) -> str:
    """A URI rebuilt from urllib's split with its secret parts masked: the userinfo's
    password, secret query parameters (every parameter of an http or unknown URI, which
    no driver can vouch for), and any fragment."""
    parts = urlsplit(uri)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hosts}" if colon else f"{user}@{hosts}"
    pieces = []
    for piece in parts.query.split("&") if parts.query else []:
        name, eq, value = piece.partition("=")
        if eq and value and _secret_param(kind, unquote_plus(name), unquote_plus(value), found):
            piece = f"{name}={MASK}"
        pieces.append(piece)
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    if pieces:
        shown += "?" + "&".join(pieces)
    if parts.fragment:
        shown += "#" + MASK
    return shown


def _secret_param(kind: str, name: str, value: str, found: set[str]) -> bool:
    if value in found:
        return True
    if kind == "postgres":
        return name in libpq_secret_keys()
    if kind == "redis":
        return name == "password"
    if kind == "mongo":
        return name.lower() in MONGO_SECRET_OPTIONS
    return True  # http and unknown schemes: no parser says which parameter is harmless


def _conninfo_shown(conninfo: str) -> str:
    """A libpq ``key=value`` string rebuilt by libpq's quoting with secret keys masked."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(conninfo)
    secret = libpq_secret_keys()
    shown = {k: (MASK if k in secret and v else v) for k, v in params.items()}
    return make_conninfo("", **shown)
