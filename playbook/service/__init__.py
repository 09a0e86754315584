"""The use cases both front ends call; :class:`Service` is the way in.

The names below are what the CLI and the app use besides the service itself. The
guarded action's classes (:class:`~playbook.service.actions.GuardedRun` and its errors)
are imported from :mod:`playbook.service.actions` where they are needed: loading them
here would load the playbook model on every start.
"""

from playbook.service.context import default_actor
from playbook.service.diagnostics import PreparedRun, defaults_from
from playbook.service.facade import Service
from playbook.service.incidents import DRILL_PREFIX, MAX_NOTE
from playbook.service.status import DRILL_MARK

__all__ = [
    "DRILL_MARK",
    "DRILL_PREFIX",
    "MAX_NOTE",
    "PreparedRun",
    "Service",
    "default_actor",
    "defaults_from",
]
