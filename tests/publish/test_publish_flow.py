"""One incident published to every destination's stand-in: the requests as each API
reads them, one Statuspage incident updated, the next update time in every message,
nothing sent when the check blocks, no secret anywhere, and a crash between send and
result that never posts twice."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from publish_support import (
    COMPONENTS,
    HOOK_PATH,
    SECRETS,
    SLACK_PATH,
    TEAMS_PATH,
    publishable_runbook,
    running_standin,
)

from playbook.errors import ExitCode

ALL = "statuspage,slack,teams,openstatus,hook"
NEXT = re.compile(r"Next update by \d\d:\d\d UTC")
INITIAL = ("--set", "specific_issues=missing messages in their chat history")


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with running_standin(tmp_path, monkeypatch, throttle_first=True) as state:
        yield state


@pytest.fixture
def incident(cli, tmp_path: Path) -> str:
    folder = tmp_path / "rb"
    folder.mkdir()
    runbook = publishable_runbook(folder)
    opened = cli("open", str(runbook), "--title", "Chat history missing", "--json")
    assert opened.exit_code == 0, opened.output
    return json.loads(opened.output)["id"]


def _events(cli, incident: str, kind: str) -> list[dict]:
    export = cli("export", incident, "--format", "json")
    assert export.exit_code == 0, export.output
    data = json.loads(export.output)
    return [e for e in data["events"] if e["type"] == kind]


def test_three_updates_reach_every_destination_in_its_shape(cli, standin, incident, tmp_path):
    outputs = []
    first = cli(
        "publish",
        incident,
        "initial",
        "--to",
        ALL,
        *INITIAL,
        "--component",
        "chat=partial_outage",
        "--yes",
    )
    outputs.append(first)
    assert first.exit_code == 0, first.output
    progress = cli(
        "publish",
        incident,
        "progress",
        "--to",
        ALL,
        "--set",
        "estimated_time=2 hours",
        "--component",
        "chat=degraded_performance",
        "--yes",
    )
    outputs.append(progress)
    assert progress.exit_code == 0, progress.output
    resolution = cli(
        "publish",
        incident,
        "resolution",
        "--to",
        ALL,
        "--set",
        "brief_cause=a failed schema migration",
        "--set",
        "brief_resolution=restoring the records from the latest backup",
        "--set",
        "data_loss=none, every record was restored",
        "--yes",
    )
    outputs.append(resolution)
    assert resolution.exit_code == 0, resolution.output

    assert standin.errors == []
    # Statuspage: rate-limited once (429, Retry-After: 0) and retried; one incident,
    # created once and updated (PATCH) for each later message.
    assert len(standin.throttled) == 1
    sp = standin.posts("/sp/")
    assert [r.method for r in sp] == ["POST", "PATCH", "PATCH"]
    (created,) = standin.incidents.values()
    assert {r.path.rsplit("/", 1)[1] for r in sp[1:]} == {created["id"]}
    assert [r.body["incident"]["status"] for r in sp] == ["investigating", "identified", "resolved"]
    assert sp[0].body["incident"]["components"] == {COMPONENTS["chat"]: "partial_outage"}
    assert sp[2].body["incident"]["components"] == dict.fromkeys(COMPONENTS.values(), "operational")
    assert sp[0].body["incident"]["impact_override"] in ("none", "minor", "major", "critical")
    assert len(created["incident_updates"]) == 3
    # OpenStatus: one report, then two updates of it.
    os_posts = standin.posts("/os/")
    assert [r.path for r in os_posts] == [
        "/os/v1/status_report",
        "/os/v1/status_report/1000/update",
        "/os/v1/status_report/1000/update",
    ]
    assert len(standin.posts(SLACK_PATH)) == 3
    assert len(standin.posts(TEAMS_PATH)) == 3
    assert len(standin.posts(HOOK_PATH)) == 3

    # The next update time is in every message that is not the resolution, at every
    # destination, as received; the resolution says whether data was lost.
    texts = {
        "statuspage": [r.body["incident"]["body"] for r in sp],
        "slack": [json.dumps(r.body) for r in standin.posts(SLACK_PATH)],
        "teams": [json.dumps(r.body) for r in standin.posts(TEAMS_PATH)],
        "openstatus": [r.body["message"] for r in os_posts],
        "hook": [r.body["text"] for r in standin.posts(HOOK_PATH)],
    }
    for where, sent in texts.items():
        assert all(NEXT.search(t) for t in sent[:2]), where
        assert "Data loss: none, every record was restored" in sent[2], where

    # Recorded: an intent before and a result after each send, with the ids.
    results = _events(cli, incident, "publish_result")
    assert len(results) == 15 and len(_events(cli, incident, "publish_intended")) == 15
    sp_results = [r["payload"] for r in results if r["payload"]["destination"] == "statuspage"]
    assert {r["external_id"] for r in sp_results} == {created["id"]}
    assert all(r["outcome"] == "published" for r in (e["payload"] for e in results))
    assert sp_results[0]["text"] == sp[0].body["incident"]["body"]

    # No secret anywhere: the store's files, the exports, everything printed.
    markdown = cli("export", incident, "--format", "markdown")
    everything = b"".join(p.read_bytes() for p in (tmp_path / "cli-home").rglob("*") if p.is_file())
    everything += "".join(o.output for o in outputs).encode()
    everything += (
        markdown.output.encode() + cli("export", incident, "--format", "json").output.encode()
    )
    for secret in SECRETS:
        assert secret.encode() not in everything, secret
    # The exports name every publication, where it went and its id.
    section = markdown.output.split("## Publications", 1)[1].split("\n## ", 1)[0]
    assert section.count("| published |") == 15 and created["id"] in section
    exported = json.loads(cli("export", incident, "--format", "json").output)["publications"]
    assert [p["destination"] for p in exported] == ALL.split(",") * 3
    assert {p["external_id"] for p in exported if p["destination"] == "openstatus"} == {"1000"}


def test_a_message_with_a_connection_string_is_never_sent(cli, standin, incident):
    refused = cli(
        "publish",
        incident,
        "initial",
        "--to",
        ALL,
        "--yes",
        "--set",
        "specific_issues=errors from postgresql://app:s3cretpw@db1.example.com/chat",
    )
    assert refused.exit_code == ExitCode.REFUSED, refused.output
    assert "connection-string" in refused.output
    assert standin.requests == [] and standin.throttled == []
    assert _events(cli, incident, "publish_intended") == []


def test_a_drill_reaches_only_a_drill_sink_and_says_drill(standin, tmp_path, clock):
    from drill_support import drill_payload

    from playbook.publish.base import PublishRefused
    from playbook.service import Service, publishing
    from playbook.service.status import DRILL_MARK
    from playbook.store.memory import MemoryStore

    config = tmp_path / "config" / "playbook" / "playbook.toml"
    config.write_text(
        config.read_text() + '\n[publish.drill-room]\ntype = "slack"\nurl = "${SLACK_WEBHOOK}"\n'
        'drill_sink = true\naudience = "internal"\n'
    )
    folder = tmp_path / "rb"
    folder.mkdir()
    service = Service(MemoryStore(), clock=clock, actor="alice")
    state = service.open(publishable_runbook(folder), "Drill", drill=drill_payload())
    values = {"specific_issues": "slow pages"}
    refused = publishing.draft(service.context, state.id, "initial", values, ["slack"])
    assert "drill sink" in refused.parts[0].refused
    with pytest.raises(PublishRefused):
        publishing.publish(service.context, refused)
    assert standin.requests == []

    sink = publishing.draft(service.context, state.id, "initial", values, ["drill-room"])
    (outcome,) = publishing.publish(service.context, sink)
    assert outcome.outcome == "published"
    (received,) = standin.posts(SLACK_PATH)
    assert received.body["text"].startswith(DRILL_MARK)


def test_a_runbooks_folder_cannot_name_a_destination(cli, standin, tmp_path):
    folder = tmp_path / "rb2"
    folder.mkdir()
    runbook = publishable_runbook(folder)
    (folder / "playbook.toml").write_text(
        f'[publish.evil]\ntype = "webhook"\nurl = "{standin.base}/evil"\n'
    )
    incident = json.loads(cli("open", str(runbook), "--title", "x", "--json").output)["id"]
    tried = cli("publish", incident, "initial", "--to", "evil", *INITIAL, "--yes")
    assert tried.exit_code == ExitCode.USAGE
    assert "No destination 'evil'" in tried.output
    assert "ignoring [publish]" in tried.output
    assert standin.requests == []


def _child(home: Path, incident: str, destination: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import os, signal, sys\n"
        "from playbook.service import publishing\n"
        "from playbook.cli import main\n"
        "publishing.after_send = lambda dest: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"main(['--data-dir', {str(home)!r}, 'publish', {incident!r}, 'initial', '--to', "
        f"{destination!r}, '--set', 'specific_issues=slow pages', '--yes'])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


@pytest.mark.parametrize("destination", ["statuspage", "slack"])
def test_a_crash_between_send_and_result_never_posts_twice(cli, standin, incident, destination):
    standin.throttle_first = False
    killed = _child(cli.home, incident, destination)
    assert killed.returncode == -9, killed.stderr
    prefix = "/sp/" if destination == "statuspage" else SLACK_PATH
    assert len(standin.posts(prefix)) == 1
    assert _events(cli, incident, "publish_result") == []

    resumed = cli("publish", incident, "--resume", "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert len(standin.posts(prefix)) == 1  # exactly one post, after the resume too
    (result,) = (e["payload"] for e in _events(cli, incident, "publish_result"))
    if destination == "statuspage":
        assert result["outcome"] == "reconciled"
        assert result["external_id"] == next(iter(standin.incidents))
    else:  # no record to look in: said plainly, and not sent again
        assert result["outcome"] == "unknown"
        assert "may have been sent" in resumed.output
    again = cli("publish", incident, "--resume", "--yes")
    if destination == "statuspage":
        assert "Nothing to resume" in again.output
        return
    # The same incident, the same words: --resume does not say "nothing to resume"
    # while publish holds the destination for a message whose outcome is unknown.
    assert again.exit_code == 0 and "Nothing to resume" not in again.output
    held = cli(
        "publish", incident, "progress", "--to", "slack", "--set", "estimated_time=1h", "--yes"
    )
    assert held.exit_code == ExitCode.REFUSED, held.output
    (said,) = (line for line in again.output.splitlines() if line.startswith("slack: "))
    assert "outcome is unknown" in said and "--resend slack" in said
    assert said in held.output
    assert len(standin.posts(prefix)) == 1


def test_nothing_is_sent_unless_the_responder_confirms(cli, standin, incident):
    declined = cli("publish", incident, "initial", "--to", "slack", *INITIAL, input="n\n")
    assert declined.exit_code == ExitCode.REFUSED
    assert "Publish to slack?" in declined.output and "check: passed" in declined.output
    assert standin.requests == []
    accepted = cli("publish", incident, "initial", "--to", "slack", *INITIAL, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert len(standin.posts(SLACK_PATH)) == 1


def test_a_refused_send_is_recorded_as_failed(cli, standin, incident, monkeypatch):
    monkeypatch.setenv("STATUSPAGE_KEY", "not-the-key-0000")
    failed = cli("publish", incident, "initial", "--to", "statuspage", *INITIAL, "--yes")
    assert failed.exit_code == ExitCode.RUN_FAILED, failed.output
    assert "HTTP 401" in failed.output and "not-the-key-0000" not in failed.output
    (result,) = (e["payload"] for e in _events(cli, incident, "publish_result"))
    assert result["outcome"] == "failed" and result["external_id"] is None
