"""`tagger demo`'s live terminal view: a fixed panel (where everything is, throughput,
people per stage, top tags, alerts and dead letters) over the latest decisions.

Drawn with rich (``rich.live.Live`` on the terminal's alternate screen: redrawn in place,
the shell's scrollback left as it was), which the ``demo`` extra installs; the worker
neither needs nor imports it. ``render`` is a pure function of the demo's state, and the
view redraws only when the demo asks (``LiveView.show``, at most ``REFRESH_PER_SECOND``),
from the thread that changes the state.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from types import TracebackType
from typing import Final, Self, TextIO

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from streams.demo_state import DemoState, StackAddresses
from taggers.outputs import ALERT, OUTPUT_KINDS, TAG_CHANGE, TRANSITION

REFRESH_PER_SECOND: Final = 4.0
PANEL_ROWS: Final = 9  # rows of each column of the panel (stages, tags, alerts ...)
HEADER_ROWS: Final = 4  # the addresses and how to stop, inside their border

# A decision's colour in the log, by kind (a tag removed: its own).
_STYLES: Final = {
    TAG_CHANGE.name: "green",
    TRANSITION.name: "cyan",
    ALERT.name: "bold red",
}
_REMOVAL_STYLE: Final = "yellow"
_OTHER_STYLE: Final = "magenta"  # merges, forgotten people


def render(state: DemoState, where: StackAddresses, version: str, now: float) -> Layout:
    """The whole screen for ``state`` at ``now``: header, panel, log (to the height the
    console gives it)."""
    layout = Layout()
    layout.split_column(
        Layout(_header(state, where, version, now), name="header", size=HEADER_ROWS + 2),
        Layout(_panel(state, now), name="panel", size=PANEL_ROWS + 4),
        Layout(_LatestDecisions(state), name="log"),
    )
    return layout


def _header(state: DemoState, where: StackAddresses, version: str, now: float) -> Panel:
    rows = Table.grid(padding=(0, 2), expand=True)
    rows.add_column(style="bold", no_wrap=True, min_width=len("look up"))
    rows.add_column(no_wrap=True, overflow="ellipsis", ratio=1)  # cut on a narrow terminal
    rows.add_row(
        "worker",
        f"{where.web}  (pid {where.worker_pid})   /profiles/<user_id>   /tags/<tag>/members"
        "   /metrics",
    )
    rows.add_row(
        "broker",
        f"{where.broker}  (tansu, pid {where.broker_pid})      redis  {where.redis}"
        f"  (pid {where.redis_pid})",
    )
    rows.add_row("look up", f"{where.look_up} {state.last_user}")
    rows.add_row(
        "stop",
        Text.assemble(
            ("Ctrl-C stops everything", "bold yellow"),
            f" (again: kills at once)      worker log  {where.worker_log}",
        ),
    )
    title = f"tagger demo  ·  rules {version}  ·  {state.elapsed(now):.0f}s"
    return Panel(rows, title=title, title_align="left", border_style="blue")


def _panel(state: DemoState, now: float) -> Table:
    grid = Table(expand=True, show_edge=True, pad_edge=True, border_style="blue")
    # The events and stages as wide as they need (short names, numbers: never cut); tags
    # and alerts share the rest, their long names cut first on a narrow terminal.
    for title in ("events", "people per stage"):
        grid.add_column(title, no_wrap=True)
    for title in ("top tags (holders now)", "alerts"):
        grid.add_column(title, ratio=1, no_wrap=True, overflow="ellipsis")
    grid.add_row(
        _pairs(_throughput(state, now)),
        _pairs([(name, str(count)) for name, count in state.stage_counts()]),
        _pairs([(tag, str(count)) for tag, count in state.top_tags(PANEL_ROWS)]),
        _pairs(_alerts_and_dead_letters(state)),
    )
    return grid


def _throughput(state: DemoState, now: float) -> list[tuple[str, str]]:
    sent, decisions, handled = state.rates(now)
    worker = state.worker
    rows = [
        # the events sent, then those the worker has handled (its /metrics) and not yet
        ("sent", f"{state.sent} {sent:4.0f}/s"),
        ("worker in", "-" if worker is None else f"{worker.handled} {handled:4.0f}/s"),
        ("worker lag", "-" if worker is None else str(worker.lag)),
        ("decisions", f"{state.decisions} {decisions:4.0f}/s"),
    ]
    rows += [
        (kind.plural, str(state.tally.kinds[kind.name]))
        for kind in OUTPUT_KINDS
        if kind.summary_when_none or state.tally.kinds[kind.name]
    ]
    return rows


def _alerts_and_dead_letters(state: DemoState) -> list[tuple[str, str]]:
    """Alerts by name, then the dead letters (by reason): the dead letters always show."""
    reasons = sorted(state.dead_letters.items(), key=lambda item: (-item[1], item[0]))
    room = PANEL_ROWS - 1 - len(reasons[:2])  # keep a row or three for the dead letters
    alerts = state.alerts()
    rows = [(name, str(count)) for name, count in alerts[:room]]
    if len(alerts) > room:  # one fewer, and say how many more there are
        rows = [*rows[:-1], (f"+{len(alerts) - room + 1} more", "")]
    rows.append(("dead letters", str(sum(state.dead_letters.values()))))
    rows += [(f"  {reason}", str(count)) for reason, count in reasons[:2]]
    return rows


def _pairs(rows: list[tuple[str, str]]) -> Table:
    """Names and numbers in two columns, numbers right-aligned; '-' when there are none."""
    table = Table.grid(expand=True, padding=(0, 1, 0, 0))
    # The names take what the numbers leave: a long tag name is cut, never a number.
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column(justify="right", no_wrap=True)
    shown = rows[:PANEL_ROWS] or [("-", "")]
    for name, value in shown:
        table.add_row(name, Text(value, style="bold"))
    for _ in range(PANEL_ROWS - len(shown)):  # every column as tall: the panel keeps its size
        table.add_row("", "")
    return table


class _LatestDecisions:
    """The newest decisions that fit the height it is given, newest last, one row each."""

    def __init__(self, state: DemoState) -> None:
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or console.height
        room = max(height - 2, 0)  # inside the border
        shown = list(self.state.log)[-room:] if room else []
        lines = [Text(d.line, style=_style(d.kind, d.removal), no_wrap=True) for d in shown]
        for line in lines:
            line.truncate(max(options.max_width - 4, 1), overflow="ellipsis")
        title = f"latest decisions (newest last; {self.state.decisions} so far)"
        yield Panel(Group(*lines), title=title, title_align="left", height=height)


def _style(kind: str, removal: bool) -> str:
    return _REMOVAL_STYLE if removal else _STYLES.get(kind, _OTHER_STYLE)


class LiveView:
    """The demo's screen while it streams: a ``Live`` on ``out``'s alternate screen, left
    (the terminal as it was) when the block ends, whatever ends it."""

    def __init__(self, out: TextIO, where: StackAddresses, version: str) -> None:
        self.console = Console(file=out)
        self.where = where
        self.version = version
        self._live: Live | None = None
        self._drawn_at: float | None = None

    def __enter__(self) -> Self:
        # Redrawn only by ``show``: an automatic refresh would read the state from a
        # thread of its own while the demo changes it.
        self._live = Live(
            console=self.console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, traceback)
            self._live = None

    def show(self, state: DemoState, now: float) -> None:
        """Redraw for ``state``, unless it was drawn less than a refresh ago."""
        if self._live is None:
            return
        if self._drawn_at is not None and now - self._drawn_at < 1 / REFRESH_PER_SECOND:
            return
        self._drawn_at = now
        self._live.update(render(state, self.where, self.version, now), refresh=True)


def text_of(renderable: RenderableType, width: int, height: int) -> Iterator[str]:
    """``renderable`` as plain text lines on a console of that size (what a terminal
    would show, without colours): for tests and for a look at the screen."""
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(renderable)
    yield from console.export_text().splitlines()
