"""`tagger demo`, as the README runs it: it shows decisions and leaves nothing running."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration
SERVERS = ("tansu", "redis-server", "taggers.cli run")


def running(pattern: str) -> set[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return {int(pid) for pid in found.stdout.split()}


def test_the_demo_shows_decisions_and_ctrl_c_stops_everything() -> None:
    before = {name: running(name) for name in SERVERS}
    demo = subprocess.Popen(
        [sys.executable, "-m", "taggers.cli", "demo", "--rate", "400"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("==") and " tag changes 0 " not in line:
            break
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=60)
    output = "".join(lines) + rest
    assert demo.returncode == 0, output
    assert "tag +" in output, output
    summary = next(line for line in lines if line.startswith("=="))
    assert "events sent" in summary and "alerts" in summary
    assert output.rstrip().endswith("stopped: broker, redis-server and worker are gone.")
    time.sleep(0.5)
    for name in SERVERS:
        assert running(name) <= before[name], f"{name} left running"
