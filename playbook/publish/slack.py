"""Slack incoming webhook, with Block Kit.

Request shape: ``POST <webhook URL>`` with JSON ``{"text": fallback, "blocks": [...]}``;
success is HTTP 200 with the body ``ok``
(https://docs.slack.dev/tools/python-slack-sdk/webhook: ``response.status_code == 200``
and ``response.body == "ok"``; with ``blocks``, ``text`` is the notification fallback).
Blocks used: ``header`` (plain_text, at most 150 characters), ``section`` (mrkdwn) and
``context`` (the next update time) (Block Kit reference, docs.slack.dev).

The webhook URL is the credential (it carries the token): it is registered as a secret
and never shown. A webhook keeps no record we can read back, so a send a crash left
without a result cannot be reconciled: the flow says so and asks.
"""

from __future__ import annotations

from typing import Any, ClassVar

from playbook.publish import http
from playbook.publish.base import Message, Publisher, Request, Sent

SECTION_LIMIT = 3000


def _mrkdwn_escape(text: str) -> str:
    # Slack's mrkdwn gives meaning to &, < and > only: escaped, a message cannot
    # ping @channel or make a link of text a template filled in. Slack's formatting
    # reference (https://api.slack.com/reference/surfaces/formatting#escaping) asks it
    # of every text Slack parses for control sequences, the top-level ``text`` too: the
    # notification and fallback render ``<url|label>`` as ``label``, so unescaped,
    # ``Zq9<https://x|MARKERpw>`` reads "Zq9MARKERpw" there, a secret the check saw split.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackPublisher(Publisher):
    kind: ClassVar[str] = "slack"
    keys: ClassVar[tuple[str, ...]] = ("url",)
    required: ClassVar[tuple[str, ...]] = ("url",)

    def build(self, message: Message, external_id: str | None) -> Request:
        body = message.text.strip()
        lines = body.splitlines()
        rest = "\n".join(lines[1:]).strip() if len(lines) > 1 else body
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": message.headline[:150]}}
        ]
        for start in range(0, max(len(rest), 1), SECTION_LIMIT):
            chunk = _mrkdwn_escape(rest[start : start + SECTION_LIMIT]) or " "
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
        when = (
            f"Next update by {message.next_update}"
            if message.next_update
            else "Final update: resolved"
        )
        context = _mrkdwn_escape(f"{message.status} · {when} · incident {message.incident_id}")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        # The header is plain_text, which Slack shows as given (no control sequences):
        # escaping it would show "&lt;" to the reader.
        fallback = _mrkdwn_escape(message.text)
        return Request("POST", str(self.settings["url"]), {}, {"text": fallback, "blocks": blocks})

    def send(self, request: Request) -> Sent:
        answer = http.request(
            "POST",
            request.url,
            request.headers,
            request.body,
            credential=request.url,
            what=f"Slack ({self.name})",
        )
        # Slack answers 200 "ok"; its errors come as 4xx/5xx. Any 2xx took the message.
        http.accepted(answer, f"Slack ({self.name})")
        return Sent(answer.status)
