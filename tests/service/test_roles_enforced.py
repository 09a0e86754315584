"""Roles enforced (team mode, when the playbook says ``enforce_roles: true``): only the
commander changes severity, resolves or closes; the commander role changes hands only by
a handover the commander offers and the new commander accepts; while nobody holds it
anyone may act. Each refusal is checked where it lands: nothing appended to the log."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from roles_support import enforced_playbook

from playbook.adapters.plugins import load_playbook
from playbook.core import events as ev
from playbook.errors import ExitCode
from playbook.service.roles import NotCommander


@pytest.fixture
def enforced(tmp_path: Path):
    return enforced_playbook(tmp_path / "pb")


def as_(service, who: str):
    service.actor = who
    return service


def kinds(service, incident: str) -> list[str]:
    return [e.type for e in service.store.read(incident)]


def test_only_the_commander_changes_severity_resolves_and_closes(service, enforced) -> None:
    incident = service.open(enforced, "Orders missing").id
    service.assign_role(incident, "commander", "alice")
    before = kinds(service, incident)

    with pytest.raises(NotCommander) as refused:
        as_(service, "bob").change_severity(incident, "P1", "customers hit")
    assert refused.value.exit_code == ExitCode.REFUSED
    assert "alice is the incident commander" in refused.value.title
    assert f"alice runs `playbook handover {incident} commander bob`" in refused.value.message
    with pytest.raises(NotCommander):
        service.resolve(incident, "restored")
    assert kinds(service, incident) == before  # nothing recorded

    as_(service, "alice").change_severity(incident, "P1", "customers hit")
    service.resolve(incident, "restored")
    with pytest.raises(NotCommander, match="only the commander may close"):
        as_(service, "bob").close(incident)
    as_(service, "alice").close(incident)
    events = service.store.read(incident)
    assert [(e.type, e.actor) for e in events[-3:]] == [
        (ev.SEVERITY_CHANGED, "alice"),
        (ev.RESOLVED, "alice"),
        (ev.CLOSED, "alice"),
    ]


def test_while_nobody_commands_anyone_may(service, enforced) -> None:
    incident = service.open(enforced, "Orders missing").id
    as_(service, "bob").change_severity(incident, "P1", "customers hit")
    assert service.get(incident).state.severity == "P1"
    # and anyone may take the free role; from then on it binds
    service.assign_role(incident, "commander", "bob")
    with pytest.raises(NotCommander, match="bob is the incident commander"):
        as_(service, "alice").change_severity(incident, "P2", "contained")


def test_nobody_grabs_the_commander_role_without_a_handover(service, enforced) -> None:
    incident = service.open(enforced, "Orders missing").id
    service.assign_role(incident, "commander", "alice")
    before = kinds(service, incident)

    with pytest.raises(NotCommander, match="changes hands only by a handover"):
        as_(service, "bob").assign_role(incident, "commander", "bob")
    with pytest.raises(NotCommander, match="only the commander may offer"):
        service.offer_handover(incident, "commander", "bob")  # bob offering it to himself
    with pytest.raises(NotCommander, match="only when the new commander accepts"):
        as_(service, "alice").assign_role(incident, "commander", "bob")  # no acknowledgement
    assert kinds(service, incident) == before
    assert service.get(incident).state.roles["commander"] == "alice"
    # other roles are recorded as before: anyone may name the scribe
    as_(service, "bob").assign_role(incident, "scribe", "carol")


def test_a_handover_binds_once_the_new_commander_accepts(service, enforced) -> None:
    incident = service.open(enforced, "Orders missing").id
    service.assign_role(incident, "commander", "alice")
    service.offer_handover(incident, "commander", "bob", "replica read-only")
    # still alice's until bob accepts, and nobody accepts for bob
    with pytest.raises(NotCommander):
        as_(service, "bob").change_severity(incident, "P1", "customers hit")
    with pytest.raises(NotCommander, match="only bob can accept"):
        as_(service, "carol").accept_handover(incident, "commander", "bob")

    as_(service, "bob").accept_handover(incident, "commander")
    assert service.get(incident).state.roles["commander"] == "bob"
    service.change_severity(incident, "P1", "customers hit")
    with pytest.raises(NotCommander, match="bob is the incident commander"):
        as_(service, "alice").change_severity(incident, "P2", "contained")
    with pytest.raises(NotCommander):
        service.resolve(incident)
    assert [(e.type, e.actor) for e in service.store.read(incident)[-2:]] == [
        (ev.HANDOVER_ACCEPTED, "bob"),
        (ev.SEVERITY_CHANGED, "bob"),
    ]


def test_an_offer_overtaken_by_another_handover_is_void(service, enforced) -> None:
    incident = service.open(enforced, "Orders missing").id
    service.assign_role(incident, "commander", "alice")
    service.offer_handover(incident, "commander", "bob")
    service.offer_handover(incident, "commander", "carol")
    as_(service, "carol").accept_handover(incident, "commander")
    before = kinds(service, incident)
    with pytest.raises(NotCommander, match="carol is the incident commander now"):
        as_(service, "bob").accept_handover(incident, "commander")
    assert kinds(service, incident) == before


def test_the_commander_may_release_the_role_and_then_anyone_may(service, enforced) -> None:
    incident = service.open(enforced, "Orders missing").id
    service.assign_role(incident, "commander", "alice")
    service.assign_role(incident, "commander", "")
    as_(service, "bob").change_severity(incident, "P1", "customers hit")
    assert service.get(incident).state.severity == "P1"


def test_without_enforce_roles_everyone_may_as_before(service, loaded) -> None:
    incident = service.open(loaded, "Orders missing").id  # the shipped data-integrity
    service.assign_role(incident, "commander", "alice")
    as_(service, "bob").change_severity(incident, "P1", "customers hit")
    service.assign_role(incident, "commander", "bob")
    as_(service, "carol").resolve(incident, "restored")
    state = service.get(incident).state
    assert (state.severity, state.roles["commander"], state.status) == ("P1", "bob", "resolved")


def test_enforce_roles_needs_a_commander_role(tmp_path: Path) -> None:
    enforced_playbook(tmp_path)
    path = tmp_path / "enforced.yaml"
    text = path.read_text("utf-8").replace("  - id: commander\n", "  - id: lead\n", 1)
    path.write_text(text, "utf-8")
    with pytest.raises(Exception, match="enforce_roles needs a role with id 'commander'"):
        load_playbook(path)


# --------------------------------------------------------------------------- the CLI


def test_the_cli_refuses_with_exit_7_naming_the_commander(cli, tmp_path: Path) -> None:
    import json

    enforced_playbook(tmp_path / "pb")
    opened = cli("open", str(tmp_path / "pb" / "enforced.yaml"), "--title", "Gone", "--json")
    incident = json.loads(opened.output)["id"]
    assert cli("--actor", "alice", "role", incident, "commander", "alice").exit_code == 0

    refused = cli("--actor", "bob", "severity", incident, "P1", "--reason", "customers hit")
    assert refused.exit_code == ExitCode.REFUSED, refused.output
    assert "alice is the incident commander" in refused.output
    assert f"playbook handover {incident} commander bob" in refused.output
    grab = cli("--actor", "bob", "role", incident, "commander", "bob")
    assert grab.exit_code == ExitCode.REFUSED
    events = json.loads(cli("timeline", incident, "--json").output)
    assert [e["type"] for e in events] == ["opened", "role_assigned"]

    assert cli("--actor", "alice", "handover", incident, "commander", "bob").exit_code == 0
    assert cli("--actor", "bob", "handover", incident, "commander", "--accept").exit_code == 0
    done = cli("--actor", "bob", "severity", incident, "P1", "--reason", "customers hit")
    assert done.exit_code == 0, done.output
    late = cli("--actor", "alice", "resolve", incident)
    assert late.exit_code == ExitCode.REFUSED and "bob is the incident commander" in late.output


# --------------------------------------------------------------------------- the scribe


def test_a_scribes_notes_are_marked_in_the_timeline_and_the_export(cli) -> None:
    import json

    incident = json.loads(cli("open", "--title", "Gone", "--json").output)["id"]
    alice = ("--actor", "alice")
    assert cli(*alice, "note", incident, "before the role").exit_code == 0
    assert cli(*alice, "role", incident, "scribe", "alice").exit_code == 0
    assert cli(*alice, "note", incident, "while scribe").exit_code == 0
    assert cli("--actor", "bob", "note", incident, "bob is no scribe").exit_code == 0
    assert cli(*alice, "role", incident, "scribe", "carol").exit_code == 0
    assert cli(*alice, "note", incident, "after the role").exit_code == 0

    timeline = cli("timeline", incident).output
    assert "Note (scribe): while scribe" in timeline
    for plain in ("before the role", "bob is no scribe", "after the role"):
        assert f"Note: {plain}" in timeline
    assert timeline.count("Note (scribe)") == 1

    markdown = cli("export", incident, "--format", "markdown").output
    notes = markdown[markdown.index("## Notes") :]
    assert "alice (scribe):** while scribe" in notes
    assert "alice:** before the role" in notes and "alice:** after the role" in notes
    assert "Note (scribe): while scribe" in markdown[markdown.index("## Timeline") :]
    # derived when shown: the log holds the note as typed, once
    events = json.loads(cli("timeline", incident, "--json").output)
    document = json.loads(cli("export", incident, "--format", "json").output)
    marked = [e["seq"] for e in events if e["payload"].get("text") == "while scribe"]
    assert document["roles"]["scribe_notes"] == marked
    assert [e["payload"] for e in events if e["type"] == "note_added"][1] == {
        "text": "while scribe"
    }


# --------------------------------------------------------------------------- the race


class HeldStore:
    """A store whose next decision waits, inside its transaction (the incident's lock
    held), until the test lets it go: another responder's command then queues behind it."""

    def __init__(self, store) -> None:
        self.store = store
        self.decided = threading.Event()
        self.go = threading.Event()

    def update(self, incident_id, decide):
        def held(events):
            out = decide(events)
            self.decided.set()
            assert self.go.wait(60), "the test never let the decision go"
            return out

        return self.store.update(incident_id, held)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def test_a_command_racing_a_handover_is_decided_on_the_state_after_it(tmp_path: Path) -> None:
    """Bob accepts the commander role while alice's severity change waits for the
    incident's lock on the shared store: hers is decided on the log with bob's acceptance
    in it, so she is refused and only one commander acts."""
    from pgserver import postgres_server
    from servers import PASSWORD

    from playbook.service import Service
    from playbook.store.postgres import PostgresStore, init

    enforced = enforced_playbook(tmp_path / "pb")
    with postgres_server() as pg:
        url = pg.add_owner("team", PASSWORD, "team")
        init(url)
        alice = Service(PostgresStore(url), actor="alice")
        held = HeldStore(PostgresStore(url))
        bob = Service(held, actor="bob")
        try:
            incident = alice.open(enforced, "Orders missing").id
            alice.assign_role(incident, "commander", "alice")
            alice.offer_handover(incident, "commander", "bob")
            outcome: dict[str, object] = {}

            def run(name: str, call) -> None:
                try:
                    outcome[name] = call()
                except Exception as error:  # the refusal is the point
                    outcome[name] = error

            accepting = threading.Thread(
                target=run, args=("bob", lambda: bob.accept_handover(incident, "commander"))
            )
            accepting.start()
            assert held.decided.wait(60), "bob's acceptance never decided"
            changing = threading.Thread(
                target=run,
                args=("alice", lambda: alice.change_severity(incident, "P1", "customers hit")),
            )
            changing.start()
            with pg.connect(url) as conn:  # alice's transaction waits on the lock
                deadline = time.monotonic() + 30
                while not conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()[0]:
                    assert time.monotonic() < deadline, "alice's change never queued"
                    time.sleep(0.01)
            held.go.set()
            accepting.join(60)
            changing.join(60)

            assert isinstance(outcome["alice"], NotCommander), outcome["alice"]
            assert "bob is the incident commander" in str(outcome["alice"])
            with pg.connect(url) as conn:
                rows = conn.execute(
                    "SELECT actor, type FROM playbook.events WHERE incident_id = %s ORDER BY seq",
                    (incident,),
                ).fetchall()
            assert [(r[0], r[1]) for r in rows][-1] == ("bob", "handover_accepted")
            assert "severity_changed" not in [r[1] for r in rows]
        finally:
            held.go.set()
            alice.store.close()
            held.store.close()


# --------------------------------------------------------------------------- offline


def test_an_offline_severity_change_is_refused_on_sync_when_the_commander_moved(
    tmp_path: Path,
) -> None:
    """Bob, offline, saw nobody commanding and raised the severity; meanwhile alice took
    the commander role on the shared log. Copying bob's log refuses his change (shown,
    with who moved the role), and the shared log holds no severity change by him."""
    from playbook.service import Service
    from playbook.store import as_new
    from playbook.store.memory import MemoryStore
    from playbook.store.merge import push
    from playbook.store.sqlite import SQLiteStore

    enforced = enforced_playbook(tmp_path / "pb")
    shared = Service(MemoryStore(), actor="alice")
    incident = shared.open(enforced, "Orders missing").id
    local_store = SQLiteStore(tmp_path / "bob")
    try:
        local_store.append(incident, 0, [as_new(e) for e in shared.store.read(incident)])
        bob = Service(local_store, actor="bob")
        bob.change_severity(incident, "P1", "customers hit")  # nobody commands, in his view
        bob.note(incident, "replica lag 40 s")
        shared.assign_role(incident, "commander", "alice")

        (report,) = push(local_store, shared.store)
        [refused] = report.refused
        assert refused.event.type == ev.SEVERITY_CHANGED
        assert "alice changed who commands" in refused.reason
        on_shared = [(e.type, e.actor) for e in shared.store.read(incident)]
        assert (ev.SEVERITY_CHANGED, "bob") not in on_shared
        assert (ev.NOTE_ADDED, "bob") in on_shared  # notes commute and merge
    finally:
        local_store.close()


def test_offline_changes_merge_as_before_without_enforcement(tmp_path: Path, loaded) -> None:
    from playbook.service import Service
    from playbook.store import as_new
    from playbook.store.memory import MemoryStore
    from playbook.store.merge import push
    from playbook.store.sqlite import SQLiteStore

    shared = Service(MemoryStore(), actor="alice")
    incident = shared.open(loaded, "Orders missing").id
    local_store = SQLiteStore(tmp_path / "bob")
    try:
        local_store.append(incident, 0, [as_new(e) for e in shared.store.read(incident)])
        Service(local_store, actor="bob").change_severity(incident, "P1", "customers hit")
        shared.assign_role(incident, "commander", "alice")
        (report,) = push(local_store, shared.store)
        assert report.refused == []
        assert shared.get(incident).state.severity == "P1"
    finally:
        local_store.close()
