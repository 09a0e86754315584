"""The postgres-replication playbook end to end: an inactive physical slot retaining WAL
on the sandbox PostgreSQL, seen by SQL, by Prometheus and in bytes; the guarded DELETE
whose deferred trigger drops the slot only when the apply commits; the registry and the
slots as they were before the fault (issue 15 §7)."""

from __future__ import annotations

from pathlib import Path

from shipped_support import drill, headless, play, schema_errors, verdicts

from playbook.adapters.plugins import load_playbook as load
from playbook.resources import builtin_runbooks


def _slots(run: object) -> list[tuple[str, bool]]:
    with run.sandbox.handle("db") as conn:  # type: ignore[attr-defined]
        return [tuple(r) for r in conn.execute(
            "SELECT slot_name, active FROM pg_replication_slots ORDER BY 1"
        ).fetchall()]  # fmt: skip


def _lag(service: object, incident: str) -> list[tuple[str, float]]:
    """Each run of the Prometheus diagnostic in the incident: its verdict and the lag."""
    runs = service.get(incident).state.runs  # type: ignore[attr-defined]
    return [
        (r.verdict, r.payload["metrics"]["value_max"])
        for r in runs
        if r.diagnostic == "replication-lag-metric"
    ]


def test_it_validates_and_passes_the_schema_in_a_standard_validator(tmp_path: Path) -> None:
    loaded = load(builtin_runbooks()["postgres-replication"])
    levels = {level.id: level for level in loaded.playbook.severity.levels}
    assert list(levels) == ["SEV-1", "SEV-2", "SEV-3"]
    assert levels["SEV-3"].notify == "ticket"
    assert schema_errors("postgres-replication", tmp_path) == []


def test_the_headless_drill_exits_0_with_a_passing_verdict(tmp_path: Path) -> None:
    code, report, err = headless("postgres-replication", tmp_path)
    assert code == 0, err
    assert report["ok"] is True and report["restored"] is True
    found = {d["id"]: d["verdict"] for d in report["scorecard"]["diagnostics"]}
    # Each one's last run, after the repair: the Prometheus stand-in reads the sandbox,
    # so it no longer reports the 412 s it did before.
    assert found["replication-lag-metric"] == "pass"
    assert found["inactive-slots"] == "pass"


def test_the_dry_run_and_backup_drop_nothing(tmp_path: Path) -> None:
    # A slot's drop is not undone by ROLLBACK: were the trigger not deferred, the dry
    # run (run in a transaction that is rolled back) would drop it for real.
    with drill("postgres-replication", tmp_path) as (service, run, incident, _script):
        assert _slots(run) == [("replica_2", False)]
        action = service.start_action(
            incident, "remove-replica", {"replica": "replica-2"}, run.targets
        )
        plan = action.dry_run()
        assert plan is not None
        action.backup()
        assert _slots(run) == [("replica_2", False)]
        with run.sandbox.handle("db") as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM replicas ORDER BY 1")]
        assert names == ["replica-1", "replica-2"]


def test_the_fault_is_seen_and_the_repair_lands_on_the_server(tmp_path: Path) -> None:
    with drill("postgres-replication", tmp_path) as (service, run, incident, script):
        with run.sandbox.handle("db") as conn:
            retained = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots"
            ).fetchone()[0]
        assert retained > 16 * 1024 * 1024
        play(service, run, incident, script)

        runs = verdicts(service, incident)
        for failing in ("inactive-slots", "retained-wal", "replication-lag-metric"):
            assert (failing, "fail") in runs, failing
        # Prometheus' stand-in: 412 s behind before the guarded DELETE, 0 after it.
        assert _lag(service, incident) == [("fail", 412.0), ("pass", 0.0)]
        first = next(r for r in service.get(incident).state.runs if r.diagnostic == "retained-wal")
        assert first.payload["metrics"]["retained_bytes"] > 16 * 1024 * 1024

        assert _slots(run) == []  # dropped on the server
        with run.sandbox.handle("db") as conn:
            rows = conn.execute("SELECT name, decommissioned FROM replicas").fetchall()
        assert [tuple(r) for r in rows] == [("replica-1", False)]
        assert service.get(incident).state.drill_checks[-1].restored
        assert service.get(incident).state.severity == "SEV-1"


def test_prometheus_stand_in_answers_from_the_server_however_the_slot_goes(
    tmp_path: Path,
) -> None:
    # Not the script's step but the server's state: a slot dropped by hand (the
    # runbook's drop-slot-by-hand procedure) is seen by the next question.
    with drill("postgres-replication", tmp_path) as (service, run, incident, _script):
        service.run_diagnostic(incident, "replication-lag-metric", {}, run.targets)
        with run.sandbox.handle("db", superuser=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot('replica_2')")
        assert _slots(run) == []
        service.run_diagnostic(incident, "replication-lag-metric", {}, run.targets)
        assert _lag(service, incident) == [("fail", 412.0), ("pass", 0.0)]
