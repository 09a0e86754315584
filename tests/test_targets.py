"""Targets resolve from configuration; a password never shows in anything printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbook.errors import UsageError
from playbook.targets import load_targets, redact, resolve_target

MARKER = "s3cr3t-M4RKER-pw"


def test_config_env_and_overrides(tmp_path: Path) -> None:
    playbook = tmp_path / "runbook.yaml"
    (tmp_path / "playbook.toml").write_text(
        '[targets]\napp-db = "mongodb://ops:${DB_PASSWORD}@db:27017/app"\n'
    )
    targets = load_targets(
        playbook, ["cache=redis://:" + MARKER + "@127.0.0.1:6379/0"], env={"DB_PASSWORD": MARKER}
    )
    db = resolve_target("app-db", targets)
    assert db.uri == f"mongodb://ops:{MARKER}@db:27017/app"
    for shown in (db.shown, repr(db), str(db), redact(targets["cache"].uri), repr(targets)):
        assert MARKER not in shown
    assert db.shown == "mongodb://ops:***@db:27017/app"
    assert redact("https://h/x?token=" + MARKER + "&a=1") == "https://h/x?token=***&a=1"


def test_missing_environment_and_unknown_targets_are_named(tmp_path: Path) -> None:
    (tmp_path / "playbook.toml").write_text('[targets]\napp-db = "mongodb://${NOPE}@db"\n')
    with pytest.raises(UsageError, match="NOPE is not set"):
        load_targets(tmp_path / "x.yaml", env={})
    with pytest.raises(UsageError, match="No target named 'app-db'") as caught:
        resolve_target("app-db", {})
    assert "--target app-db=URI" in caught.value.message
    with pytest.raises(UsageError) as bad:
        load_targets(None, [f"oops{MARKER}"], env={})
    assert MARKER not in str(bad.value)
