"""How far long work has come, for people: the rate, the time left, and one line on a
terminal that says so (replaying a file, ``tagger rules diff``, the recompute).

The maths are plain functions of what is done, of how much there is and of the time spent,
so that they are tested without a clock. ``ProgressLine`` writes to standard error only:
the data a command prints on standard output stays as it would be without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Final

MIN_ELAPSED: Final = 0.5  # seconds of work before a rate means anything
REDRAW_EVERY: Final = 0.2  # seconds between two drawings on a terminal
PLAIN_EVERY: Final = 5.0  # seconds between two lines when standard error is no terminal
CHECK_EVERY: Final = 1024  # lines read between two looks at the clock (cheap per line)
CLEAR_LINE: Final = "\r\x1b[K"  # to the start of the line, and erase it


def rate(done: float, elapsed: float) -> float | None:
    """Units per second so far; None before there is enough to tell."""
    if elapsed < MIN_ELAPSED or done <= 0:
        return None
    return done / elapsed


def time_left(done: float, total: float | None, elapsed: float) -> float | None:
    """Seconds still to go at the rate so far; None without a total or a rate."""
    speed = rate(done, elapsed)
    if total is None or speed is None:
        return None
    return max(0.0, total - done) / speed


def share(done: float, total: float | None) -> float | None:
    """How much of the total is done, between 0 and 1 (an estimated total may be passed)."""
    if not total or total <= 0:
        return None
    return min(1.0, done / total)


def duration(seconds: float) -> str:
    """``4 s``, ``2 min 05 s``, ``1 h 02 min``: a time left, as people read it."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def size(count: float) -> str:
    """Bytes as ``812 B``, ``12.3 kB``, ``4.0 MB``, ``1.2 GB`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def number(count: float) -> str:
    """A count with thousands separated: ``12,345``."""
    return f"{count:,.0f}"


@dataclass(frozen=True, slots=True)
class Amount:
    """How to show what the work counts: bytes as sizes, or items by a name."""

    unit: str  # "B" for bytes, else the items' name ("users")

    def show(self, count: float) -> str:
        return size(count) if self.unit == "B" else f"{number(count)} {self.unit}"

    def per_second(self, speed: float) -> str:
        return f"{size(speed)}/s" if self.unit == "B" else f"{number(speed)} {self.unit}/s"


BYTES: Final = Amount("B")


def describe(
    label: str, done: float, total: float | None, elapsed: float, amount: Amount = BYTES
) -> str:
    """One line: ``replay: 31% (12.3 MB of 40.0 MB), 5.2 MB/s, 5 s left``; without a total
    the amount done and the rate; without a rate yet, the amount done."""
    part = share(done, total)
    if part is None or total is None:
        text = f"{label}: {amount.show(done)}"
    else:
        text = f"{label}: {part:.0%} ({amount.show(done)} of {amount.show(total)})"
    speed = rate(done, elapsed)
    if speed is not None:
        text += f", {amount.per_second(speed)}"
    left = time_left(done, total, elapsed)
    if left is not None:
        text += f", {duration(left)} left"
    return text


@dataclass
class ProgressLine:
    """The progress of one piece of work, on ``stream`` (standard error): redrawn in place
    on a terminal, else a plain line every ``PLAIN_EVERY`` seconds. ``note`` writes a line
    of its own (a bad line's message) without tearing the progress line."""

    stream: IO[str]
    label: str
    total: float | None = None
    amount: Amount = BYTES
    clock: Callable[[], float] = time.monotonic
    terminal: bool = False
    started: float = field(init=False)
    _drawn_at: float | None = field(init=False, default=None)
    _shown: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def update(self, done: float) -> None:
        """Show ``done`` if the last drawing is old enough."""
        now = self.clock()
        every = REDRAW_EVERY if self.terminal else PLAIN_EVERY
        if self._drawn_at is not None and now - self._drawn_at < every:
            return
        self._drawn_at = now
        self._write(describe(self.label, done, self.total, now - self.started, self.amount))

    def note(self, text: str) -> None:
        """A line of its own on the same stream, the progress line drawn again after it."""
        if self._shown and self.terminal:
            self.stream.write(CLEAR_LINE)
            self._shown = False
        self.stream.write(text + "\n")
        self._drawn_at = None

    def finish(self) -> None:
        """Take the progress line away (on a terminal): what follows starts a clean line."""
        if self._shown and self.terminal:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
        self._shown = False

    def _write(self, text: str) -> None:
        if self.terminal:
            self.stream.write(CLEAR_LINE + text)
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def counted(lines: Iterable[bytes], progress: ProgressLine, start: float = 0) -> Iterator[bytes]:
    """The lines, with the bytes read so far (from ``start``) shown on ``progress`` every
    ``CHECK_EVERY`` lines: the clock is read once per thousand lines, not per line."""
    done = start
    for number_read, line in enumerate(lines, start=1):
        done += len(line)
        if not number_read % CHECK_EVERY:
            progress.update(done)
        yield line
    progress.update(done)
