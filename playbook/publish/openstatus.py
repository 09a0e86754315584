"""OpenStatus status reports (REST v1).

Request shapes (https://docs.openstatus.dev/api-reference/status_report/post-status_report
and …/post-status_report:id/update; auth https://docs.openstatus.dev/api-reference/auth):

- create: ``POST {base}/status_report`` with ``{title, status, message, date, pageId,
  monitorIds}``; the answer's ``id`` is kept;
- update: ``POST {base}/status_report/{id}/update`` with ``{status, date, message,
  statusReportId}``;
- auth: header ``x-openstatus-key: <key>``;
- statuses: investigating, identified, monitoring, resolved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from playbook.publish import http
from playbook.publish.base import Message, Publisher, Request, Sent

BASE_URL = "https://api.openstatus.dev/v1"
STATUSES = ("investigating", "identified", "monitoring", "resolved")


def _number(value: Any) -> Any:
    text = str(value)
    return int(text) if text.isdigit() else text


class OpenStatusPublisher(Publisher):
    kind: ClassVar[str] = "openstatus"
    creates_record: ClassVar[bool] = True
    keys: ClassVar[tuple[str, ...]] = ("api_key", "page", "monitors", "base_url")
    required: ClassVar[tuple[str, ...]] = ("api_key",)

    @property
    def _base(self) -> str:
        return str(self.settings.get("base_url", BASE_URL)).rstrip("/")

    def build(self, message: Message, external_id: str | None) -> Request:
        status = message.status if message.status in STATUSES else "investigating"
        date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {"x-openstatus-key": str(self.settings["api_key"])}
        if external_id:
            body = {
                "status": status,
                "date": date,
                "message": message.text,
                "statusReportId": _number(external_id),
            }
            url = f"{self._base}/status_report/{quote(external_id, safe='')}/update"
            return Request("POST", url, headers, body)
        body = {"title": message.title, "status": status, "message": message.text, "date": date}
        if "page" in self.settings:
            body["pageId"] = _number(self.settings["page"])
        if self.settings.get("monitors"):
            body["monitorIds"] = [_number(m) for m in self.settings["monitors"]]
        return Request("POST", f"{self._base}/status_report", headers, body)

    def send(self, request: Request) -> Sent:
        answer = http.request(
            request.method,
            request.url,
            request.headers,
            request.body,
            credential=str(self.settings["api_key"]),
            what=f"OpenStatus ({self.name})",
        )
        what = f"OpenStatus ({self.name})"
        http.accepted(answer, what)
        data = answer.json() if isinstance(answer.json(), dict) else {}
        report = data.get("statusReportId", data.get("id"))
        if request.url.endswith("/update"):  # the report's id stays the one we updated
            report = request.body.get("statusReportId", report)
            return Sent(answer.status, str(report) if report is not None else None)
        return Sent(answer.status, http.made_record(answer, report, what))
