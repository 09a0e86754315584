"""Diagnostics without a database: typed parameters, their place in a query, verdicts.

A parameter's value is coerced to its declared type and then placed into the query's
structure where the playbook wrote ``{$param: name}``; it is never pasted into a
string, so a value cannot turn into an operator or a second statement. Expectations
turn the numbers a run produced into a verdict, with the numbers that decided it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from playbook.core.model import Expectation, Param, ParamRef
from playbook.core.values import ObjectIdValue
from playbook.errors import UsageError

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\Z")
_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}\Z")
# Numbers are ASCII: int() and float() also take any Unicode digit ("٣" is 3), spaces,
# underscores ("1_000") and, for float(), "nan" and "inf"; a parameter is what a person
# reads on the command line, so it is spelt one way.
_INT = re.compile(r"-?[0-9]{1,19}")
"""At most 19 digits: a 64-bit integer, what every back end takes (and int() refuses
past 4,300 digits with a ValueError of its own)."""
_INT64 = range(-(2**63), 2**63)
_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

PASS = "pass"
WARN = "warn"
FAIL = "fail"
ERROR = "error"
_RANK = {PASS: 0, WARN: 1, FAIL: 2, ERROR: 3}


class ParamError(UsageError):
    """A parameter is missing or does not have its declared type."""


def _coerce_one(name: str, kind: str, raw: object) -> object:
    text = raw.strip() if isinstance(raw, str) else raw
    if kind == "string":
        if not isinstance(text, str):
            raise ParamError(f"Parameter {name!r} must be text.")
        return text
    if kind == "int":
        if isinstance(text, bool) or not (
            isinstance(text, int) or (isinstance(text, str) and _INT.fullmatch(text))
        ):
            raise ParamError(
                f"Parameter {name!r} must be a whole number in ASCII digits (0-9), "
                f"not {_shown(raw)}."
            )
        whole = int(text)
        if whole not in _INT64:  # what databases and drivers take (64 bits)
            raise ParamError(
                f"Parameter {name!r} is out of range (a 64-bit integer): {_shown(raw)}."
            )
        return whole
    if kind == "float":
        plain = isinstance(text, int | float) and not isinstance(text, bool)
        spelt = isinstance(text, str) and _FLOAT.fullmatch(text) is not None
        number = float(text) if plain or spelt else None  # type: ignore[arg-type]
        if number is None or not math.isfinite(number):  # inf and nan: no number at all
            raise ParamError(
                f"Parameter {name!r} must be a finite number in ASCII digits (such as 2.5 "
                f"or 1e-3), not {_shown(raw)}."
            )
        return number
    if kind == "bool":
        if isinstance(text, bool):
            return text
        if isinstance(text, str) and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ParamError(f"Parameter {name!r} must be true or false, not {raw!r}.")
    if kind == "datetime":
        return _moment(name, text, raw)
    if kind == "objectid":
        if not isinstance(text, str) or not _OBJECT_ID.match(text):
            raise ParamError(
                f"Parameter {name!r} must be a 24-character hex ObjectId, not {raw!r}."
            )
        return ObjectIdValue(text.lower())
    if kind == "field":
        if not isinstance(text, str) or not _FIELD.match(text):
            raise ParamError(
                f"Parameter {name!r} must be a field name (letters, digits, _ and dots; "
                f"not starting with $), not {raw!r}."
            )
        return text
    raise ParamError(f"Parameter {name!r} has an unknown type {kind!r}.")


def _shown(raw: object) -> str:
    """``raw`` quoted for a message, cut short (a parameter may be a screenful)."""
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "…"


def _moment(name: str, text: object, raw: object) -> datetime:
    """A datetime parameter in UTC; a number is seconds since 1970 (a ``default_from``
    takes a time from an earlier run's number, and a database decides that number).

    Out of range is a usage error naming the parameter: Python's datetime holds years 1
    to 9999 in UTC, and ``9999-12-31T23:59:59-14:00`` is past it once in UTC.
    """
    out_of_range = ParamError(
        f"Parameter {name!r} is out of range: {_shown(raw)} is not a time between the "
        "years 1 and 9999 in UTC.",
        "A default taken from an earlier run's number is that run's answer: check it.",
    )
    if isinstance(text, datetime):
        moment = text
    elif isinstance(text, int | float) and not isinstance(text, bool):
        try:
            return datetime.fromtimestamp(text, UTC)
        except (OverflowError, OSError, ValueError):
            raise out_of_range from None
    else:
        try:
            moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            raise ParamError(
                f"Parameter {name!r} must be an ISO 8601 time such as "
                f"2026-03-14T02:10:00Z, not {_shown(raw)}."
            ) from None
    if moment.tzinfo is None:
        raise ParamError(f"Parameter {name!r} needs a time zone (e.g. a trailing Z for UTC).")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise out_of_range from None


def coerce(name: str, param: Param, raw: object) -> object:
    """``raw`` (usually text from the command line) as the parameter's declared type."""
    if param.type == "list":
        if isinstance(raw, str):
            stripped = raw.strip()
            if stripped.startswith("["):
                try:
                    items = json.loads(stripped)
                except json.JSONDecodeError:
                    raise ParamError(f"Parameter {name!r}: not a JSON list: {raw!r}.") from None
            else:
                items = [part for part in stripped.split(",") if part.strip()]
        elif isinstance(raw, list):
            items = raw
        else:
            raise ParamError(f"Parameter {name!r} must be a list.")
        value: object = [_coerce_one(name, param.items or "string", item) for item in items]
    else:
        value = _coerce_one(name, param.type, raw)
    if param.choices and value not in param.choices:
        allowed = ", ".join(map(str, param.choices))
        raise ParamError(f"Parameter {name!r} must be one of: {allowed}; got {raw!r}.")
    return value


def resolve(params: Mapping[str, Param], given: Mapping[str, object]) -> dict[str, object]:
    """Every parameter's typed value from ``given`` or its default; all problems at once."""
    unknown = sorted(set(given) - set(params))
    problems: list[str] = []
    if unknown:
        known = ", ".join(sorted(params)) or "none"
        problems.append(
            f"unknown parameter(s) {', '.join(unknown)} (this diagnostic takes: {known})"
        )
    values: dict[str, object] = {}
    for name, param in params.items():
        if name in given:
            raw = given[name]
        elif param.default is not None:
            raw = param.default
        else:
            problems.append(
                f"missing {name} ({param.type}{': ' + param.description if param.description else ''})"
            )
            continue
        try:
            values[name] = coerce(name, param, raw)
        except ParamError as exc:
            problems.append(exc.title)
    if problems:
        raise ParamError(
            "The diagnostic's parameters are not right: " + "; ".join(problems),
            "Give them with --set NAME=VALUE.",
        )
    return values


def substitute(structure: object, values: Mapping[str, object]) -> object:
    """``structure`` with every ``{$param: name}`` replaced by the typed value.

    ``{$param: name, as: field_ref}`` becomes ``"$" + value`` (an aggregation field
    path), and a mapping key ``"$param:name"`` becomes the field named by the value.
    """
    if isinstance(structure, dict):
        if "$param" in structure:
            name = str(structure["$param"])
            if name not in values:
                raise ParamError(f"The query uses parameter {name!r}, which has no value.")
            value = values[name]
            if structure.get("as") == "field_ref":
                if not isinstance(value, str) or not _FIELD.match(value):
                    raise ParamError(
                        f"Parameter {name!r} is used as a field path; it must be a field name."
                    )
                return "$" + value
            return value
        out: dict[str, object] = {}
        for key, child in structure.items():
            if isinstance(key, str) and key.startswith("$param:"):
                name = key.removeprefix("$param:")
                value = values.get(name)
                if not isinstance(value, str) or not _FIELD.match(value):
                    raise ParamError(f"Parameter {name!r} is used as a field name; it must be one.")
                key = value
            out[key] = substitute(child, values)
        return out
    if isinstance(structure, list):
        return [substitute(item, values) for item in structure]
    return structure


# --------------------------------------------------------------------------- verdicts

_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}
_SYMBOL = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@dataclass(frozen=True)
class Check:
    """One expectation against the number a run produced."""

    metric: str
    op: str
    expected: object
    actual: object
    ok: bool
    verdict: str
    because: str = ""
    times: bool = False
    """Both sides are times (seconds since the epoch): shown as UTC times."""

    def describe(self) -> str:
        mark = "ok" if self.ok else self.verdict.upper()
        actual, expected = repr(self.actual), repr(self.expected)
        if self.times:
            actual, expected = _utc(self.actual), _utc(self.expected)
        return f"{self.metric} = {actual} (healthy: {_SYMBOL[self.op]} {expected}): {mark}"


def _utc(seconds: object) -> str:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return repr(seconds)
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (ValueError, OverflowError, OSError):  # past year 9999: no calendar shows it
        return f"{seconds!r} (no time a calendar holds)"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a run: pass, warn, fail or error, and what decided it."""

    verdict: str
    checks: list[Check] = field(default_factory=list)
    message: str = ""


def expected_value(expectation: Expectation, values: Mapping[str, object]) -> object:
    """The number an expectation compares with: its value, or a parameter's (a time as
    seconds since the epoch)."""
    target = expectation.value
    if isinstance(target, ParamRef):
        found = values.get(target.param)
        return found.timestamp() if isinstance(found, datetime) else found
    return target


def evaluate(
    expectations: list[Expectation],
    metrics: Mapping[str, object],
    values: Mapping[str, object] | None = None,
    now: float | None = None,
) -> Verdict:
    """The verdict of a run whose numbers are ``metrics``; the worst check decides.

    A number the run did not produce is an error, unless another check already failed
    (a missing heartbeat has no age: "missing" is the finding, not an error).
    ``values`` are the run's parameters, for expectations that compare with one.
    ``now`` is this machine's clock (seconds since the epoch) when the run read its
    numbers: a number compared with a time parameter is read as a time too, and one
    dated more than :data:`SKEW_TOLERANCE` ahead of ``now`` cannot be judged, whatever
    spelling it came in (an ISO text, epoch seconds or milliseconds as a JSON number).
    """
    checks: list[Check] = []
    worst = PASS
    missing: list[str] = []
    undefined: list[str] = []
    for expectation in expectations:
        actual = metrics.get(expectation.metric)
        why = _ahead(expectation.metric, metrics)
        if not why and actual is None:
            why = _not_finite(expectation.metric, metrics)
        if why:
            undefined.append(why)
            continue
        if actual is None:
            missing.append(expectation.metric)
            continue
        if isinstance(actual, float) and not math.isfinite(actual):
            # inf <= 90 is False and -inf <= 90 True: neither is a reading of anything.
            undefined.append(f"{expectation.metric} = {actual!r} is not a finite number")
            continue
        expected = expected_value(expectation, values or {})
        times = isinstance(expectation.value, ParamRef) and isinstance(
            (values or {}).get(expectation.value.param), datetime
        )
        if times and (isinstance(actual, bool) or not isinstance(actual, int | float)):
            undefined.append(f"{expectation.metric} = {actual!r} is not a time")
            continue
        if times and now is not None and (why := _dated_ahead(expectation.metric, actual, now)):
            undefined.append(why)
            continue
        try:
            ok = bool(_OPS[expectation.op](actual, expected))
        except TypeError:
            return Verdict(ERROR, checks, f"{expectation.metric} = {actual!r} cannot be compared")
        verdict = PASS if ok else expectation.verdict
        checks.append(
            Check(
                expectation.metric,
                expectation.op,
                expected,
                actual,
                ok,
                verdict,
                expectation.because,
                times=times,
            )
        )
        if _RANK[verdict] > _RANK[worst]:
            worst = verdict
    if undefined:  # an error even beside a failure: the run's numbers cannot be trusted
        return Verdict(ERROR, checks, "; ".join(dict.fromkeys(undefined)))
    if missing and worst != FAIL:
        return Verdict(ERROR, checks, f"the run did not produce {', '.join(sorted(set(missing)))}")
    return Verdict(worst, checks)


def _not_finite(metric: str, metrics: Mapping[str, object]) -> str:
    """Why ``metric`` is undefined when its column held values that are no finite number
    (:func:`column_numbers` leaves ``c``, ``c_min`` and ``c_max`` out then, and says how
    many in ``c_non_finite``); ``""`` when that is not why it is missing."""
    for suffix in ("_min", "_max", ""):
        column = metric.removesuffix(suffix) if suffix else metric
        if suffix and column == metric:
            continue
        count = metrics.get(f"{column}_non_finite")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            values, be = ("value", "is") if count == 1 else ("values", "are")
            return (
                f"{metric} is undefined: {count} {values} of {column!r} {be} not a "
                "finite number (NaN or infinity)"
            )
    return ""


def _ahead(metric: str, metrics: Mapping[str, object]) -> str:
    """Why ``metric`` cannot be judged when a time was dated ahead of this machine's
    clock by more than :data:`SKEW_TOLERANCE` (:func:`age_metrics` then gives
    ``…ahead_seconds``); ``""`` otherwise. That holds for the time's age (left out) and
    for the time itself: a backup stamped next year is not newer than the last write,
    it comes from a clock that disagrees, and ``backup_time >= newest_write`` must not
    pass on it. A time ahead by nature (a certificate's expiry, a schedule's next run)
    is compared through its ``…_ahead_seconds``, which is judged as given."""
    if metric.endswith(AGE):
        ahead = metrics.get(metric.removesuffix(AGE) + AHEAD)
        what = f"{metric} is unknown: the time it is the age of"
    else:
        ahead = metrics.get(f"{metric}_{AHEAD}")
        what = f"{metric} cannot be judged: it"
    if isinstance(ahead, int | float) and not isinstance(ahead, bool):
        return (
            f"{what} is dated {ahead:g} s ahead of this machine's clock (clocks disagree; "
            "the data may be fresh or stale)"
        )
    return ""


def _dated_ahead(metric: str, actual: object, now: float) -> str:
    """Why ``actual``, compared with a time and so read as seconds since the epoch,
    cannot be judged: it is dated more than :data:`SKEW_TOLERANCE` ahead of ``now``."""
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return ""
    ahead = actual - now
    if ahead <= SKEW_TOLERANCE:
        return ""
    return (
        f"{metric} cannot be judged: read as a time, it is dated {ahead:.0f} s ahead of "
        "this machine's clock (clocks disagree, or it is not seconds since the epoch; the "
        "data may be fresh or stale)"
    )


# --------------------------------------------------------------------------- ages

SKEW_TOLERANCE = 5.0
"""Seconds a time may be dated ahead of this machine's clock and still be read as age 0.

Why 5: a time written rounded to the second is up to 0.5 s ahead, and two machines
kept by NTP agree within milliseconds, one whose clock is merely drifting within a few
seconds; every freshness threshold a playbook sets is a minute or more, so 5 s of
doubt can never turn a stale reading fresh. A time further ahead says the clocks
disagree (or the source is broken, or lying): its age is then unknown, and an
expectation on it is an error saying by how much, never a pass on a negative age."""
AGE = "age_seconds"
AHEAD = "ahead_seconds"


def age_metrics(prefix: str, moment: float, now: float) -> dict[str, float]:
    """The age numbers of a time read from a target (``moment``, seconds since the
    epoch) at ``now``, as ``{prefix}age_seconds``; a time up to :data:`SKEW_TOLERANCE`
    ahead is age 0, one further ahead gives ``{prefix}ahead_seconds`` instead (the age
    is absent, so :func:`evaluate` makes an expectation on it an error that says why).
    ``prefix`` is ``"name_"`` or ``""``. Every reader that gives an age uses this."""
    age = round(now - moment, 3)
    if age >= 0:
        return {prefix + AGE: age}
    if -age <= SKEW_TOLERANCE:
        return {prefix + AGE: 0.0}
    return {prefix + AHEAD: -age}


def age_metric_names(prefix: str) -> frozenset[str]:
    """Every name :func:`age_metrics` can give for ``prefix``."""
    return frozenset({prefix + AGE, prefix + AHEAD})


def column_metric_names(columns: list[str]) -> frozenset[str]:
    """Every name :func:`column_numbers` can give for ``columns``: for a playbook's
    ``validate`` to know what a run may return."""
    return frozenset(f"{column}{suffix}" for column in columns for suffix in _COLUMN_SUFFIXES)


# --------------------------------------------------------------------------- numbers in text
# Shell output, an HTTP value declared ``as: number`` and a Prometheus sample all arrive
# as text; one strict reading serves them all, so "95%" is never 95 by accident and
# "NaN" or "1_000" is never a number.

_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]{1,3})?")
"""ASCII digits, an optional fraction and exponent: what ``df``, ``ps`` or a JSON string
print. Not ``+1``, ``.5``, ``1_000``, ``0x10``, ``inf`` or ``nan``."""


def strict_number(text: str, strip: str = "") -> int | float | None:
    """The number ``text`` spells, or None when it spells none.

    ``strip`` (``"%"``) is removed once from the end and once from the start; what is
    left must be a whole number (an ``int``) or a decimal (a finite ``float``), nothing
    else: no blank around it either (``" 5"``, ``"5\\n"``), as the doc promises ASCII
    digits. An extractor's columns are split on blanks already; a regex group or a
    JSON string that keeps one is the playbook's or the program's to fix.
    """
    value = text
    if strip:
        value = value.removesuffix(strip).removeprefix(strip)
    if len(value) > 400 or not _NUMBER.fullmatch(value):  # 1e308 spelt out is 309
        return None
    if "." in value or "e" in value or "E" in value:
        number = float(value)
        return number if math.isfinite(number) else None
    return int(value)


def column_numbers(rows: list[Mapping[str, object]], columns: list[str]) -> dict[str, int | float]:
    """The numbers a table of rows gives its expectations, for each number column ``c``:

    - ``c`` itself only when there is exactly one row, so a check never looks at the
      first of many rows and misses a bad one further down (with several rows it is
      absent, and an expectation on it is an error, never a pass);
    - ``c_min`` and ``c_max`` over every row that has it, whatever their number;
    - when any of them is no finite number (a NaN or an infinity), none of those three
      but ``c_non_finite``, how many: a maximum that skips a NaN is a maximum of some
      rows, and an expectation on it passing would be a pass over the rest
      (:func:`evaluate` makes it an error that says how many).
    """
    out: dict[str, int | float] = {}
    for column in columns:
        values = [
            v
            for row in rows
            if isinstance(v := row.get(column), int | float) and not isinstance(v, bool)
        ]
        # floats only: math.isfinite(10**400) raises, and every int is finite
        bad = sum(1 for v in values if isinstance(v, float) and not math.isfinite(v))
        if bad:
            out[f"{column}{_NON_FINITE}"] = bad
            continue
        if not values:
            continue
        if len(rows) == 1:
            out[column] = values[0]
        out[f"{column}{_MIN}"] = min(values)
        out[f"{column}{_MAX}"] = max(values)
    return out


_MIN, _MAX, _NON_FINITE = "_min", "_max", "_non_finite"
_COLUMN_SUFFIXES = ("", _MIN, _MAX, _NON_FINITE)
"""What :func:`column_numbers` appends to a column's name, and nothing else: the one
list :func:`column_metric_names` reads."""
