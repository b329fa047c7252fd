"""Loading a rule directory: its files, their validation, compiling, and its version."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from taggers.model_problems import validation_problems
from taggers.rulefile import RENAMED_KEYS, RuleFile
from taggers.ruleset.base import failure
from taggers.ruleset.compiler import RuleSetCompiler
from taggers.ruleset.model import LIST_SUFFIX, MAX_LIST_BYTES, MAX_RULE_FILES, RuleSet
from taggers.yaml_source import (
    MAX_FILE_BYTES,
    Budget,
    Position,
    Problem,
    RuleSetError,
    SourceMap,
    load_yaml,
    read_bounded,
)


def rule_files(directory: Path) -> list[Path]:
    """The rule files of a directory: its ``*.yaml`` and ``*.yml`` files, sorted. A name
    that is not a regular file (a device, a pipe, a link to nowhere) is one too, so that
    loading it says what it is rather than leaving it out unsaid."""
    return sorted(
        p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and not p.is_dir()
    )


def load_rules(directory: str | Path) -> RuleSet:
    """Load, validate and compile every rule file in ``directory``.

    Raises RuleSetError listing every problem with file:line:column and a hint.
    """
    root = Path(directory)
    at = Position(str(root), 1, 1)
    try:
        return _load_rules(root)
    except RuleSetError:
        raise
    except Exception as error:
        # The last line of defence: whatever a rule directory holds, loading it gives a
        # rule set or problems, never another exception (a live worker would stop).
        raise RuleSetError([Problem(at, f"cannot load these rules: {failure(error)}")]) from None


def _load_rules(root: Path) -> RuleSet:
    at = Position(str(root), 1, 1)
    if not root.is_dir():
        raise RuleSetError([Problem(at, "not a directory of rule files")])
    paths = rule_files(root)
    if not paths:
        raise RuleSetError([Problem(at, "no *.yaml rule files here")])
    if len(paths) > MAX_RULE_FILES:
        raise RuleSetError([Problem(at, f"more than {MAX_RULE_FILES} rule files")])
    problems: list[Problem] = []
    files: list[tuple[RuleFile, SourceMap]] = []
    budget = Budget()  # for the directory: all files together
    for path in paths:
        display = str(path)
        try:
            data, source = load_yaml(path, display, inside=root, budget=budget)
        except RuleSetError as error:
            problems.extend(error.problems)
            continue
        except Exception as error:  # a bug reached by this file: its problem, not a crash
            problems.append(Problem(Position(display, 1, 1), f"cannot load: {failure(error)}"))
            continue
        if data is not None and not isinstance(data, dict):
            problems.append(Problem(source.at(()), "a rule file is a mapping of sections"))
            continue
        try:
            files.append((RuleFile.model_validate(data or {}), source))
        except ValidationError as error:
            problems.extend(
                validation_problems(error, source, RuleFile, "docs/rules.md", RENAMED_KEYS)
            )
    compiler = RuleSetCompiler(files, root)
    if problems:
        raise RuleSetError(problems)
    return compiler.compile(rules_version(root))


def rules_version(directory: Path) -> str:
    """The version of a rule directory: a hash of its rule and list files' names and
    contents (a new sensitive word is a new rule set). Cheap: no parsing.

    Every file a rule set can read is in it: list files are .txt files inside the
    directory. Only regular files inside it are read, each up to its size limit (a file
    over it is refused by ``load_rules`` anyway): a device or a pipe named like a rule or
    list file neither blocks the poll nor is read forever.
    """
    digest = hashlib.sha256()
    lists = sorted(directory.rglob("*" + LIST_SUFFIX))
    for path, limit in [
        *((p, MAX_FILE_BYTES) for p in rule_files(directory)),
        *((p, MAX_LIST_BYTES) for p in lists),
    ]:
        try:
            content = read_bounded(path, limit, inside=directory)
        except OSError as error:
            content = str(error).encode()  # refused or unreadable: its reason is its content
        digest.update(path.name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:12]
