"""The incident screen's checklist: the chosen section's steps and what is under each."""

from __future__ import annotations

import contextlib
import textwrap
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from playbook.core.text import inline
from playbook.tui.host import host
from playbook.tui.messages import ItemNotRecorded, ItemRecorded
from playbook.tui.widgets.sections import section_of, step_of
from playbook.tui.widgets.text import lit, verdict_text

if TYPE_CHECKING:
    from playbook.core.model import Playbook, Step
    from playbook.core.state import IncidentState


class Checklist(OptionList):
    """The steps of the section shown, each a heading followed by its diagnostics (⚙,
    with their last verdict), its guarded actions (⚡, with their last run's status) and
    its items ([ ], [x] once on disk, […] while being written).

    Each line's id says what it is: ``step:SECTION.STEP``, ``diag:SECTION.STEP:ID``,
    ``act:SECTION.STEP:ID``, ``item:SECTION.STEP.KEY``, or ``scenario:ID`` when the
    section is "choose-scenario". A new section starts on its first open item; a redraw
    of the same section keeps the highlighted line.
    """

    # repaint=False: the watchers below redraw what changed; a repaint of the whole widget
    # on top doubled the garbage made per key (more collector pauses, bench/app_bench.py).
    state: reactive[IncidentState | None] = reactive(
        None, always_update=True, init=False, repaint=False
    )
    """The incident as last read; a new reading redraws the list, keeping the line."""
    playbook: reactive[Playbook | None] = reactive(None, init=False, repaint=False)
    """The incident's playbook: each step's diagnostics, actions and item options."""
    section: reactive[str] = reactive("", always_update=True, init=False, repaint=False)
    """The section shown; setting it (even to the same one) starts on its first open item."""
    pending: reactive[frozenset[str]] = reactive(frozenset(), init=False, repaint=False)
    """Items whose tick is being written ([…] until it is on disk)."""
    running: reactive[frozenset[str]] = reactive(frozenset(), init=False, repaint=False)
    """Diagnostics running now ("running…" on their line)."""

    def watch_state(self) -> None:
        self.rebuild()

    def watch_playbook(self) -> None:
        self.rebuild()

    def watch_section(self) -> None:
        self.rebuild(first_open=True)

    def watch_pending(self, before: frozenset[str], after: frozenset[str]) -> None:
        for ref in before ^ after:
            self.refresh_item(ref)

    def watch_running(self) -> None:
        for index in range(self.option_count):
            ident = self.get_option_at_index(index).id or ""
            if ident.startswith("diag:"):
                self.replace_option_prompt_at_index(
                    index, self._diag_prompt(ident.rsplit(":", 1)[1])
                )

    # ------------------------------------------------------------------ drawing

    def rebuild(self, first_open: bool = False) -> None:
        """Draw every line again; highlight the first open item when ``first_open`` (or
        when the highlighted line is gone), else keep the highlighted line."""
        state, pb = self.state, self.playbook
        if state is None or pb is None or not self.section:
            return
        previous = self.highlighted
        options: list[Option] = []
        if self.section == "choose-scenario":
            for scenario in pb.scenarios:
                line = Text("● " if scenario.id in state.scenarios else "○ ", style="bold")
                line.append_text(lit(scenario.title, "bold"))
                if scenario.summary:
                    line.append(" — ")
                    line.append_text(lit(scenario.summary))
                options.append(Option(line, id=f"scenario:{scenario.id}"))
        else:
            section = section_of(state, self.section)
            for step in section["steps"] if section else []:
                heading = Text()
                heading.append_text(lit(step["title"], "bold underline"))
                step_ref = f"{self.section}.{step['id']}"
                options.append(Option(heading, id=f"step:{step_ref}"))
                pb_step = pb.steps().get(step_ref)
                for diag_id in pb_step.diagnostics if pb_step else []:
                    options.append(
                        Option(self._diag_prompt(diag_id), id=f"diag:{step_ref}:{diag_id}")
                    )
                for action_id in pb_step.actions if pb_step else []:
                    options.append(
                        Option(self._action_prompt(action_id), id=f"act:{step_ref}:{action_id}")
                    )
                for item in step["items"]:
                    options.append(
                        Option(
                            self._item_prompt(item["ref"], item["text"]), id=f"item:{item['ref']}"
                        )
                    )
        self.clear_options()
        self.add_options(options)
        if options:
            first = next(
                (
                    i
                    for i, o in enumerate(options)
                    if (o.id or "").startswith("item:") and (o.id or "")[5:] not in state.done
                ),
                0,
            )
            same = previous is not None and previous < len(options)
            self.highlighted = previous if same and not first_open else first

    def toggle(self) -> None:
        """Tick (or untick) the highlighted item: […] until the store has it, then
        :class:`ItemRecorded` bubbles up to the screen with the incident as recorded."""
        state, ref = self.state, self.highlighted_id.removeprefix("item:")
        if state is None or not self.highlighted_id.startswith("item:") or ref in self.pending:
            return
        app, ticked = host(self), ref not in state.done
        self.pending |= {ref}
        method = app.service.check if ticked else app.service.uncheck
        app.submit(
            f"tick {ref}",
            partial(method, state.id, ref),
            self,
            partial(ItemRecorded, ref, ticked, state.phase),
            partial(ItemNotRecorded, ref),
        )

    def on_item_recorded(self, message: ItemRecorded) -> None:
        self.pending -= {message.ref}

    def on_item_not_recorded(self, message: ItemNotRecorded) -> None:
        self.pending -= {message.ref}  # the app has said why; the item shows as it was

    def refresh_item(self, ref: str) -> None:
        """Redraw one item's line (its tick changed, or is being written)."""
        if self.state is None:
            return
        text = self.state.checklist.get(ref, ref)
        # The item may be in another section than the one shown: nothing to redraw then.
        with contextlib.suppress(OptionDoesNotExist):
            self.replace_option_prompt(f"item:{ref}", self._item_prompt(ref, text))

    def advance_from(self, ref: str) -> None:
        """Move down one line when the highlighted line is item ``ref`` (just ticked)."""
        option = self.highlighted_option
        if option is not None and option.id == f"item:{ref}":
            index = self.highlighted or 0
            if index + 1 < self.option_count:
                self.highlighted = index + 1

    def _item_prompt(self, ref: str, text: str) -> Text:
        assert self.state is not None
        line = Text("  ")
        if ref in self.pending:
            line.append("[…] ", style="yellow")
        elif ref in self.state.done:
            line.append("[x] ", style="bold green")
        else:
            line.append("[ ] ")
        options = self._item_options(ref)
        if options:
            text = f"{text} ({' / '.join(options)})"
        # Wrap by hand so continuation lines stay under the text, not under the box.
        width = max(20, self.scrollable_content_region.width - 8)
        lines = textwrap.wrap(inline(text), width) or [""]
        line.append(lines[0], style="dim" if ref in self.state.done else "")
        for rest in lines[1:]:
            line.append("\n      " + rest, style="dim" if ref in self.state.done else "")
        return line

    def _item_options(self, ref: str) -> list[str]:
        if self.playbook is None:
            return []
        section, step_id, key = [*ref.split(".", 2), "", ""][:3]
        step = self.playbook.steps().get(f"{section}.{step_id}")
        item = next((i for i in step.items if i.key == key), None) if step else None
        return list(item.options) if item else []

    def _diag_prompt(self, diag_id: str) -> Text:
        assert self.playbook is not None and self.state is not None
        diag = self.playbook.diagnostics[diag_id]
        line = Text("  ⚙ ", style="cyan")
        title = diag.title if len(diag.title) <= 44 else diag.title[:43] + "…"
        line.append_text(lit(title))
        line.append_text(lit(f"  [{diag.kind} → {diag.target}] ", "dim"))
        last = self.state.last_runs().get(diag_id)
        if diag_id in self.running:
            line.append(" running… ", style="bold yellow")
        elif diag.writes:
            line.append(" writes: not run ", style="dim red")
        elif last is not None:
            line.append_text(verdict_text(last.verdict))
            line.append(f" {last.at:%H:%M}Z", style="dim")
        else:
            line.append(" not run ", style="dim")
        return line

    def _action_prompt(self, action_id: str) -> Text:
        assert self.playbook is not None and self.state is not None
        action = self.playbook.actions[action_id]
        line = Text("  ⚡ ", style="bold yellow")
        title = action.title if len(action.title) <= 36 else action.title[:35] + "…"
        line.append_text(lit(title))
        line.append_text(lit(f"  [{action.do.operation} → {action.target}] ", "dim"))
        runs = [r for r in self.state.actions.values() if r.action == action_id]
        if runs:
            line.append_text(lit(f" {runs[-1].status} ", "bold"))
        else:
            line.append(" not run ", style="dim")
        return line

    # ------------------------------------------------------------------ what is highlighted

    @property
    def highlighted_id(self) -> str:
        """The highlighted line's id ("" when none is highlighted)."""
        option = self.highlighted_option
        return (option.id or "") if option else ""

    def highlighted_step(self) -> Step | None:
        """The playbook step the highlighted line belongs to."""
        located = step_of(self.highlighted_id)
        if self.playbook is None or located is None:
            return None
        return self.playbook.steps().get(".".join(located))

    def highlighted_diagnostics(self) -> tuple[str | None, list[str]]:
        """(the highlighted diagnostic, else the step's first; every one of the step's)."""
        ident = self.highlighted_id
        step = self.highlighted_step()
        every = list(step.diagnostics) if step else []
        one = (
            ident.rsplit(":", 1)[1] if ident.startswith("diag:") else (every[0] if every else None)
        )
        return one, every

    def highlighted_action(self) -> str | None:
        """The highlighted guarded action, else the step's first (None: the step has none)."""
        ident = self.highlighted_id
        step = self.highlighted_step()
        every = list(step.actions) if step else []
        return ident.rsplit(":", 1)[1] if ident.startswith("act:") else next(iter(every), None)
