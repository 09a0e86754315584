"""Local stand-ins for the publishing destinations (no test reaches the internet).

One HTTP server on 127.0.0.1 plays Statuspage, Slack, Teams, OpenStatus and a generic
webhook. Each route checks the request the way the real API reads it: the path, the
auth header, the JSON fields and their enums. A request that breaks the shape is
answered 400 and kept in ``errors``; every request is kept in ``requests``. Ids look
like the real ones (Statuspage's 12-character ids, OpenStatus's numbers), and the first
Statuspage request of a server is answered 429 with ``Retry-After: 0``.
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from helpers import ROOT

PAGE = "kctbh9vrtdwd"
SP_KEY = "sp-key-7f3a9c2e1b"
OS_KEY = "os-key-55d1e8a0c4"
SLACK_PATH = "/slack/services/T0AAA/B0BBB/xoxSlackToken9871"
TEAMS_PATH = "/teams/workflows/7a1f/triggers/manual/paths/invoke?api-version=1&sig=TeamsSig4242abcd"
HOOK_PATH = "/hook/incoming"
HOOK_TOKEN = "hook-bearer-31337zz"
COMPONENTS = {"api": "8kbf7d35c070", "chat": "vtnh60py4yd7"}

SP_STATUSES = {"investigating", "identified", "monitoring", "resolved"}
SP_IMPACTS = {"none", "minor", "major", "critical"}
SP_COMPONENT = {
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class StandIn:
    requests: list[Recorded] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[int, dict[str, Any]] = field(default_factory=dict)
    throttle_first: bool = True
    throttled: list[Recorded] = field(default_factory=list)
    port: int = 0
    endless_list: bool = False
    """Statuspage's list never ends: every page holds incidents nobody asked about."""
    ignores_page: bool = False
    """Statuspage's list answers page 1 whatever ``page`` asks (a broken server)."""
    drop_answers: int = 0
    """How many of the next answers are never sent: the request is read and acted on
    (a Statuspage incident is created), then the connection closes without a word."""
    odd_answers: list[tuple[int, bytes]] = field(default_factory=list)
    """Answers that replace the next ones, after the request was acted on: (status,
    body as sent), e.g. (200, b"<html>ok</html>") for a create that says no id."""
    rate_limited: str | None = None
    """When set, every request is answered 429 with this Retry-After, and not acted on."""
    dribble: threading.Event | None = None
    """When given, answers trickle a byte at a time, each waiting on this event for up to
    0.25 s, until it is set (a destination whose answer never ends in time)."""
    post_gate: threading.Event | None = None
    waits: list[float] = field(default_factory=list)
    """The pauses the client's pacing asked for (never slept in a test)."""
    """When set, each Statuspage create waits for it (at most 10 s) before it answers:
    a send held in flight while another responder decides."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def posts(self, prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(prefix) and r.method != "GET"]


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            if state.drop_answers > 0:
                state.drop_answers -= 1
                self.close_connection = True
                return  # acted on, never answered: the connection just closes
            if state.odd_answers:
                status, data = state.odd_answers.pop(0)
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if state.dribble is None:
                self.wfile.write(data)
                return
            for byte in data:
                if state.dribble.wait(0.25):
                    return
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up

        def _bad(self, why: str) -> None:
            state.errors.append(f"{self.command} {self.path}: {why}")
            self._answer(400, {"error": why})

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return self._bad("body is not JSON")
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append(Recorded(self.command, self.path, headers, body))
            if state.rate_limited is not None:
                return self._answer(
                    429, {"error": "slow down"}, {"Retry-After": state.rate_limited}
                )
            if raw and headers.get("content-type") != "application/json":
                return self._bad("Content-Type is not application/json")
            path = self.path
            if path.startswith("/sp/v1/pages/"):
                return self._statuspage(path, headers, body)
            if path == SLACK_PATH:
                return self._slack(body)
            if path == TEAMS_PATH:
                return self._teams(body)
            if path.startswith("/os/v1/status_report"):
                return self._openstatus(path, headers, body)
            if path == HOOK_PATH:
                if headers.get("authorization") != f"Bearer {HOOK_TOKEN}":
                    return self._bad("webhook: wrong bearer token")
                for key in ("incident", "template", "status", "text", "key"):
                    if not isinstance(body.get(key), str):
                        return self._bad(f"webhook: {key} missing")
                return self._answer(200, {"id": f"hook-{len(state.posts(HOOK_PATH))}"})
            return self._bad("no such route")

        # ---- Statuspage
        def _statuspage(self, path: str, headers: dict[str, str], body: Any) -> None:
            if headers.get("authorization") != f"OAuth {SP_KEY}":
                return self._answer(401, {"error": "Unauthorized"})
            if state.throttle_first:
                state.throttle_first = False
                state.throttled.append(state.requests.pop())
                return self._answer(429, {"error": "rate limited"}, {"Retry-After": "0"})
            path, _, query = path.partition("?")
            parts = path.split("/")  # '', sp, v1, pages, PAGE, incidents[, id]
            if len(parts) < 6 or parts[4] != PAGE or parts[5] != "incidents":
                return self._bad("statuspage: path is not /v1/pages/{page}/incidents")
            if self.command == "GET" and len(parts) == 6:
                return self._list(parse_qs(query))
            incident = (body or {}).get("incident")
            if not isinstance(incident, dict):
                return self._bad("statuspage: body is not {incident: {...}}")
            if incident.get("status") not in SP_STATUSES:
                return self._bad(f"statuspage: status {incident.get('status')!r}")
            if "impact_override" in incident and incident["impact_override"] not in SP_IMPACTS:
                return self._bad("statuspage: impact_override")
            if not isinstance(incident.get("body"), str) or not incident["body"]:
                return self._bad("statuspage: body missing")
            if not all(c in COMPONENTS.values() for c in incident.get("component_ids", [])):
                return self._bad("statuspage: unknown component id")
            for cid, status in (incident.get("components") or {}).items():
                if cid not in COMPONENTS.values() or status not in SP_COMPONENT:
                    return self._bad(f"statuspage: component {cid}={status}")
            if not isinstance(incident.get("deliver_notifications"), bool):
                return self._bad("statuspage: deliver_notifications not a bool")
            meta = incident.get("metadata", {})
            if not all(isinstance(v, dict) for v in meta.values()):
                return self._bad("statuspage: metadata values must be objects")
            if self.command == "POST" and len(parts) == 6:
                if not isinstance(incident.get("name"), str) or not incident["name"]:
                    return self._bad("statuspage: name missing")
                if state.post_gate is not None:
                    state.post_gate.wait(10)
                ident = secrets.token_hex(6)
                record = {
                    "id": ident,
                    "name": incident["name"],
                    "status": incident["status"],
                    "shortlink": f"https://stspg.io/{ident[:5]}",
                    "metadata": meta,
                    "incident_updates": [{"body": incident["body"]}],
                }
                state.incidents[ident] = record
                return self._answer(201, record)
            if self.command == "PATCH" and len(parts) == 7:
                record = state.incidents.get(parts[6])
                if record is None:
                    return self._answer(404, {"error": "not found"})
                record.update(status=incident["status"], metadata=meta)
                record["incident_updates"].append({"body": incident["body"]})
                return self._answer(200, record)
            return self._bad("statuspage: method/path")

        def _list(self, query: dict[str, list[str]]) -> None:
            """Newest first, ``limit`` (at most 100, default 100) per ``page`` (from 1)."""
            try:
                limit = int(query.get("limit", ["100"])[0])
                page = 1 if state.ignores_page else int(query.get("page", ["1"])[0])
            except ValueError:
                return self._bad("statuspage: limit and page are integers")
            if not 1 <= limit <= 100 or page < 1:
                return self._bad("statuspage: limit is 1..100 and page from 1")
            if state.endless_list:
                filler = [{"id": f"x{page}-{k}", "metadata": {}} for k in range(limit)]
                return self._answer(200, filler)
            newest_first = list(reversed(state.incidents.values()))
            return self._answer(200, newest_first[(page - 1) * limit : page * limit])

        # ---- Slack
        def _slack(self, body: Any) -> None:
            blocks = (body or {}).get("blocks")
            if not isinstance(body.get("text"), str) or not isinstance(blocks, list):
                return self._bad("slack: text and blocks")
            types = [b.get("type") for b in blocks]
            if types[0] != "header" or "section" not in types or types[-1] != "context":
                return self._bad(f"slack: blocks {types}")
            if blocks[0]["text"]["type"] != "plain_text" or len(blocks[0]["text"]["text"]) > 150:
                return self._bad("slack: header text")
            return self._answer(200, b"ok", {"Content-Type": "text/plain"})

        # ---- Teams
        def _teams(self, body: Any) -> None:
            try:
                (attachment,) = body["attachments"]
                card = attachment["content"]
                ok = (
                    body["type"] == "message"
                    and attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
                    and card["type"] == "AdaptiveCard"
                    and card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
                    and all(b["type"] in ("TextBlock", "FactSet") for b in card["body"])
                )
            except (KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                return self._bad("teams: not a message with one Adaptive Card")
            return self._answer(202, b"")

        # ---- OpenStatus
        def _openstatus(self, path: str, headers: dict[str, str], body: Any) -> None:
            if headers.get("x-openstatus-key") != OS_KEY:
                return self._answer(401, {"error": "Unauthorized"})
            if body.get("status") not in SP_STATUSES or not isinstance(body.get("message"), str):
                return self._bad("openstatus: status/message")
            if not isinstance(body.get("date"), str):
                return self._bad("openstatus: date")
            if path == "/os/v1/status_report":
                if not isinstance(body.get("title"), str) or not isinstance(
                    body.get("pageId"), int
                ):
                    return self._bad("openstatus: title/pageId")
                ident = 1000 + len(state.reports)
                state.reports[ident] = {
                    "id": ident,
                    "title": body["title"],
                    "updates": [body["message"]],
                }
                return self._answer(
                    200, {"id": ident, "title": body["title"], "status": body["status"]}
                )
            parts = path.split("/")  # '', os, v1, status_report, id, update
            if len(parts) == 6 and parts[5] == "update" and parts[4].isdigit():
                ident = int(parts[4])
                if ident not in state.reports or body.get("statusReportId") != ident:
                    return self._bad("openstatus: unknown report / statusReportId")
                state.reports[ident]["updates"].append(body["message"])
                return self._answer(200, {"id": 5000 + len(state.reports[ident]["updates"])})
            return self._bad("openstatus: path")

        do_GET = do_POST = do_PATCH = _handle

    return Handler


@contextmanager
def running_standin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, throttle_first: bool = False
) -> Iterator[StandIn]:
    """A stand-in serving every destination of :func:`write_config`'s playbook.toml
    (written under ``tmp_path / "config"``), the secrets in the environment, and the
    client's pacing recorded in ``waits`` instead of slept. Stopped, with every gate and
    trickle released, when the block ends."""
    from playbook import redaction
    from playbook.publish import http

    state, server = start_standin()
    state.throttle_first = throttle_first
    write_config(tmp_path / "config", state.base)
    for name, value in secret_env(state.base).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(http, "sleep", state.waits.append)
    try:
        yield state
    finally:
        for gate in (state.post_gate, state.dribble):
            if gate is not None:
                gate.set()
        server.shutdown()
        server.server_close()
        redaction._forget_all()


def start_standin() -> tuple[StandIn, ThreadingHTTPServer]:
    state = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server


def write_config(config_home: Path, base: str) -> Path:
    """The responder's own playbook.toml, every secret through ${ENV}."""
    folder = config_home / "playbook"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "playbook.toml"
    path.write_text(
        f"""
[publish.statuspage]
page = "{PAGE}"
api_key = "${{STATUSPAGE_KEY}}"
base_url = "{base}/sp/v1"
components = {{ api = "{COMPONENTS["api"]}", chat = "{COMPONENTS["chat"]}" }}

[publish.slack]
url = "${{SLACK_WEBHOOK}}"

[publish.teams]
url = "${{TEAMS_WEBHOOK}}"

[publish.openstatus]
api_key = "${{OPENSTATUS_KEY}}"
page = "42"
base_url = "{base}/os/v1"

[publish.hook]
type = "webhook"
url = "{base}{HOOK_PATH}"
headers = {{ Authorization = "Bearer ${{HOOK_TOKEN}}" }}
""",
        encoding="utf-8",
    )
    return path


def secret_env(base: str) -> dict[str, str]:
    return {
        "STATUSPAGE_KEY": SP_KEY,
        "SLACK_WEBHOOK": base + SLACK_PATH,
        "TEAMS_WEBHOOK": base + TEAMS_PATH,
        "OPENSTATUS_KEY": OS_KEY,
        "HOOK_TOKEN": HOOK_TOKEN,
    }


SECRETS = (SP_KEY, OS_KEY, HOOK_TOKEN, "xoxSlackToken9871", "TeamsSig4242abcd")


def publishable_runbook(folder: Path) -> Path:
    """A copy of the data-integrity playbook (its resolution template states data loss)."""
    shutil.copy(ROOT / "runbooks" / "data-integrity.yaml", folder / "data-integrity.yaml")
    shutil.copytree(ROOT / "runbooks" / "templates", folder / "templates")
    shutil.copytree(ROOT / "runbooks" / "drills", folder / "drills")
    return folder / "data-integrity.yaml"
