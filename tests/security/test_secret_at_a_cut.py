"""A long value is cut before it is shown (a dry run's old and new values, a row, an
extracted number's text). The cut must come after the secrets are masked: cut first, a
value ending in a password showed all but its last letter, and no later scrub could
recognise the stump (attacker F, break 4). Each function here is what puts such a value
on the screen, in the timeline and in the exports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from playbook import redaction
from playbook.adapters.http import numbers as http_numbers
from playbook.adapters.http import reader as http_reader
from playbook.adapters.mongo import writer as mongo_writer
from playbook.adapters.postgres import writer as pg_writer
from playbook.adapters.shell import extract

SECRET = "Zq9MARKERpw"


@pytest.fixture(autouse=True)
def _known_secret() -> Iterator[None]:
    redaction._forget_all()
    redaction.remember(SECRET)
    yield
    redaction._forget_all()


SHOWN: dict[str, Callable[[str], str]] = {
    "postgres action line": pg_writer._shown,
    "mongo action value": lambda text: mongo_writer._shown(text),
    "mongo action text": mongo_writer._plain,
    "http text": http_reader._escaped,
    "http row": http_reader._row_value,
    "http number's text": lambda text: http_numbers._described(text, lambda t: t),
    "shell extracted text": extract._shown,
}


@pytest.mark.parametrize("show", list(SHOWN.values()), ids=list(SHOWN))
@pytest.mark.parametrize("before", [50, 59, 70, 195, 250])
def test_no_part_of_a_secret_survives_the_cut(show: Callable[[str], str], before: int) -> None:
    shown = show("D" * before + SECRET + "E" * 5)
    for length in range(4, len(SECRET) + 1):
        assert SECRET[:length] not in shown, shown


@pytest.mark.parametrize("show", list(SHOWN.values()), ids=list(SHOWN))
def test_a_value_without_a_secret_is_cut_as_before(show: Callable[[str], str]) -> None:
    shown = show("D" * 300)
    assert "DDDD" in shown and "…" in shown and len(shown) < 300
