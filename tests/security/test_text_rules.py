"""Text from outside: one rule for control and bidirectional characters, one for lone
surrogates, and numbers in ASCII digits.

- Which characters are never shown raw is Unicode's call (general categories Cc, Cf, Zl,
  Zp, Cs), so every ``Bidi_Control`` character is among them: a hand list missed U+061C
  ARABIC LETTER MARK and the line separators. Typed text holding one is refused with
  nothing recorded; text from a database is escaped in both exports (the files on disk
  are read here), and `validate` prints a runbook's title escaped.
- A lone surrogate (``"\\ud800"`` in YAML, a template, an endpoint's JSON) is refused
  where a runbook author wrote it, with file, line and key, and escaped (the six
  characters ``\\ud800``) where a database or an endpoint returned it: the evidence event
  is recorded, and the evidence file is UTF-8.
- An integer parameter takes ASCII digits only: ``int()`` also reads ``"٣"`` as 3.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT, append_raw, run_playbook

from playbook.core.diagnostics import ParamError, coerce
from playbook.core.model import Param
from playbook.core.text import first_control, inline, is_unsafe, json_escaped, printable
from playbook.render import markdown as md
from playbook.service import Service
from playbook.store.sqlite import DB_NAME, SQLiteStore

UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}
EXPLICIT_BIDI = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}


def bidi_controls() -> list[str]:
    """Unicode's Bidi_Control property, from Unicode's own data: the explicit embedding,
    override and isolate classes, and the three implicit marks (looked up by name)."""
    explicit = [
        chr(c) for c in range(0x110000) if unicodedata.bidirectional(chr(c)) in EXPLICIT_BIDI
    ]
    marks = [
        unicodedata.lookup(name)
        for name in ("ARABIC LETTER MARK", "LEFT-TO-RIGHT MARK", "RIGHT-TO-LEFT MARK")
    ]
    return sorted(explicit + marks)


BIDI_CONTROLS = bidi_controls()


def raw_unsafe(text: str, keep: str = "\n\t") -> list[str]:
    return sorted(
        {f"U+{ord(c):04X}" for c in text if c not in keep and unicodedata.category(c) in UNSAFE}
    )


def rows(home: Path) -> list[tuple[Any, ...]]:
    if not (home / DB_NAME).exists():
        return []
    with sqlite3.connect(home / DB_NAME) as con:
        return con.execute("SELECT incident_id, seq, type, payload FROM events").fetchall()


# --------------------------------------------------------------- control and bidi


def test_the_characters_never_shown_raw_are_unicodes_categories() -> None:
    assert len(BIDI_CONTROLS) == 12  # U+061C, U+200E/F, U+202A–E, U+2066–9
    for code in range(0x110000):
        char = chr(code)
        assert is_unsafe(char) == (unicodedata.category(char) in UNSAFE), f"U+{code:04X}"
    assert all(is_unsafe(c) for c in BIDI_CONTROLS)
    for char in [*BIDI_CONTROLS, "\u2028", "\u2029", "\x85", "\x9b", "\ud800", "\U000e0041"]:
        shown = inline(f"a{char}b")
        assert raw_unsafe(shown) == [] and shown.startswith("a\\") and shown.endswith("b")
        assert json.loads(json_escaped(json.dumps(f"a{char}b", ensure_ascii=False))) == (
            f"a{char}b"
        )
    assert printable("line\n\tnext") == "line\n\tnext"
    assert inline("é ✓ 漢字 😀") == "é ✓ 漢字 😀"  # letters, symbols and emoji are text


@pytest.mark.parametrize(
    "char", [*BIDI_CONTROLS, "\u2028", "\u2029", "\u200b"], ids=lambda c: f"U+{ord(c):04X}"
)
def test_a_typed_title_with_a_bidi_control_or_separator_is_refused(cli, char: str) -> None:
    result = cli("open", "redis-index-loss", "--title", f"amount {char}-1,000")
    assert result.exit_code == 2, result.output
    assert f"{first_control(char)[1]} at character 8" in result.output  # type: ignore[index]
    assert rows(cli.home) == []  # nothing was recorded


def test_both_exports_escape_every_control_from_the_log(cli, tmp_path: Path) -> None:
    opened = cli("open", "redis-index-loss", "--title", "t", "--json")
    incident = json.loads(opened.output)["id"]
    hostile = "a\u061cb\u2028c\u2029d\u202ee\x85f\x9b2Jg\u200bh\U000e0041i"
    store = SQLiteStore(cli.home)
    try:  # as an older version, an import or a database row put them in the log
        service = Service(store, actor="alice")
        append_raw(service, incident, "renamed", {"from": "t", "to": hostile})
        append_raw(service, incident, "note_added", {"text": hostile})
    finally:
        store.close()
    for fmt in ("json", "markdown"):
        out = tmp_path / f"export.{fmt}"
        assert cli("export", incident, "--format", fmt, "-o", str(out)).exit_code == 0
        text = out.read_bytes().decode("utf-8")  # the file on disk
        assert raw_unsafe(text) == [], fmt
    document = json.loads((tmp_path / "export.json").read_text(encoding="utf-8"))
    assert document["summary"]["title"] == hostile  # the same text once loaded
    assert document["events"][-1]["payload"]["text"] == hostile
    markdown = (tmp_path / "export.markdown").read_text(encoding="utf-8")
    assert md.text(hostile) in markdown  # shown as escapes (md.text escapes the "\\" too)
    assert "u061cb" in md.text(hostile)
    for command in (("show", incident), ("timeline", incident), ("incidents",)):
        assert raw_unsafe(cli(*command).output) == [], command


def _runbook(tmp_path: Path, name: str = "rb.yaml", **changes: Any) -> Path:
    data = yaml.safe_load((ROOT / "runbooks" / "redis-index-loss.yaml").read_text())
    data.pop("drill", None)
    data.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_validate_prints_a_runbook_title_literally(tmp_path: Path) -> None:
    path = _runbook(tmp_path, title="Index loss \u202eevil\u061c")
    result = run_playbook("validate", str(path))  # a real process: the terminal's bytes
    assert result.returncode == 0, result.stderr
    assert raw_unsafe(result.stdout) == []
    assert "Index loss \\u202eevil\\u061c" in result.stdout


# ----------------------------------------------------------------- lone surrogates


def test_a_lone_surrogate_in_a_runbook_is_refused_with_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "rb.yaml"
    text = (ROOT / "runbooks" / "redis-index-loss.yaml").read_text(encoding="utf-8")
    text = text.split("\ndrill:")[0]
    text = text.replace("\ntitle: ", '\ntitle: "a\\ud800b"\nx_title: ', 1)
    path.write_text(text, encoding="utf-8")
    line = text.split("\n").index('title: "a\\ud800b"') + 1
    result = run_playbook("validate", str(path))
    assert result.returncode == 1
    assert f"{path}:{line}:8: title: the value holds \\ud800" in result.stderr
    assert "Traceback" not in result.stderr
    home = tmp_path / "home"
    opened = run_playbook("--data-dir", str(home), "open", str(path), "--title", "t")
    assert opened.returncode == 1 and "\\ud800" in opened.stderr
    assert rows(home) == []


def test_a_lone_surrogate_key_and_drill_data_are_refused(tmp_path: Path) -> None:
    source = (ROOT / "runbooks" / "stale-backup.yaml").read_text(encoding="utf-8")
    served = 'timestamp: "2025-10-31T09:27:49.002580"'
    assert served in source
    path = tmp_path / "drill.yaml"
    path.write_text(
        source.replace(served, 'timestamp: "2025-10-31T09:27:49\\ud800"\n          "\\udfff": 1'),
        encoding="utf-8",
    )
    (tmp_path / "drills").mkdir()
    for script in (ROOT / "runbooks" / "drills").glob("stale-backup*"):
        (tmp_path / "drills" / script.name).write_text(script.read_text(encoding="utf-8"))
    result = run_playbook("validate", str(path))
    assert result.returncode == 1, result.stdout
    assert "timestamp: the value holds \\ud800" in result.stderr
    assert "a key holds \\udfff" in result.stderr


@pytest.fixture
def templated(tmp_path: Path) -> tuple[Path, Path]:
    """A runbook whose status template is ``templates/t/i.j2``, and that template."""
    data = yaml.safe_load((ROOT / "runbooks" / "redis-index-loss.yaml").read_text())
    data.pop("drill", None)
    data["communications"] = {
        "template_dir": "templates",
        "templates": {
            "initial": {
                "title": "Initial",
                "file": "t/i.j2",
                "status": "investigating",
                "phase": data["phases"][0]["id"],
                "variables": {},
            }
        },
    }
    path = tmp_path / "tmpl.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    template = tmp_path / "templates" / "t" / "i.j2"
    template.parent.mkdir(parents=True)
    return path, template


def test_a_template_that_writes_a_lone_surrogate_is_refused(
    tmp_path: Path, templated: tuple[Path, Path]
) -> None:
    path, template = templated
    template.write_text('Status\n{{ "\\ud800" }}\n', encoding="utf-8")
    checked = run_playbook("validate", str(path))
    assert checked.returncode == 1
    assert f"{template}:2:1: communications.templates.initial.file:" in checked.stderr
    assert "\\ud800" in checked.stderr and "Traceback" not in checked.stderr

    home = tmp_path / "home"
    template.write_text("Status {{ service }}\n", encoding="utf-8")
    opened = run_playbook("--data-dir", str(home), "open", str(path), "--title", "t", "--json")
    incident = json.loads(opened.stdout)["id"]
    before = rows(home)
    # a template changed after the incident opened: the render refuses it
    for body in ('{{ "\\ud800" }}', '{% set s = "a\\udfff" %}{{ s[1:] }}'):
        template.write_text(body, encoding="utf-8")
        for extra in (["--preview"], []):
            result = run_playbook("--data-dir", str(home), "status", incident, "initial", *extra)
            assert result.returncode == 6, result.stderr
            assert "lone UTF-16 surrogate" in result.stderr
    assert rows(home) == before  # no status message was recorded


class _Endpoint(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def endpoint() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_endpoints_lone_surrogate_is_recorded_escaped_with_its_evidence(
    tmp_path: Path, endpoint: ThreadingHTTPServer
) -> None:
    _Endpoint.body = b'{"timestamp":"2025-10-31T09:27:49\\ud800","staff_configs":[{}]}'
    home = tmp_path / "home"
    opened = run_playbook("--data-dir", str(home), "open", "stale-backup", "--title", "t", "--json")
    incident = json.loads(opened.stdout)["id"]
    ran = run_playbook(
        "--data-dir",
        str(home),
        "diag",
        "run",
        incident,
        "backup-freshness",
        "--target",
        f"backups=http://127.0.0.1:{endpoint.server_port}",
        "--set",
        "newest_write=2025-10-31T10:00:00Z",
    )
    assert ran.returncode not in (70, 5), ran.stderr  # a verdict, not a crash or a refusal
    assert "Traceback" not in ran.stderr
    recorded = [json.loads(p) for _i, _s, kind, p in rows(home) if kind == "diagnostic_run"]
    assert len(recorded) == 1  # the evidence event is in the log
    assert recorded[0]["rows"][0]["backup_time"] == "2025-10-31T09:27:49\\ud800"
    evidence = Path(recorded[0]["file"])
    text = evidence.read_bytes().decode("utf-8")  # the evidence file is UTF-8
    assert json.loads(text.splitlines()[0])["backup_time"] == "2025-10-31T09:27:49\\ud800"
    for command in (("show", incident), ("export", incident), ("timeline", incident)):
        shown = run_playbook("--data-dir", str(home), *command)
        assert shown.returncode == 0 and raw_unsafe(shown.stdout) == [], command


def test_the_terminal_never_dies_on_text_it_cannot_encode() -> None:
    code = (
        "import click; from playbook.cli.terminal import safe_output; safe_output(); "
        "click.echo('a\\ud800b'); click.echo('c\\udfff', err=True)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"a\\ud800b\n" and result.stderr == b"c\\udfff\n"


# ------------------------------------------------------------------------ digits


@pytest.mark.parametrize("raw", ["٣", "３", "1_000", " 1 ", "+3", "3.0", "9" * 20, "-" + "9" * 19])
def test_an_integer_parameter_takes_ascii_digits_only(raw: str) -> None:
    param = Param(type="int")
    if raw in (" 1 ",):
        assert coerce("n", param, raw) == 1  # surrounding blanks are trimmed
        return
    with pytest.raises(ParamError, match=r"ASCII digits|out of range"):
        coerce("n", param, raw)


@pytest.mark.parametrize("raw", ["٣.٥", "nan", "inf", "-Infinity", "1_0", "1e999", "0x1p3"])
def test_a_number_parameter_takes_a_finite_ascii_number_only(raw: str) -> None:
    with pytest.raises(ParamError, match="finite number in ASCII digits"):
        coerce("x", Param(type="float"), raw)
    assert coerce("x", Param(type="float"), "2.5e-1") == 0.25


def test_a_diagnostic_given_arabic_indic_digits_is_refused_before_it_runs(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    opened = run_playbook(
        "--data-dir", str(home), "open", "redis-index-loss", "--title", "t", "--json"
    )
    incident = json.loads(opened.stdout)["id"]
    before = rows(home)
    ran = run_playbook(
        "--data-dir",
        str(home),
        "diag",
        "run",
        incident,
        "project-indexes",
        "--set",
        "expected=٣",
        "--target",
        "cache=redis://127.0.0.1:1/0",
    )
    assert ran.returncode == 2, ran.stderr
    assert "'expected' must be a whole number in ASCII digits" in ran.stderr
    assert rows(home) == before and not (home / "evidence").exists()


def test_a_duration_in_other_digits_is_refused_by_validate(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "runbooks" / "redis-index-loss.yaml").read_text())
    data.pop("drill", None)
    data["severity"]["levels"][0]["response"] = "١٥m"
    path = tmp_path / "rb.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    result = run_playbook("validate", str(path))
    assert result.returncode == 1 and "is not a duration" in result.stderr
