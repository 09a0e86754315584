"""Drill data generators for replication faults, which an ordinary role cannot make.

A physical replication slot needs the REPLICATION attribute (or a superuser) to create
or drop, and the drill's set-up role has neither: SECURITY.md promises it, because a
REPLICATION role can also create a *logical* slot, whose output plugin is a shared
library loaded by name (a path works), which is code run as the server's user. So these
generators are installed code (as trusted as the rest of playbook, like every
``playbook.drill_data`` entry point) and are given the sandbox superuser's connection
to the drill's database (``needs_superuser``). What the runbook can choose is held
down: a slot name PostgreSQL itself validates, a bounded amount of WAL, and a
registry table the drill's own role must already own.
"""

from __future__ import annotations

from typing import Any

MAX_WAL_MB = 64
"""The most WAL a drill may generate: enough to retain, far from filling a disk."""


def inactive_replication_slot(conn: Any, slot: str = "replica_2", wal_mb: int = 24) -> str:
    """A physical slot that reserves WAL at once and has no client (``active`` false),
    then ``wal_mb`` MB of WAL written and a segment switch, so the slot retains it:
    what a replica that went away leaves on its primary."""
    if not 1 <= int(wal_mb) <= MAX_WAL_MB:
        raise ValueError(f"wal_mb must be 1 to {MAX_WAL_MB}")
    conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
    # an ordinary table: a temporary one writes no WAL
    conn.execute("CREATE TABLE pg_temp_playbook_wal_filler (pad text)")
    conn.execute(
        "INSERT INTO pg_temp_playbook_wal_filler SELECT repeat('x', 1000) FROM generate_series(1, %s)",
        (int(wal_mb) * 1000,),
    )
    conn.execute("DROP TABLE pg_temp_playbook_wal_filler")
    conn.execute("SELECT pg_switch_wal()")
    row = conn.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots "
        "WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    return f"inactive physical slot {slot} retaining {int(row[0]):,} bytes of WAL"


inactive_replication_slot.needs_superuser = True  # type: ignore[attr-defined]


def slot_registry(conn: Any, table: str = "replicas", owner: str = "drill") -> str:
    """The DBA's standing set-up that lets on-call drop a replica's slot without the
    REPLICATION attribute: deleting a replica's row from ``table`` (column
    ``slot_name``) drops its slot *when the transaction commits*, if the slot is
    physical and inactive. The trigger is deferred so a rolled-back transaction (the
    guarded action's dry run and backup) never drops anything: a slot's drop is not
    transactional, and a ROLLBACK does not bring it back. Its function is SECURITY
    DEFINER, owned by the superuser, with a fixed search path."""
    from psycopg import sql

    found = conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        "WHERE c.oid = to_regclass(%s) AND c.relkind = 'r' AND r.rolname = %s",
        (table, owner),
    ).fetchone()
    if found is None:
        raise ValueError(f"no table {table!r} owned by {owner!r} (create it in a load step)")
    conn.execute(
        """
        CREATE FUNCTION public.playbook_drop_replica_slot() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots
                       WHERE slot_name = OLD.slot_name AND slot_type = 'physical'
                         AND NOT active) THEN
                PERFORM pg_catalog.pg_drop_replication_slot(OLD.slot_name);
            END IF;
            RETURN OLD;
        END $$
        """
    )
    conn.execute("REVOKE ALL ON FUNCTION public.playbook_drop_replica_slot() FROM PUBLIC")
    conn.execute(
        sql.SQL(
            "CREATE CONSTRAINT TRIGGER playbook_drop_replica_slot AFTER DELETE ON {} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            "EXECUTE FUNCTION public.playbook_drop_replica_slot()"
        ).format(sql.Identifier(*table.split(".")))
    )
    return f"deleting a row of {table} drops its inactive slot at commit"


slot_registry.needs_superuser = True  # type: ignore[attr-defined]
slot_registry.trusts = ("public.playbook_drop_replica_slot",)  # type: ignore[attr-defined]
"""The function the drill's target may reach (a guarded DELETE fires it): made here, by
installed code, so the sandbox trusts it as the responder's config would."""
