"""Status templates cannot hold playbook past their budget, even inside one C call, and
whatever they compute wrongly is a template error that names them (exit 6), never an
internal error (exit 70).

The attacker's template made one ``sum`` filter run for 40 s: the budget was checked only
between operations. Each case runs a real `playbook status` process, or the service's
own render, and measures the time it took and what was recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from helpers import ROOT, run_playbook

from playbook.errors import TemplateError
from playbook.render import template_worker, templates
from playbook.render.template_worker import HARD_SECONDS, render_isolated
from playbook.render.templates import MAX_SECONDS, MAX_SIZE, render

SLOW_SUM = "{% set a = [0] * 1000 %}{% set l = [a] * 3000 %}{{ (l | sum(start=[])) | length }}"
"""The attacker's template: 3,000 references to one 1,000-item list, summed in one call."""

TREE = (
    "{% set ns = namespace(l=[1], m=[1]) %}{% for i in range(40) %}"
    "{% set ns.l = [ns.l, ns.l] %}{% set ns.m = [ns.m, ns.m] %}{% endfor %}"
)
"""Two lists of 2**40 logical items each, built in 80 cheap steps by sharing."""
TUPLES = "{% set ns = namespace(t=(1,)) %}{% for i in range(40) %}{% set ns.t = (ns.t, ns.t) %}{% endfor %}"

ONE_C_CALL = {
    "sum of shared lists": SLOW_SUM,
    "sum with start=[] over a range": "{{ (range(9000)|map('string')|list|batch(1)|list)|sum(start=[]) }}",
    "+ doubling": "{% set ns = namespace(l=[0]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
    "join of a huge separator": "{{ ('x' * 8000).join(['y'] * 8000)|length }}",
    "join filter of nested lists": "{{ ([['x' * 8000] * 8000] * 8000)|join|length }}",
    "replace of the empty string": "{% set s = 'x' * 8000 %}{{ s|replace('', s)|length }}",
    "indent by a long prefix": "{{ ('a\\n' * 4000)|indent('x' * 8000)|length }}",
    "printing a shared tree": TREE + "{{ ns.l }}",
    "~ of a shared tree": TREE + "{{ 'x' ~ ns.l }}",
    "== of two shared trees": TREE + "{{ ns.l == ns.m }}",
    "is eq of two shared trees": TREE + "{{ ns.l is eq ns.m }}",
    "in of a shared tree": TREE + "{{ ns.l in [ns.m] }}",
    "tojson of a shared tree": TREE + "{{ ns.l|tojson|length }}",
    "hash of a shared tuple as a key": TUPLES + "{{ {ns.t: 1}|length }}",
    "lookup with a shared tuple": TUPLES + "{{ {'a': 1}[ns.t] is defined }}",
    "integer squaring": "{% set ns = namespace(i=3) %}{% for k in range(40) %}{% set ns.i = ns.i * ns.i %}{% endfor %}{{ ns.i }}",
    "power": "{{ 10 ** 100000 }}",
    "range past the budget": "{{ range(10 ** 9)|list|length }}",
    "lipsum": "{{ lipsum(8000, false, 7999, 8000)|length }}",  # ran for minutes in one call
}


@pytest.mark.parametrize("case", sorted(ONE_C_CALL))
def test_a_single_expensive_call_is_refused_before_it_runs(tmp_path: Path, case: str) -> None:
    (tmp_path / "t.j2").write_text(ONE_C_CALL[case])
    began = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, "t.j2", {})
    elapsed = time.monotonic() - began
    assert elapsed < MAX_SECONDS / 2, f"{elapsed:.2f} s: the call ran before it was refused"
    assert "'t.j2'" in caught.value.title
    assert "unsafe" in caught.value.title or "stopped" in caught.value.title


@pytest.fixture
def runbooks(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "runbooks", tmp_path / "runbooks")
    return tmp_path / "runbooks"


def test_the_attackers_template_ends_within_the_budget_in_a_real_process(runbooks: Path) -> None:
    home = runbooks.parent / "home"
    (runbooks / "templates" / "data-integrity" / "initial.txt.j2").write_text(SLOW_SUM)
    opened = run_playbook(
        "--data-dir", str(home), "open", str(runbooks / "data-integrity.yaml"), "-t", "x", "--json"
    )
    incident = json.loads(opened.stdout)["id"]
    began = time.monotonic()
    result = run_playbook(
        "--data-dir", str(home), "status", incident, "initial", "--set", "specific_issues=x"
    )
    elapsed = time.monotonic() - began
    assert result.returncode == 6, result.stderr
    assert "initial.txt.j2" in result.stderr and "Traceback" not in result.stderr
    assert elapsed < 3 * MAX_SECONDS + 2  # interpreter start-up included; it took 40 s
    timeline = run_playbook("--data-dir", str(home), "timeline", incident, "--json")
    assert [e["type"] for e in json.loads(timeline.stdout)] == ["opened"]  # nothing recorded


CRASHES = {
    "range(1000000)": "{{ range(1000000) | list | length }}",
    "10 ** 5000": "{{ 10 ** 5000 }}",
    "1 / 0": "{{ 1 / 0 }}",
    "unique of lists": "{{ [[1],[2]] | unique | list }}",
    "slice(0)": "{{ [1] | slice(0) | list }}",
    "truncate(-5)": '{{ "abc" | truncate(-5) }}',
    "wordwrap(0)": '{{ "a" | wordwrap(0) }}',
    "1 + 'a'": '{{ 1 + "a" }}',
    "int too long to print": "{{ 9 ** 4000 * 9 ** 700 }}",
    "float overflow": "{{ 1e308 * 10 ** 400 }}",
    "format of a wrong type": "{{ '%d'|format('x') }}",
    "nested past the parser": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
}


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_a_template_that_computes_wrongly_exits_6_naming_itself(
    cli: Cli, runbooks: Path, case: str
) -> None:
    (runbooks / "templates" / "data-integrity" / "initial.txt.j2").write_text(CRASHES[case])
    opened = cli("open", str(runbooks / "data-integrity.yaml"), "-t", "x", "--json")
    incident = json.loads(opened.output)["id"]
    result = cli("status", incident, "initial", "--set", "specific_issues=x")
    assert result.exit_code == 6, result.output  # a template error, not 70
    assert "initial.txt.j2" in result.output
    assert "internal error" not in result.output and "Traceback" not in result.output


@pytest.fixture
def stopped_worker(tmp_path: Path) -> Iterator[int]:
    """The worker, frozen as a C call that never returns would leave it (it holds the
    interpreter: not even its own signal handlers run)."""
    (tmp_path / "ok.j2").write_text("fine {{ x }}")
    assert render_isolated(tmp_path, "ok.j2", {"x": "1"}) == "fine 1"
    assert template_worker._worker is not None
    pid = template_worker._worker.proc.pid
    os.kill(pid, signal.SIGSTOP)
    yield pid
    if template_worker._worker is not None and template_worker._worker.proc.pid == pid:
        os.kill(pid, signal.SIGKILL)


def test_a_render_that_never_returns_is_killed_at_the_hard_deadline(
    tmp_path: Path, stopped_worker: int
) -> None:
    began = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render_isolated(tmp_path, "ok.j2", {"x": "2"})
    elapsed = time.monotonic() - began
    assert HARD_SECONDS <= elapsed < HARD_SECONDS + 2
    assert "'ok.j2' was stopped" in caught.value.title
    assert not Path(f"/proc/{stopped_worker}").exists()  # killed and reaped
    assert render_isolated(tmp_path, "ok.j2", {"x": "3"}) == "fine 3"  # a new one serves


def test_the_worker_dies_with_playbook(tmp_path: Path) -> None:
    """A worker stuck in a call outlives no playbook: it has a parent-death signal."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from playbook.render import template_worker as w\n"
        "w.render_isolated(Path(sys.argv[1]), 'ok.j2', {'x': '1'})\n"
        "print(w._worker.proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    (tmp_path / "ok.j2").write_text("fine {{ x }}")
    with subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        worker = int(proc.stdout.readline())
        os.kill(worker, signal.SIGSTOP)  # as if inside a long C call
        proc.kill()
    ends = time.monotonic() + 10
    while Path(f"/proc/{worker}").exists() and _state(worker) != "Z":
        assert time.monotonic() < ends, "the worker outlived playbook"
        time.sleep(0.01)


def _state(pid: int) -> str:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return "gone"
    return data[data.rfind(b")") + 2 :].split()[0].decode()


def test_the_shipped_templates_still_render_through_the_worker(service) -> None:
    incident = service.open(None, "x").id
    _, text = service.status(incident, "initial", {"specific_issues": "missing orders"})
    assert text.startswith("[SERVICE ISSUE]")
    assert templates._BUDGET.get() is None
    assert MAX_SIZE >= templates.MAX_OUTPUT  # a message's own size always fits


def test_a_worker_started_from_a_short_lived_thread_outlives_it(tmp_path: Path) -> None:
    """Its parent-death signal follows the thread that started it: the keeper thread
    starts it, so an app worker thread that renders and ends does not kill it."""
    import threading

    template_worker._stop()
    (tmp_path / "ok.j2").write_text("fine {{ x }}")
    done: list[str] = []
    thread = threading.Thread(
        target=lambda: done.append(render_isolated(tmp_path, "ok.j2", {"x": "1"}))
    )
    thread.start()
    thread.join()
    assert done == ["fine 1"]
    assert template_worker._worker is not None
    pid = template_worker._worker.proc.pid
    assert render_isolated(tmp_path, "ok.j2", {"x": "2"}) == "fine 2"
    assert template_worker._worker.proc.pid == pid  # the same worker, alive
