"""A drill's ``script:`` comes from the runbooks repository: it must stay inside the
playbook's folder, like its templates. `drill --headless` prints what it cannot parse
of a script line by line, so a script that leads out would print the responder's files
(``/etc/shadow``, a key in their home) into a CI log the repository's author reads.

Each case looks at every byte the commands printed or wrote for the secret's lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli
from security_support import everything

SECRET = "prod-db-root:Hunter2-CANARY-SECRET:19000:0:99999:7:::"

PLAYBOOK = """\
version: 1
id: drilled
title: Drilled
service: Svc
severity:
  default: P2
  levels:
    - {id: P2, name: High, response: 1h, resolution: 8h, status_update_every: 1h}
  escalation_path: [A]
assessment:
  id: assessment
  title: A
  steps:
    - {id: s1, title: S1, items: [x]}
phases:
  - id: p1
    title: P1
    stage: investigation
    starts: 0m
    ends: 1h
    steps:
      - {id: st, title: St, items: [y]}
diagnostics:
  n:
    kind: redis
    title: t
    target: cache
    query: {op: dbsize}
drill:
  title: x
  services: {cache: redis}
  fault:
    - {target: cache, redis: [[SET, k, v]]}
  fingerprint:
    - {target: cache, keys: ["k*"]}
  script: SCRIPT
"""

SCRIPT = """\
steps:
  - diag: n
"""


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A file of the responder's outside the repository, shaped like /etc/shadow."""
    folder = tmp_path / "home"
    folder.mkdir()
    path = folder / "shadow"
    path.write_text(SECRET + "\nbackup-svc:S3cr3t-CANARY-2:19000:0:99999:7:::\n")
    return path


def repo(tmp_path: Path, script: str) -> Path:
    folder = tmp_path / "repo"
    (folder / "drills").mkdir(parents=True, exist_ok=True)
    (folder / "drills" / "ok.yaml").write_text(SCRIPT)
    playbook = folder / "pb.yaml"
    playbook.write_text(PLAYBOOK.replace("SCRIPT", script))
    return playbook


def script_line(playbook: Path) -> int:
    lines = playbook.read_text().splitlines()
    return 1 + next(i for i, x in enumerate(lines) if x.strip().startswith("script:"))


CASES = {
    "absolute": lambda secret: str(secret),
    "dot-dot": lambda secret: "../home/shadow",
    "dot-dot inside a subfolder": lambda secret: "drills/../../home/shadow",
    "home": lambda secret: "~/shadow",
    "symlink out": lambda secret: "drills/link.yaml",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_and_drill_refuse_a_script_outside_the_folder(
    cli: Cli, tmp_path: Path, secret_file: Path, case: str
) -> None:
    playbook = repo(tmp_path, CASES[case](secret_file))
    (playbook.parent / "drills" / "link.yaml").symlink_to(secret_file)
    checked = cli("validate", str(playbook))
    assert checked.exit_code == 1, checked.output
    [problem] = [x for x in checked.output.splitlines() if ": drill.script: " in x]
    assert problem.startswith(f"{playbook}:{script_line(playbook)}:")  # file:line:col: key
    assert "inside the playbook's folder" in problem
    drilled = cli("drill", str(playbook), "--headless")
    assert drilled.exit_code != 0
    assert "drill.script" in drilled.output and "Traceback" not in drilled.output
    seen = everything(cli.home, checked.output, drilled.output)
    assert "CANARY" not in seen  # not one line of the file was read out


def test_a_script_swapped_for_a_link_after_validate_is_refused_when_the_drill_loads_it(
    cli: Cli, tmp_path: Path, secret_file: Path
) -> None:
    playbook = repo(tmp_path, "drills/ok.yaml")
    assert cli("validate", str(playbook)).exit_code == 0  # inside: accepted
    ok = playbook.parent / "drills" / "ok.yaml"
    ok.unlink()
    ok.symlink_to(secret_file)  # the repository changes between review and drill
    drilled = cli("drill", str(playbook), "--headless")
    assert drilled.exit_code != 0
    assert "drill.script" in drilled.output
    assert "CANARY" not in everything(cli.home, drilled.output)


def test_the_drill_check_holds_on_its_own(tmp_path: Path, secret_file: Path) -> None:
    """The drill's own check (cli.drill._script_for), had the playbook been loaded before
    the script was swapped: it refuses without reading the file."""
    from playbook.adapters.plugins import load_playbook as load
    from playbook.cli.drill import _script_for
    from playbook.errors import UsageError

    playbook = repo(tmp_path, "drills/ok.yaml")
    loaded = load(playbook)
    ok = playbook.parent / "drills" / "ok.yaml"
    ok.unlink()
    ok.symlink_to(secret_file)
    with pytest.raises(UsageError) as caught:
        _script_for(loaded, None)
    assert "inside the playbook's folder" in caught.value.title
    assert "CANARY" not in str(caught.value)
