"""Publishers: where a status message goes when it leaves the terminal.

One module per destination (Statuspage, Slack, Teams, OpenStatus, a generic JSON
webhook), each a :class:`~playbook.publish.base.Publisher` found through the
``playbook.publishers`` entry-point group (a third-party package adds its own the same
way). They share one HTTP client (:mod:`playbook.publish.http`). Destinations are read
from the responder's own config only (:mod:`playbook.publish.config`).
"""
