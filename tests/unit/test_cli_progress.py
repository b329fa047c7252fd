"""What ``tagger replay`` and ``tagger rules diff`` tell a person at a terminal: progress
on standard error (on a terminal, or with ``--progress``) that never reaches standard
output, and a summary that names every tag."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from streams.cli import main
from streams.cli.summary import columns, shown_width
from taggers.bundled import BUNDLED_RULES
from taggers.simulate import SimulationConfig, simulate
from tests.support.core import edited_rules

TAGGER = [sys.executable, "-m", "streams.cli"]
CLEAR_LINE = "\r\x1b[K"


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few thousand lines: more than one look at the clock (every 1024 lines)."""
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    config = SimulationConfig(users=120, days=120, seed=3)
    path.write_text("".join(line + "\n" for line in simulate(config)), encoding="utf-8")
    return path


def on_a_terminal(argv: list[str]) -> tuple[bytes, str]:
    """Run ``tagger`` with standard error on a pseudo-terminal and standard output on a
    pipe; what each received."""
    leader, follower = pty.openpty()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=follower) as process:
        os.close(follower)
        err = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            err += chunk
        assert process.stdout is not None
        out = process.stdout.read()
    os.close(leader)
    assert process.returncode == 0, err
    return out, err.decode().replace("\r\n", "\n")  # the terminal's own line ends


def test_replay_shows_progress_on_a_terminal_and_clears_it(events: Path) -> None:
    out, err = on_a_terminal([*TAGGER, "replay", str(events), "-q"])
    assert out == b""  # --quiet: nothing on standard output, progress or not
    drawn = re.findall(r"\r\x1b\[K(replay: [^\r\n]*)", err)
    assert drawn, err
    assert re.fullmatch(r"replay: \d+% \([\d.]+ kB of [\d.]+ kB\)(, .*)?", drawn[0])
    # The line is taken away before the summary, which starts clean.
    assert f"{CLEAR_LINE}\n== 120 users" in err


def test_replay_progress_never_reaches_standard_output(events: Path) -> None:
    """With --progress and both streams piped: plain lines on standard error, and the
    JSON on standard output the same as without."""
    plain = subprocess.run(
        [*TAGGER, "replay", str(events), "--json", "--now", "2026-06-01T00:00:00Z"],
        capture_output=True,
        check=True,
    )
    shown = subprocess.run(
        [*TAGGER, "replay", str(events), "--json", "--now", "2026-06-01T00:00:00Z", "--progress"],
        capture_output=True,
        check=True,
    )
    assert shown.stdout == plain.stdout
    assert plain.stderr == b""  # not a terminal: no progress unless asked
    lines = shown.stderr.decode().splitlines()
    assert lines and all(line.startswith("replay: ") for line in lines)
    assert "\r" not in shown.stderr.decode()


def test_rules_diff_shows_both_replays_on_one_line(events: Path, tmp_path: Path) -> None:
    new = edited_rules(
        tmp_path / "new-rules", {"params.yaml": ("high_value_spend: 1000", "high_value_spend: 500")}
    )
    argv = ["rules", "diff", "--rules", str(new), "--against", str(BUNDLED_RULES)]
    out, err = on_a_terminal([*TAGGER, *argv, "--events", str(events)])
    assert "tag high_value" in out.decode()
    labels = re.findall(r"\r\x1b\[K(rules diff, replay \d of 2): (\d+)%", err)
    assert [label for label, _ in labels][:1] == ["rules diff, replay 1 of 2"]
    assert "rules diff, replay 2 of 2" in {label for label, _ in labels}
    # One share for both: the second replay goes on from the first one's half.
    second = [int(p) for label, p in labels if label.endswith("2 of 2")]
    assert min(second) >= 50
    assert err.endswith(CLEAR_LINE)


def test_the_summary_names_every_tag(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(events), "--json", "--now", "2026-06-01T00:00:00Z"]) == 0
    records = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    held = Counter(tag for r in records if r["kind"] == "profile" for tag in r["tags"])
    assert len(held) > 12  # more than the old summary's "top tags" showed
    assert main(["replay", str(events), "-q", "--now", "2026-06-01T00:00:00Z"]) == 0
    err = capsys.readouterr().err.splitlines()
    start = err.index(f"users by tag ({len(held)}):")
    cells = re.findall(r"(\S+) +([\d,]+)", " ".join(err[start + 1 :]))
    assert {name: int(n.replace(",", "")) for name, n in cells} == dict(held)


def test_columns_fill_down_and_align_wide_names() -> None:
    counts = [("seed_user", 143), ("interest_母婴", 27), ("koc", 7), ("vip", 1), ("x", 1000)]
    lines = columns(counts, width=70)  # three cells of 20 columns fit
    assert lines == [
        "   seed_user        143   koc                7   x              1,000",
        "   interest_母婴     27   vip                1",
    ]
    # Each column starts at the same place on the screen, wide characters counted twice.
    assert shown_width(lines[1]) == len(lines[0].rpartition("   x")[0])
    assert columns([], width=60) == []
