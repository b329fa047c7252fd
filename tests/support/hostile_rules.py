"""Rule directories written to hurt: each reproduced a crash or an exhausted machine.

Shared by the loader's tests, the CLI's and live reload's. Each ``Hostile`` names the
file:line:column and the message its first problem must have.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BASE = "aggregates:\n  orders: {count: purchase}\n"


def _laughs(levels: int, per: int) -> str:
    """A "billion laughs": each level an anchored list of ``per`` aliases of the last."""
    lines = ['a: &a ["' + '","'.join(["lol"] * per) + '"]']
    for level in range(1, levels):
        name, below = chr(97 + level), chr(96 + level)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{below}"] * per) + "]")
    return BASE + "\n".join(lines) + "\n"


def _laughs_in_a_tag() -> str:
    """The variant that blocked a live worker: flow maps of aliases inside a real rule."""
    rows = ["  x0: &x0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol}"]
    rows += [
        f"  x{i}: &x{i} {{a: *x{i - 1}, b: *x{i - 1}, c: *x{i - 1}, d: *x{i - 1}}}"
        for i in range(1, 8)
    ]
    return BASE + "params:\n" + "\n".join(rows) + "\ntags:\n  t: {when: orders > 0}\n"


def _word_list(words: int) -> str:
    return "\n".join(f"w{i}" for i in range(words)) + "\n"


LIST_RULE = """\
lists:
  bad: {file: FILE}
alerts:
  words:
    upon: message
    when: contains_any(event.props.text, lists.bad)
"""


def _list(file: str) -> str:
    return BASE + LIST_RULE.replace("FILE", file)


def _fifo(directory: Path) -> None:
    os.mkfifo(directory / "lists" / "pipe.txt")


def _zero_link(directory: Path) -> None:
    (directory / "lists" / "zero.txt").symlink_to("/dev/zero")


def _outside_link(directory: Path) -> None:
    outside = directory.parent / f"{directory.name}-secret.txt"
    outside.write_text("secret\n", encoding="utf-8")
    (directory / "lists" / "secret.txt").symlink_to(outside)


@dataclass(frozen=True)
class Hostile:
    """One hostile rule directory: its files, anything else to make, and what must be said."""

    name: str
    files: dict[str, str]
    where: str  # file:line:column of the first problem, relative to the directory
    message: str  # a part of that problem's message
    setup: Callable[[Path], None] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def make(self, directory: Path) -> Path:
        """Write this hostile directory into ``directory`` (created); return it."""
        (directory / "lists").mkdir(parents=True, exist_ok=True)
        for name, text in {**self.files, **self.extra}.items():
            (directory / name).write_text(text, encoding="utf-8")
        if self.setup is not None:
            self.setup(directory)
        return directory


HOSTILE: tuple[Hostile, ...] = (
    Hostile(
        "yaml-tag",
        {"a.yaml": BASE + "tags:\n  t:\n    when: !member_joined_at\n"},
        "a.yaml:5:11",
        "YAML tags (!member_joined_at) are not allowed",
    ),
    Hostile(
        "recursive-alias",
        {"a.yaml": BASE + "x: &a [*a]\n"},
        "a.yaml:3:4",
        "YAML anchors (&a) are not allowed",
    ),
    Hostile(
        "alias-only",
        {"a.yaml": BASE + "tags:\n  t: {when: orders > 0}\n  u: *t\n"},
        "a.yaml:5:6",
        "YAML aliases (*t) are not allowed",
    ),
    Hostile(
        "operator-chain-990-terms",
        {"a.yaml": BASE + 'tags:\n  t:\n    when: "orders' + " + 1" * 989 + ' > 0"\n'},
        "a.yaml:5:",
        "nested too deeply",
    ),
    Hostile(
        "member-chain-1900-links",
        {
            "a.yaml": BASE
            + 'alerts:\n  t:\n    upon: message\n    when: "event.props'
            + ".x" * 1899
            + ' == 1"\n'
        },
        "a.yaml:6:",
        "nested too deeply",
    ),
    Hostile(
        "billion-laughs",
        {"a.yaml": _laughs(9, 9)},
        "a.yaml:3:4",
        "YAML anchors (&a) are not allowed",
    ),
    Hostile(
        "laughs-in-a-rule",
        {"a.yaml": _laughs_in_a_tag()},
        "a.yaml:4:7",
        "YAML anchors (&x0) are not allowed",
    ),
    Hostile(
        "deep-nesting",
        {"a.yaml": BASE + "x: " + "[" * 100 + "]" * 100 + "\n"},
        "a.yaml:3:",
        "nested more than 20 levels deep",
    ),
    Hostile(
        "deeper-than-libyaml",
        {"a.yaml": BASE + "x: " + "[" * 5000 + "]" * 5000 + "\n"},
        "a.yaml:3:",
        "exceeded maximum nesting depth",
    ),
    Hostile(
        "200000-words",
        {"a.yaml": _list("lists/words.txt")},
        "a.yaml:4:15",
        "too large: the lists together may have 2097152 bytes",
        extra={"lists/words.txt": _word_list(200_000) * 2},
    ),
    Hostile(
        "too-many-words",
        {"a.yaml": _list("lists/words.txt")},
        "a.yaml:4:15",
        "too many words: the word lists together may have 100000",
        extra={"lists/words.txt": _word_list(120_000)},
    ),
    Hostile(
        "dev-zero",
        {"a.yaml": _list("/dev/zero")},
        "a.yaml:4:15",
        "is outside the rule directory",
    ),
    Hostile(
        "link-to-dev-zero",
        {"a.yaml": _list("lists/zero.txt")},
        "a.yaml:4:15",
        "is outside the rule directory",
        setup=_zero_link,
    ),
    Hostile(
        "fifo",
        {"a.yaml": _list("lists/pipe.txt")},
        "a.yaml:4:15",
        "is not a regular file",
        setup=_fifo,
    ),
    Hostile(
        "outside-by-path",
        {"a.yaml": _list("../../../etc/passwd")},
        "a.yaml:4:15",
        "is outside the rule directory",
    ),
    Hostile(
        "outside-by-link",
        {"a.yaml": _list("lists/secret.txt")},
        "a.yaml:4:15",
        "is outside the rule directory",
        setup=_outside_link,
    ),
    Hostile(
        "list-not-txt",
        {"a.yaml": _list("lists/words.lst")},
        "a.yaml:4:15",
        "a word list is a .txt file",
        extra={"lists/words.lst": "spam\n"},
    ),
    Hostile(
        "bad-date",
        {"a.yaml": BASE + "params:\n  since: 2026-13-45\n"},
        "a.yaml:4:10",
        "cannot read the value '2026-13-45'",
    ),
    Hostile(
        "huge-int",
        {"a.yaml": BASE + "params:\n  x: " + "1" * 5000 + "\n"},
        "a.yaml:4:6",
        "cannot read the value '1111",
    ),
    Hostile(
        "infinite-param",  # kept in every reason that reads it: Redis cannot hold it
        {"a.yaml": BASE + "params:\n  x: .inf\n"},
        "a.yaml:4:6",
        "inf is not a finite number",
    ),
    Hostile(
        "param-past-64-bits",
        {"a.yaml": BASE + "params:\n  x: " + "9" * 20 + "\n"},
        "a.yaml:4:6",
        "an integer param must fit in 64 bits",
    ),
    Hostile(
        "merge-key",
        {"a.yaml": BASE + "params:\n  <<: {x: 1}\n"},
        "a.yaml:4:3",
        "cannot read the value '<<'",
    ),
    Hostile(
        "control-character",
        {"a.yaml": BASE + "tags:\n  t: {when: orders > 0}\x07\n"},
        "a.yaml:4:24",
        "YAML: control characters are not allowed ('\\x07')",
    ),
    Hostile(
        "huge-duration",
        {"a.yaml": BASE + 'tags:\n  t: {when: "orders > 0", expires_after: 1' + "0" * 400 + "d}\n"},
        "a.yaml:4:",
        "at most 36500d",
    ),
    Hostile(
        "huge-duration-literal",
        {"a.yaml": BASE + 'tags:\n  t: {when: "orders > 1' + "0" * 400 + 'd"}\n'},
        "a.yaml:4:",
        "is too long",
    ),
    Hostile(
        "too-many-values",
        {"a.yaml": BASE + "x: [" + ",".join(["1"] * 10_000) + "]\n"},
        "a.yaml:3:",
        "more than 10000 values in the rule files together",
    ),
    Hostile(
        "too-large",
        {"a.yaml": BASE + "#" * (300 * 1024) + "\n"},
        "a.yaml:1:1",
        "too large: the files together may have 262144 bytes",
    ),
    Hostile(
        "rule-file-is-a-device",
        {"a.yaml": BASE},
        "z.yaml:1:1",
        "is outside the rule directory",
        setup=lambda directory: (directory / "z.yaml").symlink_to("/dev/zero"),
    ),
    Hostile(
        "rule-file-is-a-pipe",
        {"a.yaml": BASE},
        "z.yaml:1:1",
        "is not a regular file",
        setup=lambda directory: os.mkfifo(directory / "z.yaml"),
    ),
)
