"""Loading playbooks: hostile and broken files get every problem, with file:line:col: key."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import ROOT, RUNBOOK, run_playbook

from playbook.adapters.plugins import load_playbook as load
from playbook.adapters.plugins import parse_playbook as parse
from playbook.core.loader import MAX_BYTES, PlaybookInvalid

GOOD = RUNBOOK.read_text(encoding="utf-8")
PROBLEM_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")


def problems_of(text: str, tmp_path: Path, name: str = "bad.yaml") -> list[str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlaybookInvalid) as caught:
        load(path)
    lines = [str(p) for p in caught.value.problems]
    for line in lines:
        assert PROBLEM_LINE.match(line), line
        assert line.startswith(str(path))
    return lines


def mutate(old: str, new: str, count: int = 1) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, count)


def test_shipped_playbook_is_valid(loaded) -> None:
    assert loaded.playbook.id == "data-integrity"
    assert len(loaded.sha256) == 64


def test_python_object_tag_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'version: 1\nid: !!python/object/apply:os.system ["touch {marker}"]\n'
    lines = problems_of(text, tmp_path)
    assert any(
        "tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed" in line
        for line in lines
    )
    assert not marker.exists()


def test_alias_bomb_is_stopped_by_the_node_budget(tmp_path: Path) -> None:
    rows = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        refs = ",".join([f"*a{i - 1}"] * 10)
        rows.append(f"a{i}: &a{i} [{refs}]")
    lines = problems_of("\n".join(rows) + "\n", tmp_path)
    assert any("expands to more than" in line for line in lines)


def test_deep_nesting_is_refused_before_parsing(tmp_path: Path) -> None:
    text = "a: " + "[" * 50_000 + "]" * 50_000 + "\n"
    lines = problems_of(text, tmp_path)
    assert any("nested more than 64 levels" in line for line in lines)


def test_ten_megabyte_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * (10 * 1024 * 1024) + b"\n")
    with pytest.raises(PlaybookInvalid) as caught:
        load(path)
    assert f"over the {MAX_BYTES:,}-byte limit" in str(caught.value.problems[0])


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = mutate("service: Chatbot Fluxa\n", "service: Chatbot Fluxa\nservice: Other\n")
    lines = problems_of(text, tmp_path)
    [dup] = [line for line in lines if "duplicate key 'service'" in line]
    first = GOOD.splitlines().index("service: Chatbot Fluxa") + 1
    assert f":{first + 1}:1: service:" in dup
    assert f"first at line {first}" in dup


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("default: P2", "default: NO", "'NO' is read as a boolean by YAML 1.1"),
        ("service: Chatbot Fluxa", "service: 3.10", "quote it to keep it as written: '3.10'"),
        ("service: Chatbot Fluxa", "service: on", "'on' is read as a boolean by YAML 1.1"),
        ("version: 1", "version: '1'", "version: Input should be 1"),
        (
            "service: Chatbot Fluxa",
            "service:",
            "service: Input should be a valid string, got nothing",
        ),
    ],
)
def test_wrong_types_are_not_coerced(tmp_path: Path, old: str, new: str, expected: str) -> None:
    lines = problems_of(mutate(old, new), tmp_path)
    assert any(expected in line for line in lines), lines


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    lines = problems_of(mutate("summary:", "sumary:"), tmp_path)
    assert any("unknown key 'sumary' (did you mean 'summary'?)" in line for line in lines), lines


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = mutate("service: Chatbot Fluxa", "service: 3.10\nservce: x")
    text = text.replace("default: P2", "default: off")
    lines = problems_of(text, tmp_path)
    assert len(lines) >= 3
    numbers = [int(PROBLEM_LINE.match(line)["line"]) for line in lines]  # type: ignore[index]
    assert numbers == sorted(numbers)


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("diagnostic", "no diagnostic named 'no-such-check'"),
        ("template", "no template named 'no-such-message'"),
        ("phase", "no phase named 'no-such-phase'"),
        ("param", "no parameter named 'no-such-param'"),
    ],
)
def test_dangling_references_are_errors(tmp_path: Path, what: str, expected: str) -> None:
    if what == "diagnostic":
        text = re.sub(r"(diagnostics:\n(\s+)- )([a-z-]+)", r"\1no-such-check", GOOD, count=1)
    elif what == "template":
        text = re.sub(r"templates: \[initial\]", "templates: [no-such-message]", GOOD, count=1)
    elif what == "phase":
        text = re.sub(r"phase: investigation", "phase: no-such-phase", GOOD, count=1)
    else:
        text = re.sub(r"\$param: since\b", "$param: no-such-param", GOOD, count=1)
    assert text != GOOD
    lines = problems_of(text, tmp_path)
    assert any(expected in line for line in lines), lines


def test_missing_template_file_is_an_error(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "runbooks" / "templates", tmp_path / "templates")
    text = mutate("data-integrity/initial.txt.j2", "data-integrity/nope.j2")
    lines = problems_of(text, tmp_path)
    assert any("template file 'data-integrity/nope.j2' not found" in line for line in lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("version: 1\n  bad: [\n", "YAML syntax"),
        ("- a\n- b\n", "a playbook is a mapping"),
    ],
)
def test_broken_files(tmp_path: Path, text: str, expected: str) -> None:
    lines = problems_of(text, tmp_path)
    assert any(expected in line for line in lines), lines


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PlaybookInvalid, match="1 problem") as caught:
        load(path)
    assert "not UTF-8" in str(caught.value.problems[0])


def test_a_nul_byte_is_named_with_its_line_and_column(tmp_path: Path) -> None:
    line_no = GOOD.splitlines().index(next(ln for ln in GOOD.splitlines() if "title:" in ln))
    line = GOOD.splitlines()[line_no]
    column = line.index(":") + 3
    text = GOOD.replace(line, line[: column - 1] + "\x00" + line[column - 1 :], 1)
    (problem,) = problems_of(text, tmp_path, "nul.yaml")
    assert f"nul.yaml:{line_no + 1}:{column}: character U+0000 is not allowed" in problem
    # The CLI: a clear error and exit 1 where there used to be "internal error" (70).
    path = tmp_path / "nul.yaml"
    for args in (("validate", str(path)), ("open", str(path), "--title", "x")):
        result = run_playbook(*args, env={"PLAYBOOK_HOME": str(tmp_path / "home")})
        assert result.returncode == 1, result.stderr
        assert f"{path}:{line_no + 1}:{column}:" in result.stderr and "U+0000" in result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_parse_accepts_text_directly() -> None:
    assert parse(GOOD, "inline.yaml").id == "data-integrity"


def test_validate_command_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(mutate("summary:", "sumary:"), encoding="utf-8")
    ok = run_playbook("validate", str(RUNBOOK))
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout
    failed = run_playbook("validate", str(RUNBOOK), str(bad))
    assert failed.returncode == 1
    assert f"{bad}:" in failed.stderr and "did you mean 'summary'" in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout
    usage = run_playbook("validate")
    assert usage.returncode == 2
    missing = run_playbook("validate", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_schema_command_prints_a_json_schema_of_the_model() -> None:
    import json

    result = run_playbook("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["properties"]["version"]["const"] == 1
    assert "diagnostics" in schema["properties"]
    assert schema["properties"]["service"]["description"]


def test_a_postgres_placeholder_that_is_not_a_param_is_named_with_its_line(tmp_path: Path) -> None:
    source = (ROOT / "runbooks" / "stale-backup.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "stale-backup.yaml"
    broken.write_text(source.replace("%(staff_id)s", "%(staffid)s", 1), encoding="utf-8")
    shutil.copytree(ROOT / "runbooks" / "drills", tmp_path / "drills")  # its drill script
    with pytest.raises(PlaybookInvalid) as raised:
        load(broken)
    (problem,) = raised.value.problems
    assert "%(staffid)s" in str(problem) and "query.sql" in str(problem)
    assert str(problem).startswith(f"{broken}:")


SHELL_DIAGNOSTIC = """diagnostics:
  recent-errors:
    kind: shell
    title: Errors in the application log
    target: app-db
    params:
      pattern: {type: string}
      context: {type: string, option: true, default: "-C2"}
    argv: [grep, {$param: context}, --, {$param: pattern}, /var/log/app.log]
    env: {LC_ALL: C, WHO: {$param: pattern}}
    network: ["db.internal:5432", "[::1]:6379"]
    exit_codes: [0, 1]
"""


def with_shell(diagnostic: str) -> str:
    anchor = "\ndiagnostics:\n  # -- Database Corruption\n"
    return mutate(anchor, "\n" + diagnostic + "  # -- Database Corruption\n")


def test_a_shell_diagnostic_declares_env_network_exit_codes_and_options() -> None:
    text = with_shell(SHELL_DIAGNOSTIC)
    shell = parse(text, "inline.yaml").diagnostics["recent-errors"]
    assert shell.kind == "shell"
    assert shell.network == ["db.internal:5432", "[::1]:6379"]
    assert shell.exit_codes == [0, 1] and shell.params["context"].option
    assert not shell.params["pattern"].option  # refused with a leading '-' by default
    plain = parse(with_shell(SHELL_DIAGNOSTIC.replace("    exit_codes: [0, 1]\n", "")), "i.yaml")
    assert plain.diagnostics["recent-errors"].exit_codes == [0]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"db.internal:5432"', '"db.internal"', "network[0]: Value error, write host:port"),
        ('"db.internal:5432"', '"db.internal:99999"', "network[0]: Value error, Port out of range"),
        ('"db.internal:5432"', '"https://db.internal:5432"', "network[0]: Value error"),
        ("LC_ALL: C", "PATH: /tmp", "PATH is set by playbook for every run"),
        ("LC_ALL: C", "'LC ALL': C", "env.LC ALL"),
        ("exit_codes: [0, 1]", "exit_codes: [0, 256]", "exit_codes[1]"),
        ("exit_codes: [0, 1]", "exit_codes: []", "exit_codes"),
        ("option: true", "option: 'yes'", "params.context.option"),
    ],
)
def test_shell_fields_are_checked_with_file_line_and_key(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    text = with_shell(SHELL_DIAGNOSTIC.replace(old, new))
    lines = problems_of(text, tmp_path)
    assert any("diagnostics.recent-errors." in line and expected in line for line in lines), lines


def test_the_schema_documents_the_shell_fields() -> None:
    import json

    schema = json.loads(run_playbook("schema").stdout)
    shell = schema["$defs"]["ShellDiagnostic"]["properties"]
    assert {"env", "network", "exit_codes"} <= set(shell)
    assert "port" in shell["network"]["description"] and shell["exit_codes"]["default"] == [0]
    assert "option" in schema["$defs"]["Param"]["properties"]
