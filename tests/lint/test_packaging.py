"""What a wheel ships: every package of taggers/ and streams/, the bundled rule pack as
package data (found from any directory), and none of the test scaffolding."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.support import ROOT

PACK = "taggers.rules_pack"


def listed_packages() -> set[str]:
    """The packages pyproject.toml lists (they are listed, not found: see its comment)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(config["tool"]["setuptools"]["packages"])


def packages_in_tree() -> set[str]:
    """The packages of the checkout: folders of taggers/ and streams/ with Python files,
    and the rule pack's folders (rules/ and those of its subfolders that hold files)."""
    found: set[str] = set()
    for top in ("taggers", "streams"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    for folder in [ROOT / "rules", *sorted((ROOT / "rules").rglob("*"))]:
        if (
            folder.is_dir()
            and folder.name != "__pycache__"
            and any(p.is_file() for p in folder.iterdir())
        ):
            found.add(".".join([PACK, *folder.relative_to(ROOT / "rules").parts]))
    return found


def test_every_package_of_the_tree_is_listed_for_the_wheel() -> None:
    assert listed_packages() == packages_in_tree()


@pytest.fixture(scope="module")
def wheel_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The project's wheel, built from this checkout with the installed build backend, on a
    machine whose C compiler fails (``CC=false``); and what the build printed."""
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools leaves build/ and *.egg-info/ in the tree it builds.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignored = shutil.ignore_patterns("__pycache__", "*.so")
    for name in ("taggers", "streams", "rules"):
        shutil.copytree(ROOT / name, source / name, ignore=ignored)
    build = ["wheel", "-v", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "pip", *build, str(source)],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ | {"CC": "false"},
    )
    (built,) = out.glob("*.whl")
    return built, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(wheel_build: tuple[Path, str]) -> Path:
    """The wheel of ``wheel_build``."""
    return wheel_build[0]


def test_without_a_compiler_the_build_says_so_and_ships_pure_python(
    wheel_build: tuple[Path, str],
) -> None:
    built, printed = wheel_build
    assert "realtime-tagger build: could not compile the core" in printed
    assert "building pure Python" in printed
    names = zipfile.ZipFile(built).namelist()
    assert not [n for n in names if n.endswith(".so")], "a part of the compiled core shipped"
    assert "taggers/engine/core.py" in names


def test_the_wheel_ships_the_rule_pack_and_no_test_scaffolding(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    pack = {
        "taggers/rules_pack/" + p.relative_to(ROOT / "rules").as_posix()
        for p in (ROOT / "rules").rglob("*")
        if p.is_file() and p.suffix in {".yaml", ".yml", ".txt"}
    }
    assert pack and pack <= set(names), sorted(pack - set(names))
    assert not [n for n in names if n.startswith("tests/") or n.endswith("/testing.py")]


def test_an_installed_wheel_finds_its_rule_pack_from_any_directory(
    wheel: Path, tmp_path: Path
) -> None:
    """Unpacked elsewhere and run from an empty folder (no ./rules, no checkout on the path),
    the package finds and loads its bundled pack."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from taggers.bundled import BUNDLED_RULES\n"
        "from taggers.ruleset import load_rules\n"
        "assert BUNDLED_RULES.is_relative_to(sys.argv[1]), BUNDLED_RULES\n"
        "rules = load_rules(BUNDLED_RULES)\n"
        "print(len(rules.tags) > 0, BUNDLED_RULES.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script, str(site)],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "rules_pack"]


def test_no_redis_snapshot_is_committed_and_any_is_ignored() -> None:
    """A redis-server started in the checkout writes dump.rdb there: it holds test data,
    never belongs in the repository, and git ignores it (and any other *.rdb)."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        [git, "ls-files", "--", "*.rdb"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert tracked.stdout == ""
    ignored = subprocess.run(
        [git, "check-ignore", "--no-index", "dump.rdb", "rules/tests/backup.rdb"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == ["dump.rdb", "rules/tests/backup.rdb"]
