"""A generic JSON webhook: ``POST <url>`` with the message as plain JSON, for whatever
the team runs (a bot, an internal status page). Any 2xx is success; an ``id`` in a JSON
answer is kept. Optional ``headers`` (e.g. a bearer token) are sent as given and masked
in previews.

Body: ``{"incident", "title", "template", "status", "text", "next_update", "drill",
"key"}``; ``key`` lets a receiver de-duplicate a retry.
"""

from __future__ import annotations

from typing import ClassVar

from playbook.publish import http
from playbook.publish.base import Message, Publisher, Request, Sent


class WebhookPublisher(Publisher):
    kind: ClassVar[str] = "webhook"
    keys: ClassVar[tuple[str, ...]] = ("url", "headers")
    required: ClassVar[tuple[str, ...]] = ("url",)

    def build(self, message: Message, external_id: str | None) -> Request:
        body = {
            "incident": message.incident_id,
            "title": message.title,
            "template": message.template,
            "status": message.status,
            "text": message.text,
            "next_update": message.next_update,
            "drill": message.drill,
            "key": message.key,
        }
        headers = {str(k): str(v) for k, v in dict(self.settings.get("headers", {})).items()}
        return Request("POST", str(self.settings["url"]), headers, body)

    def send(self, request: Request) -> Sent:
        answer = http.request(
            "POST",
            request.url,
            request.headers,
            request.body,
            credential=request.url,
            what=f"webhook ({self.name})",
        )
        http.accepted(answer, f"webhook ({self.name})")
        data = answer.json()
        ident = data.get("id") if isinstance(data, dict) else None
        return Sent(answer.status, str(ident) if ident is not None else None)
