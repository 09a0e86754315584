"""Writing playbooks: `playbook new` writes a playbook that validates, `playbook vars`
says where each template variable comes from, and `validate` catches a variable nobody
provides and an expectation on a metric the diagnostic never returns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import T0

from playbook.service.authoring import INCIDENT_VARIABLES


def _new(cli, folder: Path, name: str = "disk-full") -> Path:
    result = cli("new", name, "--dir", str(folder))
    assert result.exit_code == 0, result.output
    return folder / f"{name}.yaml"


def test_new_writes_a_playbook_that_validates(cli, tmp_path: Path) -> None:
    path = _new(cli, tmp_path / "books")
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./playbook.schema.json"
    assert (tmp_path / "books" / "templates" / "disk-full" / "initial.txt.j2").is_file()
    toml = (tmp_path / "books" / "playbook.toml").read_text(encoding="utf-8")
    assert "# [targets]" in toml and "\n[targets]" not in toml  # commented out
    result = cli("validate", str(path))
    assert result.exit_code == 0, result.output
    assert "ok — Disk full" in result.output


def test_new_refuses_to_overwrite(cli, tmp_path: Path) -> None:
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "playbook.toml").write_text("[targets]\nmine = 'redis://x'\n", encoding="utf-8")
    result = cli("new", "disk-full", "--dir", str(folder))
    assert result.exit_code == 2
    assert "Not overwriting" in result.output and "playbook.toml" in result.output
    # Nothing written, the author's file untouched.
    assert not (folder / "disk-full.yaml").exists()
    assert (folder / "playbook.toml").read_text(encoding="utf-8").startswith("[targets]")


def test_new_refuses_a_name_that_is_not_an_id(cli, tmp_path: Path) -> None:
    result = cli("new", "../escape", "--dir", str(tmp_path))
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_vars_says_where_each_variable_comes_from(cli) -> None:
    result = cli("vars", "data-integrity", "initial")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "incident: the playbook's service" in lines["service"]
    assert lines["specific_issues"].split()[1] == "responder:"
    assert "progress" not in result.output  # only the template asked for

    as_json = json.loads(cli("vars", "data-integrity", "--json").output)
    assert set(as_json["templates"]) == {"initial", "progress", "resolution"}
    assert set(as_json["incident_variables"]) == set(INCIDENT_VARIABLES)


def test_a_template_variable_nobody_provides_is_an_error(cli, tmp_path: Path) -> None:
    path = _new(cli, tmp_path)
    template = tmp_path / "templates" / "disk-full" / "initial.txt.j2"
    template.write_text(
        template.read_text(encoding="utf-8")
        + "{% set eta = '1h' %}{{ eta }}\nETA: {{ eta_text }}\n",
        encoding="utf-8",
    )
    result = cli("validate", str(path))
    assert result.exit_code == 1
    # The template's own file and line, the playbook's key; `eta` is set by the template.
    assert (
        f"{template}:8:1: communications.templates.initial.variables: 'eta_text': read by the "
        "template, declared nowhere"
    ) in result.output
    assert "'eta'" not in result.output

    shown = cli("vars", str(path))
    assert shown.exit_code == 1
    row = next(line for line in shown.output.splitlines() if "eta_text" in line)
    assert row.split()[1:3] == ["ERROR", "undeclared:"]


def test_a_variable_declared_from_the_incident_must_be_one_it_provides(cli, tmp_path: Path) -> None:
    path = _new(cli, tmp_path)
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "          source: responder\n", "          source: incident\n"
        ),
        encoding="utf-8",
    )
    result = cli("validate", str(path))
    assert result.exit_code == 1
    assert (
        "'what_users_see': declared source: incident, but an incident provides no" in result.output
    )


def test_the_table_covers_what_an_incident_fills_in(service, loaded) -> None:
    """Every variable the status service fills in is documented, and the table names no
    variable the incident does not fill in."""
    from playbook.service.status import status_variables

    state = service.open(loaded, title="t", severity="P2")
    filled = set(status_variables(service.context, state, T0))
    assert filled == set(INCIDENT_VARIABLES)


SHELL_DIAG = """\
diagnostics:
  disk-usage:
    kind: shell
    title: Disk usage
    target: local
    argv: [df, --output=pcent, /var]
    expect:
      - metric: use_percent
        op: lt
        value: 90
"""


def test_an_expectation_on_a_metric_the_kind_never_returns(
    cli, tmp_path: Path, monkeypatch
) -> None:

    path = _new(cli, tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + SHELL_DIAG, encoding="utf-8")
    result = cli("validate", str(path))
    # No extract: the shell kind says use_percent is none of its numbers, where it is.
    assert result.exit_code == 1
    line = path.read_text(encoding="utf-8").splitlines().index("      - metric: use_percent") + 1
    assert (
        f"{path}:{line}:17: diagnostics.disk-usage.expect[0].metric: 'use_percent' is not a "
        "metric this shell diagnostic returns (it returns: background_killed, bytes, count, "
        "exit_code, lines, lines_cut, remote, rows, sandboxed, stderr)"
    ) in result.output
    assert "not declared by their kind" not in result.output


def _members(annotation) -> list:
    import typing

    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return list(typing.get_args(annotation))


@pytest.mark.parametrize("name", ["data-integrity", "stale-backup"])
def test_shipped_playbooks_have_no_undeclared_variables(cli, name: str) -> None:
    assert cli("vars", name).exit_code == 0


def test_the_readme_shows_the_incident_variables() -> None:
    from helpers import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, (where, what) in INCIDENT_VARIABLES.items():
        assert f"| `{name}` | {where} | {what} |" in readme
    assert "# yaml-language-server: $schema=./playbook.schema.json" in readme


@pytest.mark.parametrize("name", ["data-integrity", "stale-backup", "mongo-schema"])
def test_diag_list_is_a_table_without_python_repr(cli, name: str) -> None:
    text = cli("diag", "list", name).output
    detailed = cli("diag", "list", name, "--details").output
    for output in (text, detailed):
        assert "{'" not in output and "[(" not in output and "param=" not in output
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "KIND", "TARGET", "STEP", "TITLE"]
    rows = json.loads(cli("diag", "list", name, "--json").output)
    assert len(lines) - 1 - ("(writes)" in lines[-1]) == len(rows)
    # Columns line up: each row's kind starts where the header's KIND does.
    at = lines[0].index("KIND")
    for line, row in zip(lines[1:], rows, strict=False):
        assert line[at:].startswith(row["kind"] + " ")
        assert line.endswith(row["title"])


def test_diag_list_shows_a_parameter_reference_as_written(cli) -> None:
    detailed = cli("diag", "list", "stale-backup", "--details").output
    assert "healthy: backup_time ge {$param: newest_write} (else fail)" in detailed
    rows = {r["id"]: r for r in json.loads(cli("diag", "list", "stale-backup", "--json").output)}
    assert {
        "metric": "backup_time",
        "op": "ge",
        "value": {"$param": "newest_write"},
        "verdict": "fail",
    } in rows["backup-freshness"]["expect"]
