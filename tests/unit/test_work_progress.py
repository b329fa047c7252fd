"""The progress of long work: rate and time left as pure functions, and the line that
shows them, on a terminal (redrawn in place) and elsewhere (plain lines, seldom)."""

from __future__ import annotations

import io

import pytest

from streams.work_progress import (
    CLEAR_LINE,
    PLAIN_EVERY,
    Amount,
    ProgressLine,
    counted,
    describe,
    duration,
    rate,
    share,
    size,
    time_left,
)


def test_rate_is_done_over_elapsed_once_there_is_enough_to_tell() -> None:
    assert rate(1000, 4.0) == 250.0
    assert rate(1000, 0.1) is None  # too early: a rate over a tenth of a second misleads
    assert rate(0, 10.0) is None


def test_time_left_is_what_remains_at_the_rate_so_far() -> None:
    assert time_left(250, 1000, 5.0) == pytest.approx(15.0)  # 50 a second, 750 to go
    assert time_left(1200, 1000, 5.0) == 0.0  # an estimated total may be passed
    assert time_left(250, None, 5.0) is None  # no total: no time left
    assert time_left(250, 1000, 0.2) is None  # no rate yet


def test_share_is_clamped_and_needs_a_total() -> None:
    assert share(250, 1000) == 0.25
    assert share(1500, 1000) == 1.0
    assert share(10, None) is None
    assert share(10, 0) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(4.4, "4 s"), (59.6, "1 min 00 s"), (125, "2 min 05 s"), (3720, "1 h 02 min")],
)
def test_duration_as_people_read_it(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_sizes_and_counts() -> None:
    assert [size(n) for n in (812, 12_300, 4_000_000, 1_234_000_000)] == [
        "812 B",
        "12.3 kB",
        "4.0 MB",
        "1.2 GB",
    ]
    assert Amount("users").show(12345) == "12,345 users"
    assert Amount("users").per_second(812.4) == "812 users/s"


def test_describe_says_share_rate_and_time_left() -> None:
    assert (
        describe("replay", 12_300_000, 40_000_000, 2.0)
        == "replay: 31% (12.3 MB of 40.0 MB), 6.2 MB/s, 5 s left"  # 27.7 MB at 6.15 MB/s
    )
    # Standard input of unknown size: the amount and the rate, no share, no time left.
    assert describe("replay", 12_300_000, None, 2.0) == "replay: 12.3 MB, 6.2 MB/s"
    assert describe("replay", 1000, 4000, 0.1) == "replay: 25% (1.0 kB of 4.0 kB)"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_the_line_is_redrawn_in_place_and_taken_away() -> None:
    stream, clock = io.StringIO(), FakeClock()
    line = ProgressLine(stream, "replay", 4000, clock=clock, terminal=True)
    clock.now += 1.0
    line.update(1000)
    line.update(1500)  # too soon after: not drawn
    clock.now += 1.0
    line.note("line 7: invalid_json: ...")
    line.update(2000)
    line.finish()
    assert stream.getvalue() == (
        f"{CLEAR_LINE}replay: 25% (1.0 kB of 4.0 kB), 1.0 kB/s, 3 s left"
        f"{CLEAR_LINE}line 7: invalid_json: ...\n"
        f"{CLEAR_LINE}replay: 50% (2.0 kB of 4.0 kB), 1.0 kB/s, 2 s left"
        f"{CLEAR_LINE}"
    )


def test_elsewhere_a_plain_line_now_and_then() -> None:
    stream, clock = io.StringIO(), FakeClock()
    line = ProgressLine(stream, "rules diff", None, clock=clock, terminal=False)
    for _ in range(10):
        clock.now += PLAIN_EVERY / 4
        line.update(1000)
    line.finish()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert len(lines) == 3  # at 0.25, 1.5 and 2.75 x PLAIN_EVERY
    assert all(text.startswith("rules diff: 1.0 kB") for text in lines)


def test_counted_passes_the_lines_on_and_counts_their_bytes() -> None:
    stream, clock = io.StringIO(), FakeClock()
    line = ProgressLine(stream, "replay", None, clock=clock, terminal=False)
    lines = [b"x" * 9 + b"\n"] * 3000
    assert list(counted(lines, line, start=5)) == lines
    assert stream.getvalue().splitlines()[0] == "replay: 10.2 kB"  # after 1024 lines
