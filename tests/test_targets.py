"""Targets resolve from configuration; a password never shows in anything printed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from playbook.errors import UsageError
from playbook.targets import load_targets, redact, resolve_target

MARKER = "s3cr3t-M4RKER-pw"


def own_config(text: str) -> Path:
    """The responder's own playbook.toml (the tests' XDG_CONFIG_HOME is their own)."""
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "playbook"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "playbook.toml").write_text(text)
    return folder / "playbook.toml"


def test_config_env_and_overrides(tmp_path: Path) -> None:
    own_config('[targets]\napp-db = "mongodb://ops:${DB_PASSWORD}@db:27017/app"\n')
    targets = load_targets(
        tmp_path / "runbook.yaml",
        ["cache=redis://:" + MARKER + "@127.0.0.1:6379/0"],
        env={"DB_PASSWORD": MARKER},
    )
    db = resolve_target("app-db", targets)
    assert db.uri == f"mongodb://ops:{MARKER}@db:27017/app"
    for shown in (db.shown, repr(db), str(db), redact(targets["cache"].uri), repr(targets)):
        assert MARKER not in shown
    assert db.shown == "mongodb://ops:***@db:27017/app"
    assert redact("https://h/x?token=" + MARKER + "&a=1") == "https://h/x?token=***&a=***"


def test_missing_environment_and_unknown_targets_are_named(tmp_path: Path) -> None:
    own_config('[targets]\napp-db = "mongodb://${NOPE}@db"\n')
    with pytest.raises(UsageError, match="NOPE is not set"):
        load_targets(tmp_path / "x.yaml", env={})
    with pytest.raises(UsageError, match="No target named 'app-db'") as caught:
        resolve_target("app-db", {})
    assert "--target app-db=URI" in caught.value.message
    with pytest.raises(UsageError) as bad:
        load_targets(None, [f"oops{MARKER}"], env={})
    assert MARKER not in str(bad.value)


def test_options_are_read_from_the_responders_own_config(tmp_path: Path) -> None:
    own_config(
        "[targets]\n"
        'plain = "postgresql://reader@db/app"\n'
        'warehouse = { uri = "postgresql://admin@wh/dw", privileged = true, '
        'functions = ["reports.daily_total"] }\n'
        "[shell]\nallow_unsandboxed = true\n"
    )
    targets = load_targets(tmp_path / "x.yaml", env={})
    assert targets["plain"].options == {"privileged": False, "functions": []}
    assert targets["warehouse"].options == {
        "privileged": True,
        "functions": ["reports.daily_total"],
    }
    assert targets.allow_unsandboxed_shell is True
    # --target gives a plain target: options belong to the URI the responder configured
    overridden = load_targets(tmp_path / "x.yaml", ["warehouse=postgresql://x@y/z"], env={})
    assert overridden["warehouse"].options == {"privileged": False, "functions": []}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[targets]\na = { uri = "redis://h", privilegd = true }\n',
            "targets.a.privilegd: unknown key",
        ),
        ("[targets]\na = { privileged = true }\n", "targets.a.uri"),
        ('[targets]\na = { uri = "redis://h", privileged = "yes" }\n', "privileged must be"),
        ('[targets]\na = { uri = "redis://h", functions = "x.y" }\n', "functions must be a list"),
        ("[targets]\na = 3\n", "targets.a must be a URI string or a table"),
        ("[shell]\nallow_unsandboxed = 1\n", "shell.allow_unsandboxed must be true or false"),
        ("[shell]\nallow = true\n", "shell.allow: unknown key"),
        ("[targets\n", "playbook.toml: "),
    ],
)
def test_a_malformed_config_names_its_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = own_config(text)
    with pytest.raises(UsageError) as caught:
        load_targets(tmp_path / "x.yaml", env={})
    assert str(path) in caught.value.title
    assert expected in str(caught.value)
