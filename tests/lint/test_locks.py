"""The lock files agree with pyproject.toml, checked offline.

deploy/lock.sh makes them with pip-compile: the runtime lock (what the image installs),
the build lock (what the image's builder builds the wheel with) and the dev lock (what
scripts/setup.sh, and so CI, installs: all of it). A dependency declared in pyproject.toml
but not locked, a pin outside the declared range, a line without a hash, or two locks
that pin one package differently fail here; so does a lock that leaves out something a
locked package needs, found from the metadata of the packages installed from the dev lock.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from tests.support import ROOT

DEPLOY = ROOT / "deploy"
RUNTIME = DEPLOY / "requirements.lock"
BUILD = DEPLOY / "requirements-build.lock"
DEV = DEPLOY / "requirements-dev.lock"
LOCKS = (RUNTIME, BUILD, DEV)
REFRESH = "deploy/lock.sh"
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9._+!-]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    """One package of a lock: its version and how many file hashes it allows."""

    version: Version
    hashes: int


def pyproject() -> dict[str, Any]:
    """pyproject.toml, parsed."""
    parsed: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return parsed


def read_lock(path: Path) -> dict[NormalizedName, Pin]:
    """Normalised name -> pin of a pip-compile lock (``name==version \\`` then its
    ``--hash`` lines; comments and blank lines between)."""
    pins: dict[NormalizedName, Pin] = {}
    entries = re.split(r"\n(?=[^\s#])", path.read_text("utf-8"))
    for entry in entries:
        lines = [line.split("#", 1)[0].strip().rstrip("\\").strip() for line in entry.split("\n")]
        words = [line for line in lines if line]
        if not words:
            continue
        match = PIN.fullmatch(words[0])
        assert match, f"{path.name}: not pinned with ==: {words[0]}"
        assert all(HASH.fullmatch(word) for word in words[1:]), f"{path.name}: {words}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{path.name}: {name} twice"
        pins[name] = Pin(Version(match.group(2)), len(words) - 1)
    return pins


def declared(texts: list[str]) -> list[Requirement]:
    """Requirements of pyproject.toml that apply here (their markers hold)."""
    found = [Requirement(text) for text in texts]
    return [r for r in found if r.marker is None or r.marker.evaluate()]


def runtime_requirements() -> list[Requirement]:
    return declared(pyproject()["project"]["dependencies"])


def dev_requirements() -> list[Requirement]:
    return declared(pyproject()["project"]["optional-dependencies"]["dev"])


def build_requirements() -> list[Requirement]:
    return declared(pyproject()["build-system"]["requires"])


def all_requirements() -> list[Requirement]:
    return [*runtime_requirements(), *dev_requirements(), *build_requirements()]


LOCKED: dict[Path, Callable[[], list[Requirement]]] = {
    RUNTIME: runtime_requirements,
    BUILD: build_requirements,
    DEV: all_requirements,
}


@pytest.mark.parametrize("path", LOCKS, ids=lambda path: path.name)
def test_a_lock_pins_every_package_with_its_hashes_and_says_how_to_refresh_it(
    path: Path,
) -> None:
    pins = read_lock(path)
    assert len(pins) >= len(LOCKED[path]())
    assert all(pin.hashes >= 1 for pin in pins.values())
    header = path.read_text("utf-8").split("\n\n", 1)[0]
    assert REFRESH in header, f"{path.name}: the header does not name {REFRESH}"


@pytest.mark.parametrize("path", LOCKS, ids=lambda path: path.name)
def test_a_lock_holds_every_declared_dependency_within_its_range(path: Path) -> None:
    """A dependency added to (or narrowed in) pyproject.toml without `deploy/lock.sh`."""
    pins = read_lock(path)
    for requirement in LOCKED[path]():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{path.name} does not lock {requirement}: run {REFRESH}"
        assert requirement.specifier.contains(pins[name].version, prereleases=True), (
            f"{path.name}: {name}=={pins[name].version} is not {requirement}: run {REFRESH}"
        )


def test_the_locks_agree_and_the_runtime_one_has_no_dev_tools() -> None:
    """The image runs what CI tested: a package has one version in every lock; the
    runtime lock holds none of the dev extra's tools (the image would carry them)."""
    dev = read_lock(DEV)
    for path in (RUNTIME, BUILD):
        pins = read_lock(path)
        assert set(pins) <= set(dev), f"{path.name} has what the dev lock has not"
        different = {
            name: (str(pin.version), str(dev[name].version))
            for name, pin in pins.items()
            if pin.version != dev[name].version
        }
        assert different == {}, f"{path.name} and {DEV.name} differ"
    tools = {canonicalize_name(r.name) for r in dev_requirements()}
    assert tools & set(read_lock(RUNTIME)) == set()
    assert {"rich", "pytest", "mypy"} <= set(dev)


def closure(requirements: list[Requirement]) -> set[NormalizedName]:
    """Every package these requirements need here, with their extras, from the metadata
    of the installed packages (the dev lock's, so all of them)."""
    environment = {key: str(value) for key, value in default_environment().items()}

    def applies(requirement: Requirement, extras: set[str]) -> bool:
        marker = requirement.marker
        return marker is None or any(
            marker.evaluate(environment | {"extra": extra}) for extra in {"", *extras}
        )

    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    pending = [requirement for requirement in requirements if applies(requirement, set())]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        try:
            needs = [Requirement(text) for text in metadata.requires(name) or []]
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is not installed: run scripts/setup.sh")
        pending.extend(need for need in needs if applies(need, requirement.extras))
    return {name for name, _ in seen}


@pytest.mark.parametrize("path", [RUNTIME, DEV], ids=lambda path: path.name)
def test_a_lock_leaves_out_nothing_its_packages_need(path: Path) -> None:
    """The image installs the runtime lock with --no-deps, and so does the set-up the dev
    lock: a dependency of a dependency missing from it would only show in `pip check`."""
    missing = closure(LOCKED[path]()) - set(read_lock(path))
    assert missing == set(), f"{path.name} lacks {sorted(missing)}: run {REFRESH}"
