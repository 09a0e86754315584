"""One redaction for everything that leaves the process: screen, events, evidence,
exports and error messages.

(Just over 600 lines: one registry of secrets and the forms each takes, and the drivers'
parsers that find them; a second module would be a second place a secret could be missed.)

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
  the process has learnt is searched for in free text, in each form it can take there.
  Two passes. The first replaces whole forms (fast, always): as is, percent-encoded
  (hex in either case), libpq-quoted, JSON- and ``repr``-escaped (PHP's ``\\/`` and all
  ``\\u`` too), and base64 (standard and URL-safe, padded or not, and the part of it that
  any base64 holding the secret at any offset shares). The second
  (:func:`_escaped_pattern`, run only on text holding a ``%``) lets each character stand
  as itself or percent-encoded, in either case, once or twice, so an encoder with another
  safe set (JavaScript's, PHP's) or mixed case is still caught. The secrets are each
  password a driver's parser found in a target (:func:`remember_uri`), the HTTP Basic
  credentials an http target sends (``user:password``, whose base64 is the
  ``Authorization`` header a server may echo), and each value an ``${ENV}`` placeholder
  was expanded to (:func:`remember`), whatever part of the target it landed in. This is
  the guarantee that holds when an error message, a row or a note quotes a secret in a
  shape no parser expected.
* **Unreadable targets** (:func:`unreadable_by`): a target whose driver cannot parse it is
  refused before it is used, with a message that names the driver and quotes nothing:
  a parser's error quotes the token it choked on, and that token is often the password.

What it costs: a value of fewer than :data:`MIN_HUNTED` characters, or one that reads
as a number (a port, a database number), is not searched for in free text: it would blot
out ordinary words and numbers in every message and row (and inside JSON evidence a
masked number would no longer be JSON). Such a password is still redacted
wherever it stands in a connection string. Drivers are imported only when a connection
string of theirs is first redacted, so a command that touches no target loads none.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import warnings
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

MIN_BASE64 = 8
"""Shortest base64 fragment searched for: a shorter one would match by chance in long
base64 data (1 in 64**8 per position at this length)."""


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
    """The whole shapes ``secret`` takes in text: as is, percent-encoded (both ways, hex
    in either case), libpq-quoted, ``repr``- and JSON-escaped, and base64.

    Character-level mixtures (a server that escapes some characters and not others) are
    the second pass's (:func:`_escaped_pattern`)."""
    libpq = secret.replace("\\", "\\\\").replace("'", "\\'")
    encoded = {quote(secret, safe=""), quote(secret), quote_plus(secret, safe="")}
    encoded |= {_PERCENT.sub(lambda m: m.group(0).lower(), e) for e in encoded}
    return {
        secret,
        *encoded,
        secret.replace(" ", "+"),  # a form's encoding of a secret with nothing else to escape
        libpq,
        repr(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        # PHP's json_encode escapes slashes too (and, by default, all but ASCII)
        *(json.dumps(secret, ensure_ascii=a).replace("/", "\\/")[1:-1] for a in (False, True)),
        "".join(f"\\u{ord(c):04x}" for c in secret),  # every character \u-escaped
        *base64_forms(secret),
        *base64_forms(json.dumps(secret)[1:-1]),  # inside base64 of JSON (a JWT, a k8s Secret)
        *_recased(secret),
    }


CASED_FROM = 8
"""A secret this long or longer is also hunted upper-cased, lower-cased and as hex: a
server may normalise what it echoes ("BEARERSECRET…" in an error, attacker round J). A
shorter one is not: its lower-case form is too often an ordinary word."""


def _recased(secret: str) -> set[str]:
    """``secret`` as a server that normalises it shows it: in upper and lower case, and
    its UTF-8 bytes as hex in either case (from :data:`CASED_FROM` characters on)."""
    if len(secret) < CASED_FROM:
        return set()
    raw = secret.encode("utf-8", "surrogatepass").hex()
    return {secret.upper(), secret.lower(), raw, raw.upper()}


_PERCENT = re.compile(r"%[0-9A-F]{2}")


def base64_forms(secret: str) -> set[str]:
    """``secret`` as base64 shows it, standard and URL-safe, padded or not; and, for each
    of the three offsets it can start at inside longer data, the characters that come
    from its bytes alone, which every base64 of anything holding it contains. The
    characters at its two edges mix in the neighbours' bits and stay visible: at most
    two, each telling a few bits of the first or last byte."""
    data = secret.encode("utf-8", "surrogatepass")
    out: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
        first = -(-8 * offset // 6)  # the first character made of the secret's bits only
        last = 8 * (offset + len(data)) // 6  # one past the last such character
        out.add(encoded[first:last])
        if offset == 0:
            out |= {encoded, encoded.rstrip("=")}
    out |= {f.translate(_URLSAFE) for f in out}
    return {f for f in out if len(f) >= MIN_BASE64}


_URLSAFE = str.maketrans("+/", "-_")


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
    _rebuild_patterns()


def _rebuild_patterns() -> None:
    """Forget the second pass's patterns (caller holds the lock); :func:`_patterns`
    compiles them when text with a ``%`` next needs them. Compiling at each
    :func:`remember` made loading 30 targets take 1.5 s."""
    global _compiled
    _compiled = None


_compiled: tuple[re.Pattern[str], re.Pattern[bytes]] | None = None


def _patterns() -> tuple[re.Pattern[str], re.Pattern[bytes]] | None:
    """The second pass's patterns for text and for JSON bytes; None when nothing is known.
    Text without a ``%`` has nothing for the second pass that the first did not find;
    with one, the pass costs about 0.06 s per MB with three secrets (4 MB of JSON)."""
    global _compiled
    with _lock:
        if _compiled is None and _values:
            ordered = sorted(_values, key=len, reverse=True)
            text = "|".join(_escaped_pattern(v, json_text=False) for v in ordered)
            data = "|".join(_escaped_pattern(v, json_text=True) for v in ordered)
            _compiled = (re.compile(text), re.compile(data.encode("utf-8", "surrogatepass")))
        return _compiled


def _hex(value: int, width: int = 2) -> str:
    """A regular expression for ``value`` in hexadecimal, each letter in either case."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{width}X}")


def _char_pattern(char: str, json_text: bool) -> str:
    """A regular expression for one character of a secret as itself or percent-encoded
    (each byte in either case, once or twice: a URL inside a URL; ``+`` for a space);
    with ``json_text``, as it appears inside a JSON string, escaped by the encoder either
    way."""
    texts = {char, "+"} if char == " " else {char}
    if json_text:
        texts = {json.dumps(t, ensure_ascii=a)[1:-1] for t in texts for a in (False, True)}
    raw = char.encode("utf-8", "surrogatepass")
    alternatives = [re.escape(t) for t in sorted(texts, key=len, reverse=True)]
    alternatives.append("".join(f"%(?:25)?{_hex(b)}" for b in raw))
    return "(?:" + "|".join(alternatives) + ")"


def _escaped_pattern(secret: str, json_text: bool) -> str:
    """A regular expression for ``secret`` with each character as itself or percent-
    encoded (:func:`_char_pattern`): whatever an encoder's safe set and hex case."""
    return "".join(_char_pattern(char, json_text) for char in secret)


def _settle() -> tuple[str, ...]:
    """Parse the URIs remembered since the last call; the current search list."""
    if not _pending_uris:
        return _forms
    with _lock:
        pending = list(_pending_uris)
        _pending_uris.clear()
        _seen_uris.update(pending)
    for uri in pending:
        remember(*secrets_of(uri))
    return _forms


_DELIMITERS = re.compile(r"[:/?#\[\]@!$&'()*+,;=\s]+")
"""What URI syntax splits at (RFC 3986's delimiters) and whitespace: where a parser that
gave up cuts the token it quotes."""


def _unparsed_secrets(uri: str) -> set[str]:
    """What to hunt for in a target no driver could read: the whole string and, of a
    URI, everything between ``scheme://`` and its last ``@`` that follows the user name,
    whole and in the pieces a parser would cut it into at URI delimiters (redis-py cut
    ``:R3dis#Secret@h`` at ``#`` and quoted ``R3dis`` as a port). Such a target is refused
    before it is used (:func:`unreadable_by`); this is the net under that refusal, for any
    message that quoted a driver anyway."""
    found = {uri}
    _scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest:
        userinfo = rest.rpartition("@")[0]
        _user, colon, password = userinfo.partition(":")
        if colon and password:
            found.add(password)
            found |= {piece for piece in _DELIMITERS.split(password) if piece}
    return found


def unreadable_by(uri: str) -> str | None:
    """The driver whose parser cannot read ``uri`` (``"libpq"``, ``"redis-py"``,
    ``"pymongo"``, ``"urllib"``), or None when it reads it or no driver of ours claims it.

    Callers refuse such a target with a message that names the driver and shows nothing
    of the value: a parser's error quotes the token it stopped at, which is often the
    password (``invalid percent-encoded token: "50%off…"``).
    """
    kind = kind_of(uri)
    if kind == "conninfo" and "=" not in uri:
        return None  # not a libpq string either ("local:" is a shell target)
    if kind == "other":
        return None
    try:
        _parse(uri, strict=True)
    except Exception:
        return DRIVERS[kind]
    return None


DRIVERS = {
    "postgres": "libpq",
    "conninfo": "libpq",
    "redis": "redis-py",
    "mongo": "pymongo",
    "http": "urllib",
}
"""Which parser reads each kind of connection string (named in refusals)."""


def basic_credentials(uri: str) -> str | None:
    """The ``user:password`` an http target sends as HTTP Basic auth (its base64 is the
    ``Authorization`` header), or None when it has no userinfo. The http adapter builds
    its header from this, so what is hunted is exactly what is sent."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return None
    return f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"


def _forget_all() -> None:
    """Tests only: start from an empty registry."""
    global _forms, _json_forms
    with _lock:
        _values.clear()
        _pending_uris.clear()
        _seen_uris.clear()
        _forms, _json_forms = (), ()
        _rebuild_patterns()


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
    return _second_pass(text)


def shortened(text: str, width: int, keep: int | None = None, tail: str = "…") -> str:
    """``text`` with its known secrets masked, then, when longer than ``width``, cut to
    its first ``keep`` characters (``width`` unless given) and ``tail``. Masking comes
    first: a cut made before it leaves a secret's first characters, which no later scrub
    recognises (a 61-character value ending in a password showed all but its last letter
    on screen and in the timeline)."""
    text = scrub(text)
    return text if len(text) <= width else text[: width if keep is None else keep] + tail


def _second_pass(text: str) -> str:
    if "%" not in text:
        return text
    patterns = _patterns()
    return patterns[0].sub(MASK, text) if patterns else text


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
        return _second_pass(value)
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
    if b"%" not in data:
        return data
    patterns = _patterns()
    return patterns[1].sub(MASK.encode(), data) if patterns else data


# --------------------------------------------------------------------------- connection strings


def redact(uri: str) -> str:
    """``uri`` as it may be shown: every secret its driver's parser finds, and the value
    of every secret parameter, replaced by ``***``; ``***`` when it cannot be parsed."""
    try:
        kind, found = _parse(uri, strict=True)
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
    if kind_of(uri) == "conninfo" and "=" not in uri:
        # Neither a URI nor libpq's key=value ("local:", a shell target): no parser
        # claims it, so it has no place for a password. A ${ENV} value in it is hunted
        # by value anyway (targets.expand remembers it).
        return set()
    try:
        return _parse(uri, strict=True)[1]
    except Exception:  # unreadable by its driver: hunt what could be its password
        pass
    found = _unparsed_secrets(uri)
    with contextlib.suppress(Exception):  # what a lenient reading calls secret, too
        found |= _parse(uri)[1]
    return found


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


def _parse(uri: str, strict: bool = False) -> tuple[str, set[str]]:
    """(kind, secret values) as the driver reads them; raises when it cannot. ``strict``
    also checks what the driver checks before it connects (MongoDB's hosts and option
    values, a URL's port), not only what holds secrets."""
    kind = kind_of(uri)
    if kind in ("postgres", "conninfo"):
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(uri)
        if strict:
            _libpq_connectable(params, kind)
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
        user_password, options = _mongo_parts(uri, strict)
        found = {user_password} if user_password else set()
        for name, value in options.items():
            if name.lower() in MONGO_SECRET_OPTIONS and value:
                found.add(str(value))
        return kind, found
    parts = urlsplit(uri)
    if strict:
        _ = parts.port, parts.hostname  # urllib raises here on a bad port, like the adapter
    found = set()
    if parts.password:
        found.add(unquote(parts.password))
    credentials = basic_credentials(uri) if kind == "http" else None
    if credentials is not None:
        found.add(credentials)  # the Authorization header carries it, as base64
        if not parts.password and parts.username:
            found.add(unquote(parts.username))  # a token as the user: the whole credential
    return kind, found


def _libpq_connectable(params: dict[str, Any], kind: str) -> None:
    """Raise for what libpq's URI parser accepts but its connect then quotes back: a port
    that is not a number (``postgresql://u:pa/ss@h`` reads as host ``u``, port ``pa``:
    "invalid integer value "pa" for connection option "port"") and, in a URI, a host
    holding ``@`` (libpq ends the userinfo at the first ``@``, so ``u:p@ss@h`` is password
    ``p`` on host ``ss@h``). A leading ``@`` is an abstract socket's name, and allowed."""
    for piece in str(params.get("port") or "").split(","):
        if piece.strip() and not piece.strip().isdigit():
            raise ValueError("a port that is not a number")
    if kind == "postgres":
        for host in str(params.get("host") or "").split(","):
            if "@" in host[1:]:
                raise ValueError("a host holding @")


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


def _mongo_parts(uri: str, strict: bool = False) -> tuple[str | None, dict[str, Any]]:
    """The password and options of a MongoDB URI, read by pymongo's own functions.

    pymongo's ``parse_uri`` would resolve a ``mongodb+srv`` host in DNS, which a
    redaction must never do, so the string is split the way its ``_validate_uri`` splits
    it (options at the first ``?``, userinfo at the last ``@``) and the pieces go to its
    public ``parse_userinfo`` and ``split_options``, which raise on what they cannot read.
    ``strict`` also reads the hosts with its ``split_hosts`` and validates the options'
    values, as ``MongoClient`` will.
    """
    from pymongo import uri_parser

    scheme, _, rest = uri.partition("://")
    host_and_db, _, opts = rest.partition("?")
    host_part = host_and_db.partition("/")[0]
    password = None
    hosts = host_part
    if "@" in host_part:
        userinfo, _, hosts = host_part.rpartition("@")
        password = uri_parser.parse_userinfo(userinfo)[1] or None
    options: dict[str, Any] = {}
    if opts:
        options = dict(uri_parser.split_options(opts, validate=False, normalize=False))
        if strict:
            with warnings.catch_warnings():
                # As MongoClient reads them (validate, warn=True): an unknown option or a
                # bad value is dropped with a warning, not refused; the warning is not
                # ours to show. What is secret is still read from the unvalidated ones.
                warnings.simplefilter("ignore")
                uri_parser.split_options(opts, validate=True, warn=True, normalize=False)
    if strict:
        if "/" in hosts or not hosts:
            raise ValueError("unreadable hosts")
        srv = scheme.lower() == "mongodb+srv"
        uri_parser.split_hosts(hosts, default_port=None if srv else 27017)
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
    return _as_libpq_reads(uri, shown) if kind == "postgres" else shown


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


def _as_libpq_reads(uri: str, shown: str) -> str:
    """``shown`` (urllib's rebuild of a PostgreSQL URI) when libpq, which connects, reads
    it back as ``uri`` with only its secrets masked; else libpq's ``key=value`` rendering.
    libpq reads ``#`` and ``?`` in the userinfo as part of the password where urllib
    starts a fragment or query: ``u:pw#tail@h`` was shown as ``u:pw#***``."""
    from psycopg.conninfo import conninfo_to_dict

    keys = libpq_secret_keys()
    meant = {k: (MASK if k in keys and v else str(v)) for k, v in conninfo_to_dict(uri).items()}
    try:
        read_back = {k: str(v) for k, v in conninfo_to_dict(shown).items()}
    except Exception:
        read_back = {}  # libpq cannot read urllib's rebuild: they disagree
    return shown if read_back == meant else _conninfo_shown(uri)


def _conninfo_shown(conninfo: str) -> str:
    """A libpq ``key=value`` string rebuilt by libpq's quoting with secret keys masked."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(conninfo)
    secret = libpq_secret_keys()
    shown = {k: (MASK if k in secret and v else v) for k, v in params.items()}
    return make_conninfo("", **shown)


def libpq_secret_names() -> frozenset[str]:
    """:func:`libpq_secret_keys` and the environment variables libpq reads them from
    (``PGPASSWORD``), lower-cased: the names a ``NAME=value`` or ``NAME: value`` in a
    message gives a secret by, as the installed libpq lists them."""
    from psycopg import pq

    names = set(libpq_secret_keys())
    for opt in pq.Conninfo.get_defaults():
        if opt.dispchar == b"*" and opt.envvar:
            names.add(opt.envvar.decode().lower())
    return frozenset(names)
