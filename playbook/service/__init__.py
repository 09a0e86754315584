"""The use cases both front ends call; :class:`Service` is the way in."""

from playbook.service.facade import (
    DRILL_MARK,
    DRILL_PREFIX,
    MAX_NOTE,
    Service,
    default_actor,
    defaults_from,
)

__all__ = ["DRILL_MARK", "DRILL_PREFIX", "MAX_NOTE", "Service", "default_actor", "defaults_from"]
