"""Atlassian Statuspage (Manage API, REST v1).

Request shapes (checked against the sources named; see also
/work/shared/reference/team-comms-conventions.md B.1):

- create: ``POST {base}/pages/{page_id}/incidents`` with ``{"incident": {name, status,
  body, impact_override, component_ids, components, deliver_notifications, metadata}}``;
  update: ``PATCH {base}/pages/{page_id}/incidents/{incident_id}`` with the same fields
  (https://developer.statuspage.io/#operation/postPagesPageIdIncidents and
  #operation/patchPagesPageIdIncidentsIncidentId, as reproduced in
  alissonlinneker/statuspage-php-sdk docs/Api/IncidentsApi.md; Pipedream's "Create
  Incident" action, https://pipedream.com/apps/statuspage/actions/create-incident.md);
- list: ``GET {base}/pages/{page_id}/incidents?limit=100&page=N`` (same IncidentsApi.md:
  ``limit`` "the default and maximum limit is 100", ``page`` "page offset to fetch"), read
  page by page until an empty one to find an earlier post by its ``metadata`` (whose
  top-level values must be objects). ``q`` is not used: it searches "the incidents' name,
  status, postmortem_body, and incident_updates fields", not the metadata that carries
  our key, and a search that misses is a "not found" that posts twice;
- auth: ``Authorization: OAuth <api key>`` (yannh/statuspage-go-sdk main.go);
- rate: 1 request/s per token; 420 or 429 when exceeded (the API description in the
  generated SDK, https://packagist.org/packages/alissonlinneker/): paced and retried in
  :mod:`playbook.publish.http`;
- statuses: investigating, identified, monitoring, resolved; impact_override none, minor,
  major, critical; component statuses operational, under_maintenance,
  degraded_performance, partial_outage, major_outage
  (yannh/terraform-provider-statuspage statuspage/resource_component.go).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from playbook.publish import http
from playbook.publish.base import Message, NotConfirmed, Publisher, PublishFailed, Request, Sent

BASE_URL = "https://api.statuspage.io/v1"
STATUSES = ("investigating", "identified", "monitoring", "resolved")
IMPACTS = ("none", "minor", "major", "critical")
COMPONENT_STATUSES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)
PAGE_SIZE = 100
"""Incidents asked for per list page: Statuspage's default and maximum."""
MAX_PAGES = 50
"""How many list pages a reconciliation reads before it gives up (5,000 incidents, about
50 s at one request a second). A page that never ends (a broken or hostile server) must
not keep a resume looping; past this bound the send is reported as not confirmed and is
never re-sent on that guess."""
META = "playbook"
"""The metadata key this tool's posts carry: ``{"playbook": {"key": …, "incident": …}}``."""


class StatuspagePublisher(Publisher):
    kind: ClassVar[str] = "statuspage"
    creates_record: ClassVar[bool] = True
    has_record: ClassVar[bool] = True
    keys: ClassVar[tuple[str, ...]] = (
        "page",
        "api_key",
        "components",
        "base_url",
        "deliver_notifications",
        "impact",
    )
    required: ClassVar[tuple[str, ...]] = ("page", "api_key")

    @property
    def _base(self) -> str:
        return str(self.settings.get("base_url", BASE_URL)).rstrip("/")

    @property
    def _page(self) -> str:
        return quote(str(self.settings["page"]), safe="")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"OAuth {self.settings['api_key']}"}

    def _component_ids(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in dict(self.settings.get("components", {})).items()}

    def build(self, message: Message, external_id: str | None) -> Request:
        ids = self._component_ids()
        statuses = dict(message.components)
        if not statuses and message.status == "resolved":
            statuses = dict.fromkeys(ids, "operational")
        unknown = sorted(set(statuses) - set(ids))
        if unknown:
            raise PublishFailed(
                f"publish.{self.name}: no component {unknown[0]!r} in its components table.",
                f"Known: {', '.join(sorted(ids)) or 'none'}.",
            )
        chosen = [ids[name] for name in statuses] or list(ids.values())
        incident: dict[str, Any] = {
            "name": message.title[:255],
            "status": message.status if message.status in STATUSES else "investigating",
            "body": message.text[:25000],
        }
        if message.impact in IMPACTS:
            incident["impact_override"] = message.impact
        incident["component_ids"] = chosen
        incident["components"] = {ids[name]: status for name, status in statuses.items()}
        incident["deliver_notifications"] = bool(self.settings.get("deliver_notifications", True))
        incident["metadata"] = {META: {"key": message.key, "incident": message.incident_id}}
        base = f"{self._base}/pages/{self._page}/incidents"
        if external_id:
            return Request(
                "PATCH",
                f"{base}/{quote(external_id, safe='')}",
                self._headers(),
                {"incident": incident},
            )
        return Request("POST", base, self._headers(), {"incident": incident})

    def send(self, request: Request) -> Sent:
        answer = http.request(
            request.method,
            request.url,
            request.headers,
            request.body,
            credential=str(self.settings["api_key"]),
            what=f"Statuspage ({self.name})",
        )
        what = f"Statuspage ({self.name})"
        http.accepted(answer, what)
        sent = _sent(answer.status, answer.json())
        if request.method == "POST":  # a create: which incident it made must be known
            http.made_record(answer, sent.external_id, what)
        return sent

    def find(self, message: Message) -> Sent | None:
        """Read every page of the page's incidents, newest first, until an empty page.

        Raises:
            PublishFailed: a page could not be read (the publication stays pending).
            NotConfirmed: the list did not end within :data:`MAX_PAGES` pages, repeated a
                page, or was not a list: whether the message is out cannot be said.
        """
        what = f"Statuspage ({self.name})"
        seen_pages: set[tuple[str, ...]] = set()
        for number in range(1, MAX_PAGES + 1):
            answer = http.request(
                "GET",
                f"{self._base}/pages/{self._page}/incidents?limit={PAGE_SIZE}&page={number}",
                self._headers(),
                credential=str(self.settings["api_key"]),
                what=what,
            )
            if answer.status != 200:
                raise http.fail(answer, what)
            incidents = answer.json()
            if not isinstance(incidents, list):
                raise NotConfirmed(
                    f"{what}: page {number} of the incident list is not a list; could not "
                    "confirm whether the message is out. Not re-sending."
                )
            if not incidents:
                return None
            for incident in incidents:
                meta = (incident or {}).get("metadata") if isinstance(incident, dict) else None
                if isinstance(meta, dict) and (meta.get(META) or {}).get("key") == message.key:
                    return _sent(answer.status, incident)
            # A server that ignores `page` answers page 1 forever: stop at the repeat.
            ids = tuple(str(i.get("id")) if isinstance(i, dict) else "" for i in incidents)
            if ids in seen_pages:
                raise NotConfirmed(
                    f"{what}: page {number} of the incident list repeats an earlier page; "
                    "could not confirm whether the message is out. Not re-sending."
                )
            seen_pages.add(ids)
        raise NotConfirmed(
            f"{what}: the incident list did not end within {MAX_PAGES} pages of "
            f"{PAGE_SIZE}; could not confirm whether the message is out. Not re-sending."
        )


def _sent(status: int, data: Any) -> Sent:
    data = data if isinstance(data, dict) else {}
    ident = data.get("id")
    return Sent(status, str(ident) if ident is not None else None, data.get("shortlink"))
