"""A signal at a prompt: what the command says next starts on a line of its own, however
late in the prompt the signal lands (the pty test in test_exit_codes.py sends it once the
question is on the screen; on a busy machine that can be before the wait begins)."""

from __future__ import annotations

from typing import Any

import click
import pytest

from playbook.cli import terminal


def test_a_signal_landing_right_after_the_question_is_shown_still_ends_its_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = click.echo

    def question_then_signal(message: Any = None, **kwargs: Any) -> None:
        shown(message, **kwargs)
        if message and str(message).endswith(": "):  # the question, and not yet the wait
            raise KeyboardInterrupt

    monkeypatch.setattr(click, "echo", question_then_signal)
    with pytest.raises(KeyboardInterrupt):
        terminal.ask("Type 'rebuild' to apply")
    assert capsys.readouterr().err == "Type 'rebuild' to apply: \n"
