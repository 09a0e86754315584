"""An installed wheel finds its runbooks and templates without the checkout beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import ROOT


def test_wheel_carries_runbooks_and_templates_and_runs_without_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = dist.glob("playbook-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "playbook/_data/runbooks/data-integrity.yaml" in names
    assert "playbook/_data/runbooks/templates/data-integrity/initial.txt.j2" in names
    assert "playbook/_data/runbooks/drills/data-integrity.yaml" in names

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "PLAYBOOK_HOME": str(tmp_path / "home")}

    def playbook(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "playbook", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
        )

    listed = json.loads(playbook("playbooks", "--json").stdout)
    assert Path(listed["data-integrity"]).is_relative_to(target)
    incident = json.loads(playbook("open", "--title", "from a wheel", "--json").stdout)["id"]
    message = playbook("status", incident, "initial", "--set", "specific_issues=slow pages")
    assert message.returncode == 0, message.stderr
    assert message.stdout.startswith("[SERVICE ISSUE] Chatbot Fluxa")
    drills = playbook("drill", "--list", "--json")
    assert drills.returncode == 0, drills.stderr
    shipped = {row["runbook"] for row in json.loads(drills.stdout)["runbooks"]}
    assert {"data-integrity", "redis-index-loss"} <= shipped
