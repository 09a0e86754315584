"""Every message the app posts, named for what happened.

Two kinds of work leave the event loop, and both come back only as messages:

- **Store jobs** run one at a time, in the order the responder asked for them, on the app's
  store thread (:meth:`playbook.tui.app.PlaybookApp.submit`). The app hears of each one
  (:class:`JobDone`, :class:`JobFailed`: it counts them and says what failed), and hands
  the node that asked a message of the job's own type, built from the result
  (``done``) or the error (``failed``).
- **Thread workers** (a diagnostic's run, a guarded action's stage, a drill's data check)
  run :func:`post_outcome`, which posts the worker's typed result or failure to the node
  that started it. No worker touches a widget, and nothing routes on a worker's name.

Messages that answer a store job do not bubble: only the node that asked cares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from textual.message import Message

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

    from playbook.core.events import Event
    from playbook.core.loader import LoadedPlaybook
    from playbook.core.model import Playbook
    from playbook.core.state import IncidentState
    from playbook.service import PreparedRun
    from playbook.service.actions import GuardedRun, Outcome

T = TypeVar("T")


@dataclass
class Card:
    """A drill's scorecard ready to show: the incident as it was read, and the card's text."""

    state: IncidentState
    text: str
    markdown: str | None
    fresh: bool
    """True when a data check was made for it; False when it shows what was recorded."""


# ============================================================================ store jobs


@dataclass
class Job:
    """Work for the store thread, and who hears how it went."""

    label: str
    """What the job does, in words ("tick …", "read incident"): said when it fails."""
    fn: Callable[[], Any]
    reply_to: MessagePump | None = None
    """The node that asked; it gets ``done(result)`` or ``failed(error)``."""
    done: Callable[[Any], Message] | None = None
    """The message for ``reply_to`` when ``fn`` returned: a message class taking the
    result (or a ``functools.partial`` of one, carrying what the asker needs to know)."""
    failed: Callable[[BaseException], Message] | None = None
    """The message for ``reply_to`` when ``fn`` raised."""
    tells: tuple[type[BaseException], ...] = ()
    """Errors ``reply_to`` reports itself: the app's generic notice is not shown for them."""
    records: bool = True
    """True when the job appends to the incident (its failure means: not recorded)."""


class JobDone(Message):
    """A store job finished; its result is ready for the UI (posted to the app)."""

    def __init__(self, job: Job, result: Any) -> None:
        super().__init__()
        self.job = job
        self.result = result


class JobFailed(Message):
    """A store job failed; nothing it was to record was recorded (posted to the app)."""

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


class PlaybookLoaded(Message, bubble=False):
    """The playbook given to `playbook run` is valid and built."""

    def __init__(self, loaded: LoadedPlaybook) -> None:
        super().__init__()
        self.loaded = loaded


class PlaybookNotLoaded(Message, bubble=False):
    """The playbook given to `playbook run` could not be loaded; ``error`` says why."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class IncidentFound(Message, bubble=False):
    """``--resume``'s reference (a unique part of an id) names ``incident_id``."""

    def __init__(self, incident_id: str) -> None:
        super().__init__()
        self.incident_id = incident_id


class IncidentNotFound(Message, bubble=False):
    """``--resume``'s reference names no incident, or more than one."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class IncidentsListed(Message, bubble=False):
    """Every incident in the log, as folded now."""

    def __init__(self, states: list[IncidentState]) -> None:
        super().__init__()
        self.states = states


class IncidentOpened(Message, bubble=False):
    """A new incident is on disk."""

    def __init__(self, state: IncidentState) -> None:
        super().__init__()
        self.state = state


class IncidentRead(Message, bubble=False):
    """The incident as the log has it now (a periodic or requested read)."""

    def __init__(self, state: IncidentState) -> None:
        super().__init__()
        self.state = state


class PlaybookBuilt(Message, bubble=False):
    """The playbook an incident opened with, rebuilt from its snapshot ``sha``."""

    def __init__(self, sha: str, playbook: Playbook) -> None:
        super().__init__()
        self.sha = sha
        self.playbook = playbook


class ChangeRecorded(Message, bubble=False):
    """A change to the incident is on disk; ``said`` tells the responder (may be empty)."""

    def __init__(self, state: IncidentState, said: str = "") -> None:
        super().__init__()
        self.state = state
        self.said = said


class ItemRecorded(Message):
    """A checklist item's tick (or untick) is on disk; bubbles up from the checklist."""

    def __init__(self, ref: str, ticked: bool, phase_before: str, state: IncidentState) -> None:
        super().__init__()
        self.ref = ref
        self.ticked = ticked
        self.phase_before = phase_before
        """The phase before the tick: a tick in a later phase moves the incident there."""
        self.state = state


class ItemNotRecorded(Message, bubble=False):
    """A tick was not recorded (the app has said why); the item shows as it was."""

    def __init__(self, ref: str, error: BaseException) -> None:
        super().__init__()
        self.ref = ref
        self.error = error


class ScenarioFollowed(Message, bubble=False):
    """The incident follows ``scenario`` now (recorded)."""

    def __init__(self, scenario: str, state: IncidentState) -> None:
        super().__init__()
        self.scenario = scenario
        self.state = state


class StatusSent(Message, bubble=False):
    """A status message of ``kind`` was rendered by the service, its exact text recorded."""

    def __init__(self, kind: str, result: tuple[IncidentState, str]) -> None:
        super().__init__()
        self.kind = kind
        self.state, self.text = result


class PreviewRendered(Message, bubble=False):
    """The composer's preview of ``kind`` for ``values`` came back from the service:
    ``text``, or the template's ``error``."""

    def __init__(
        self, kind: str, values: dict[str, str], text: str, error: Exception | None
    ) -> None:
        super().__init__()
        self.kind = kind
        self.values = values
        self.text = text
        self.error = error


class FileWritten(Message, bubble=False):
    """A file was written (atomically) at ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class TimelineRead(Message, bubble=False):
    """The incident's events, and their rows formatted for the timeline (empty when the
    events are the ones already shown)."""

    def __init__(self, result: tuple[list[Event], list[tuple[str, ...]]]) -> None:
        super().__init__()
        self.events, self.rows = result


class CardMade(Message, bubble=False):
    """A drill's scorecard from what was recorded (no new data check); ``note`` says why."""

    def __init__(self, card: Card, note: str = "") -> None:
        super().__init__()
        self.card = card
        self.note = note


# ============================================================================ diagnostics


class DiagnosticPrepared(Message, bubble=False):
    """A diagnostic's parameters and target were checked; it is ready to run."""

    def __init__(self, prepared: PreparedRun, show: bool) -> None:
        super().__init__()
        self.prepared = prepared
        self.show = show
        """Open the result when it is recorded (it was asked for by its own key)."""


class DiagnosticNotPrepared(Message, bubble=False):
    """A diagnostic was not run: a parameter, its target or the configuration is wrong."""

    def __init__(self, diagnostic_id: str, error: BaseException) -> None:
        super().__init__()
        self.diagnostic_id = diagnostic_id
        self.error = error


class DiagnosticProgress(Message):
    """A running diagnostic said how far it got (posted from its worker's thread)."""

    def __init__(self, diagnostic_id: str, text: str) -> None:
        super().__init__()
        self.diagnostic_id = diagnostic_id
        self.text = text


class DiagnosticFinished(Message):
    """A run ended, whatever its verdict; ``payload`` is its evidence, not yet recorded."""

    def __init__(self, diagnostic_id: str, payload: dict[str, Any]) -> None:
        super().__init__()
        self.diagnostic_id = diagnostic_id
        self.payload = payload


class DiagnosticFailed(Message):
    """A run raised instead of returning evidence (a bug, not a verdict): nothing recorded."""

    def __init__(self, diagnostic_id: str, error: BaseException) -> None:
        super().__init__()
        self.diagnostic_id = diagnostic_id
        self.error = error


class DiagnosticRecorded(Message):
    """A run's evidence is in the incident; bubbles up to the incident screen."""

    def __init__(
        self, diagnostic_id: str, payload: dict[str, Any], show: bool, state: IncidentState
    ) -> None:
        super().__init__()
        self.diagnostic_id = diagnostic_id
        self.payload = payload
        self.show = show
        self.state = state


# ============================================================================ guarded actions


class ActionStarted(Message):
    """A guarded run exists (new, or an earlier one reopened): target and phrase known."""

    def __init__(self, run: GuardedRun) -> None:
        super().__init__()
        self.run = run


class ActionPlanned(Message):
    """The dry run is recorded: what the action would change (nothing was written)."""

    def __init__(self, plan: Any) -> None:
        super().__init__()
        self.plan = plan


class ActionBackedUp(Message):
    """The backup stage is recorded; ``info`` is None when the dry run found nothing to
    change, so nothing was backed up and nothing will be."""

    def __init__(self, info: dict[str, Any] | None) -> None:
        super().__init__()
        self.info = info


class ActionResumed(Message):
    """An earlier run is open again, its backup at hand, ready to be rolled back."""

    def __init__(self, run: GuardedRun) -> None:
        super().__init__()
        self.run = run


class ActionApplied(Message):
    """Lock, apply and verify are recorded; ``outcome`` says how they went."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


class ActionRolledBack(Message):
    """The rollback is recorded; ``numbers`` counts what it restored."""

    def __init__(self, numbers: dict[str, int]) -> None:
        super().__init__()
        self.numbers = numbers


class ActionRefusalRecorded(Message):
    """A mistyped confirmation phrase is recorded as refused (nothing was written)."""

    def __init__(self, _result: object = None) -> None:
        super().__init__()


class ActionProgress(Message):
    """A running stage said how far it got (posted from its worker's thread)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ActionStageFailed(Message):
    """A stage raised: it did not happen, and the engine recorded what it could."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


# ============================================================================ drill


class DrillChecked(Message):
    """The drill's data was compared with its fingerprint, the answer recorded."""

    def __init__(self, card: Card) -> None:
        super().__init__()
        self.card = card


class DrillCheckFailed(Message):
    """The data check could not be made (the sandbox, the store): nothing recorded."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


# ============================================================================ workers


def post_outcome(
    node: MessagePump,
    work: Callable[[], T],
    done: Callable[[T], Message],
    failed: Callable[[BaseException], Message],
) -> None:
    """Run ``work`` and post ``done(result)`` or ``failed(error)`` to ``node``.

    The body of every thread worker of the app: it runs on the worker's thread and hands
    its outcome to the event loop as a message (``post_message`` is thread-safe), so no
    worker touches a widget and no handler has to ask a worker what it was.
    """
    try:
        result = work()
    except Exception as error:
        node.post_message(failed(error))
    else:
        node.post_message(done(result))
