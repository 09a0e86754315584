"""Microsoft Teams, through a Workflows ("When a Teams webhook request is received")
webhook, with an Adaptive Card.

Request shape: ``POST <workflow URL>`` with ``{"type": "message", "attachments":
[{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null,
"content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
"type": "AdaptiveCard", "version": "1.2", "body": [TextBlock…]}}]}``
(MicrosoftDocs/msteams-docs webhooks-and-connectors/how-to/connectors-using.md; the
Workflows replacement of Office 365 connectors accepts the same card:
https://gitlab.com/gitlab-org/gitlab/-/issues/497874). A workflow answers 202 Accepted
(200 from older connectors); both are success.

The URL carries its authorization (``sig=``) and is registered as a secret. No record
to read back: an unconfirmed send is reported as "may have been sent".
"""

from __future__ import annotations

from typing import Any, ClassVar

from playbook.publish import http
from playbook.publish.base import Message, Publisher, Request, Sent


class TeamsPublisher(Publisher):
    kind: ClassVar[str] = "teams"
    keys: ClassVar[tuple[str, ...]] = ("url",)
    required: ClassVar[tuple[str, ...]] = ("url",)

    def build(self, message: Message, external_id: str | None) -> Request:
        lines = message.text.strip().splitlines()
        rest = "\n".join(lines[1:]).strip() if len(lines) > 1 else message.text
        when = f"Next update by {message.next_update}" if message.next_update else "Final update"
        body: list[dict[str, Any]] = [
            {
                "type": "TextBlock",
                "text": message.headline,
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            },
            {"type": "TextBlock", "text": rest, "wrap": True},
            {
                "type": "FactSet",
                "facts": [
                    {"title": "Status", "value": message.status},
                    {"title": "Incident", "value": message.incident_id},
                    {"title": "Next update", "value": when},
                ],
            },
        ]
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.2",
            "body": body,
        }
        payload = {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }
        return Request("POST", str(self.settings["url"]), {}, payload)

    def send(self, request: Request) -> Sent:
        answer = http.request(
            "POST",
            request.url,
            request.headers,
            request.body,
            credential=request.url,
            what=f"Teams ({self.name})",
        )
        # A connector that is rate-limited answers 200 with the error in its body: that
        # one 2xx did not take the message. Any other 2xx did.
        if b"HTTP error 429" in answer.body:
            raise http.fail(answer, f"Teams ({self.name})")
        http.accepted(answer, f"Teams ({self.name})")
        return Sent(answer.status)
