"""Every message the app posts: what a worker or a store job reports, named for what happened."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class Job:
    """Work for the store thread, and what to do on the event loop with its result."""

    label: str
    fn: Callable[[], Any]
    on_done: Callable[[Any], None] | None = None
    on_error: Callable[[BaseException], bool | None] | None = None
    records: bool = True
    """True when the job appends to the incident (its failure means: not recorded)."""


class JobDone(Message):
    """A store job finished; its result is ready for the UI."""

    def __init__(self, job: Job, result: Any) -> None:
        super().__init__()
        self.job = job
        self.result = result


class JobFailed(Message):
    """A store job failed; nothing it was to record was recorded."""

    def __init__(self, job: Job, error: BaseException) -> None:
        super().__init__()
        self.job = job
        self.error = error


class ConfigIgnored(Message):
    """A configuration file was ignored (an untrusted folder's playbook.toml); posted
    from whichever thread loaded the targets."""

    def __init__(self, notice: str) -> None:
        super().__init__()
        self.notice = notice
