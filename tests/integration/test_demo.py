"""`tagger demo`, as the README runs it: it shows decisions (plain lines on a pipe, a live
view on a terminal), stops in order on Ctrl-C (one or two, sent to its process group as a
terminal does) and leaves no process or folder behind.

Each demo runs in a process group of its own, in a scratch folder with its own TMPDIR; the
processes it started are found in /proc (its descendants) while it runs.
"""

from __future__ import annotations

import fcntl
import os
import queue
import re
import shlex
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from streams.rules_board import RulesBoard
from taggers.ruleset import load_rules
from tests.support.core import edited_rules

pytestmark = pytest.mark.integration
STARTUP_SECONDS = 120  # tansu, redis-server and a Faust worker on a loaded machine
STOP_SECONDS = 10.0  # the worker's bounded stop (6 s), and the servers' (quick)
STOP_LINES = ("generator stopped", "worker stopped", "redis-server stopped", "broker stopped")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """A process's state, parent and start time (clock ticks), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after the command, which may hold spaces
    return fields[0], int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every process below ``root``, by pid, with its start time (to tell a reused pid)."""
    parents: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            parents[int(entry)] = (found[1], found[2])
    below: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in parents.items():
            if ppid == parent and pid not in below:
                below[pid] = started
                frontier.append(pid)
    return below


def still_running(processes: dict[int, int]) -> list[int]:
    """Those of ``processes`` that still run (a zombie has ended)."""
    left = []
    for pid, started in processes.items():
        found = _stat(pid)
        if found is not None and found[2] == started and found[0] != "Z":
            left.append(pid)
    return left


def with_tmpdir_under(folder: Path) -> list[int]:
    """Processes whose TMPDIR is ``folder`` or below: what a demo started, reparented or not."""
    wanted = f"TMPDIR={folder}".encode()
    found = []
    for entry in os.listdir("/proc"):
        try:
            environment = Path(f"/proc/{entry}/environ").read_bytes()
        except (OSError, ValueError):  # not a process, gone, or not ours to read
            continue
        if any(item.startswith(wanted) for item in environment.split(b"\0")):
            found.append(int(entry))
    return found


class Demo:
    """``tagger demo`` in its own process group, its output read as it comes."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.scratch = tmp_path / "tmp"  # TMPDIR: where its temporary folders go
        self.scratch.mkdir()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "demo", "--rate", "400", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=os.environ | {"TMPDIR": str(self.scratch)} | (env or {}),
            start_new_session=True,  # a group of its own, as a shell gives a foreground job
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.started: dict[int, int] = {}

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, wanted: Callable[[str], bool], timeout: float = STARTUP_SECONDS) -> str:
        """The first line (from now on) that is ``wanted``; fails on a timeout or an exit."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"the demo ended early:\n{self.output}\n{self.stderr()}")
            self.lines.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"timed out; the demo printed:\n{self.output}")

    def note_children(self) -> None:
        """Remember every process the demo started, as it runs now."""
        self.started = descendants(self.process.pid)
        assert len(self.started) >= 3, self.started  # the broker, redis-server, the worker

    def ctrl_c(self) -> None:
        """SIGINT to the demo's whole process group, exactly as a terminal sends it."""
        os.killpg(self.process.pid, signal.SIGINT)

    def wait(self, timeout: float) -> tuple[int, float]:
        """Its exit code, and how long it took to exit from now; reads the rest of stdout."""
        began = time.monotonic()
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the demo did not stop within {timeout}s:\n{self.output}"
            ) from None
        took = time.monotonic() - began
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code, took

    def stderr(self) -> str:
        """What it wrote on stderr (once it has exited)."""
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def close(self) -> None:
        """Kill it and what it started if they still run (a failed test); close its pipes."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # In sessions of their own; redis-server writes its title over its environment,
        # so it is found among the processes noted while the demo ran.
        for pid in {*with_tmpdir_under(self.scratch), *still_running(self.started)}:
            os.kill(pid, signal.SIGKILL)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        self._reader.join(timeout=10)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def assert_nothing_left(self) -> None:
        """No process it started still runs, and it left no temporary folder."""
        assert still_running(self.started) == [], f"left running:\n{self.output}"
        assert with_tmpdir_under(self.scratch) == [], f"left running:\n{self.output}"
        assert list(self.scratch.iterdir()) == [], f"temporary folders left:\n{self.output}"


@pytest.fixture
def demos() -> Iterator[Callable[..., Demo]]:
    """Start demos with ``demos(tmp_path, *args, env=...)``; each is closed after the test."""
    started: list[Demo] = []

    def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Demo:
        started.append(Demo(tmp_path, *args, env=env))
        return started[-1]

    yield start
    for demo in started:
        demo.close()


def _shop(tmp_path: Path) -> str:
    """A rule directory of its own (a version of its own), named relative to ``tmp_path``."""
    edited_rules(tmp_path / "shop", {"params.yaml": ("high_value_spend: ", "high_value_spend:  ")})
    return load_rules(tmp_path / "shop").version


def _redis_url(demo: Demo) -> str:
    line = next(line for line in demo.lines if line.startswith("broker "))
    found = re.search(r"redis (redis://\S+)", line)
    assert found is not None, line
    return found.group(1)


def test_ctrl_c_stops_everything_in_order_and_leaves_nothing(
    tmp_path: Path, demos: Callable[..., Demo]
) -> None:
    version = _shop(tmp_path)
    demo = demos(tmp_path, "--rules", "shop")  # relative to the demo's working directory
    # A summary that names a user who has a profile already, with a command to read it.
    look_up = demo.wait_for_line(
        lambda line: line.startswith("   look up a user:") and not line.endswith("<user_id>")
    )
    demo.note_children()
    assert f"rules: {tmp_path / 'shop'} (version {version})" in demo.lines
    assert any(" tag +" in line for line in demo.lines), demo.output
    summary = next(line for line in demo.lines if line.startswith("=="))
    assert "events sent" in summary and "alerts" in summary
    # The printed command works as is, from elsewhere.
    words = shlex.split(look_up.split(":", 1)[1])
    variables = dict(word.split("=", 1) for word in words if "=" in word)
    command = [word for word in words if "=" not in word]
    assert command[:2] == ["tagger", "profile"], look_up
    shown = subprocess.run(
        [sys.executable, "-m", "streams.cli", *command[1:]],
        env=os.environ | variables,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"user {command[-1]}: stage "), shown.stdout
    # The worker runs the rules the demo names.
    with redis.Redis.from_url(_redis_url(demo)) as client:
        assert {w.version for w in RulesBoard(client).workers()} == {version}

    demo.ctrl_c()
    code, took = demo.wait(timeout=60)
    errors = demo.stderr()
    assert code == 0, f"{demo.output}\n{errors}"
    assert took < STOP_SECONDS, f"{took:.1f}s to stop:\n{demo.output}"
    assert "Traceback" not in errors, errors
    # In order, the worker leaving its group by itself while the broker is still up.
    steps = [line.strip() for line in demo.lines if line.strip().startswith(STOP_LINES)]
    assert [step.split(" (")[0] for step in steps] == list(STOP_LINES), demo.output
    assert demo.lines[-1].startswith("stopped: broker, redis-server and worker are gone")
    demo.assert_nothing_left()


def test_two_ctrl_c_stop_at_once_without_a_traceback(
    tmp_path: Path, demos: Callable[..., Demo]
) -> None:
    version = _shop(tmp_path)
    demo = demos(tmp_path, env={"TAGGER_RULES_DIR": "shop"})  # relative, as a user may set it
    demo.wait_for_line(lambda line: " tag +" in line)  # the worker runs these rules
    demo.note_children()
    assert f"rules: {tmp_path / 'shop'} (version {version})" in demo.lines

    demo.ctrl_c()
    time.sleep(0.05)  # as fast as a person presses twice
    demo.ctrl_c()
    code, took = demo.wait(timeout=60)
    errors = demo.stderr()
    assert code == 0, f"{demo.output}\n{errors}"
    assert took < 5.0, f"{took:.1f}s to stop:\n{demo.output}"
    assert "Traceback" not in errors, errors
    assert demo.lines[-1].startswith("stopped: broker, redis-server and worker are gone")
    demo.assert_nothing_left()


@pytest.mark.parametrize("after", ["starting a local broker", "broker "])
def test_ctrl_c_while_it_starts_leaves_nothing(
    tmp_path: Path, demos: Callable[..., Demo], after: str
) -> None:
    demo = demos(tmp_path)
    demo.wait_for_line(lambda line: line.startswith(after))  # servers, then the worker, starting
    demo.ctrl_c()
    code, took = demo.wait(timeout=60)
    errors = demo.stderr()
    assert code == 0, f"{demo.output}\n{errors}"
    assert took < STOP_SECONDS, f"{took:.1f}s to stop:\n{demo.output}"
    assert "Traceback" not in errors, errors
    assert demo.lines[-1].startswith("stopped: broker, redis-server and worker are gone")
    demo.assert_nothing_left()


def test_a_dead_worker_fails_the_demo_with_the_end_of_its_log(
    tmp_path: Path, demos: Callable[..., Demo]
) -> None:
    demo = demos(tmp_path)
    demo.wait_for_line(lambda line: " tag +" in line)
    demo.note_children()
    line = next(line for line in demo.lines if line.startswith("broker "))
    found = re.search(r"worker pid (\d+)", line)
    assert found is not None, line
    worker = int(found.group(1))
    assert worker in demo.started

    os.kill(worker, signal.SIGKILL)
    code, took = demo.wait(timeout=60)
    errors = demo.stderr()
    assert code == 1, f"{demo.output}\n{errors}"
    assert took < STOP_SECONDS, f"{took:.1f}s to stop:\n{demo.output}"
    assert "the worker stopped unexpectedly (killed by SIGKILL)" in demo.output
    start = demo.output.index("the worker stopped unexpectedly")
    tail = [line for line in demo.output[start:].splitlines()[1:] if line.startswith("  | ")]
    assert any(f"[{worker}]" in line for line in tail), demo.output  # its log names its pid
    assert "Traceback" not in errors, errors
    demo.assert_nothing_left()


def test_bad_rules_stop_the_demo_before_it_starts_anything(tmp_path: Path) -> None:
    edited_rules(tmp_path / "shop", {"params.yaml": ("high_value_spend: ", "high_value_spend: [")})
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    found = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--rules", "shop"],
        cwd=tmp_path,
        env=os.environ | {"TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert found.returncode == 1, found.stdout + found.stderr
    assert re.search(r"params\.yaml:\d+:\d+: ", found.stderr), found.stderr
    assert "nothing was loaded" in found.stderr and "Traceback" not in found.stderr
    assert found.stdout == "" and list(scratch.iterdir()) == []


class TerminalDemo:
    """``tagger demo`` on a terminal of its own (a pseudo-terminal of 120x40), as a person
    runs it: what it draws is read as it comes, terminal codes and all."""

    def __init__(self, tmp_path: Path) -> None:
        self.scratch = tmp_path / "tmp"
        self.scratch.mkdir()
        primary, secondary = os.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "demo", "--rate", "400"],
            stdin=secondary,
            stdout=secondary,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            # COLUMNS and LINES, which pytest may set, would win over the terminal's size.
            env=os.environ
            | {"TMPDIR": str(self.scratch), "TERM": "xterm-256color"}
            | {"COLUMNS": "120", "LINES": "40"},
            start_new_session=True,
        )
        os.close(secondary)
        self._primary = primary
        self._screen = bytearray()
        self.started: dict[int, int] = {}  # what it started, once noted
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._primary, 65536)
            except OSError:  # EIO: the demo and everything on its terminal are gone
                return
            if not chunk:
                return
            with self._lock:
                self._screen += chunk

    @property
    def drawn(self) -> str:
        """Everything written to the terminal so far."""
        with self._lock:
            return self._screen.decode(errors="replace")

    def wait_for(self, wanted: Callable[[str], bool], timeout: float = STARTUP_SECONDS) -> str:
        """What was drawn, once it is ``wanted``; fails on a timeout or an exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if wanted(drawn := self.drawn):
                return drawn
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"not drawn; the terminal shows:\n{self.drawn[-5000:]}")

    def close(self) -> None:
        """Kill what is left (a failed test), close the terminal and the pipe."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in {*with_tmpdir_under(self.scratch), *still_running(self.started)}:
            os.kill(pid, signal.SIGKILL)
        self._reader.join(timeout=10)
        os.close(self._primary)
        if self.process.stderr is not None:
            self.process.stderr.close()


ALTERNATE_SCREEN, NORMAL_SCREEN = "\x1b[?1049h", "\x1b[?1049l"
TERMINAL_CODE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # a colour, a cursor move


def _plain(drawn: str) -> str:
    """What the screen says, without its colours and cursor moves."""
    return TERMINAL_CODE.sub("", drawn)


def test_on_a_terminal_a_live_view_shows_where_everything_is_until_ctrl_c(
    tmp_path: Path,
) -> None:
    demo = TerminalDemo(tmp_path)
    try:
        # Drawn in place on the alternate screen, with decisions in its log by now.
        drawn = demo.wait_for(lambda text: ALTERNATE_SCREEN in text and " tag +" in _plain(text))
        demo.started = started = descendants(demo.process.pid)
        assert len(started) >= 3, started
        found = re.search(r"broker (\S+) \(pid \d+\), redis (redis://\S+)", drawn)
        assert found is not None, drawn
        web = re.search(r"profiles at (http://\S+)/profiles/", drawn)
        assert web is not None, drawn
        view = _plain(drawn[drawn.index(ALTERNATE_SCREEN) :])
        for shown in (found.group(1), found.group(2), web.group(1), "people per stage"):
            assert shown in view, view[-5000:]
        assert "Ctrl-C stops everything" in view and "worker lag" in view

        os.killpg(demo.process.pid, signal.SIGINT)
        began = time.monotonic()
        code = demo.process.wait(timeout=60)
        took = time.monotonic() - began
        demo._reader.join(timeout=10)
        assert demo.process.stderr is not None
        errors = demo.process.stderr.read().decode(errors="replace")
        assert code == 0 and "Traceback" not in errors, errors
        assert took < STOP_SECONDS, f"{took:.1f}s to stop"
        # The terminal given back, then the summary and each step of the stop, in order.
        after = _plain(demo.drawn.rsplit(NORMAL_SCREEN, 1)[1])
        lines = [line.strip() for line in after.replace("\r", "").splitlines() if line.strip()]
        assert lines[1].startswith("== ") and "events sent" in lines[1], lines
        # (The worker may be killed: one still joining its group waits for the join.)
        step = re.compile(r"(generator|worker|redis-server|broker) (stopped|killed) \(")
        steps = [done.group(1) for line in lines if (done := step.match(line))]
        assert steps == ["generator", "worker", "redis-server", "broker"], lines
        assert lines[-1].startswith("stopped: broker, redis-server and worker are gone"), lines
        assert still_running(started) == [] and with_tmpdir_under(demo.scratch) == []
        assert list(demo.scratch.iterdir()) == []
    finally:
        demo.close()
