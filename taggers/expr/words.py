"""Word lists in texts: ``contains_any(text, words)`` (whether a text holds any word of a
list), ``matched_words(text, words)`` (which ones) and ``excerpt(text, words, chars)`` (a
short piece of the text around the first one), fast when the list is a fixed word list
(``lists.*``) however many words it holds.

Texts and words are compared as operators read them, not as they are encoded
(``normalised``): full-width forms as half-width (ＱＱ as QQ, NFKC), traditional
characters as simplified (騙子 as 骗子, OpenCC's t2s character table), upper case as lower
case, and spaces, punctuation and symbols left out, so that 骗 子, 骗-子 and 骗*子 are 骗子.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any, Final

import opencc

from taggers.expr.checked import Fn, Values

MAX_MATCHED: Final = 20
"""The most words ``matched_words`` gives (an alert's details stay small)."""
MAX_EXCERPT_CHARS: Final = 500
"""The longest excerpt, in characters."""
_SEPARATORS: Final = re.compile(r"[\W_]+")
"""What is left out of texts and words: everything but letters and digits (spaces,
punctuation, symbols, emoji, zero-width and other invisible characters)."""
_HAN_RANGES: Final = ((0x3400, 0xA000), (0xF900, 0xFB00), (0x20000, 0x2FA20))
"""The CJK ideographs (unified, compatibility and the supplementary planes)."""


@functools.cache
def _simplified() -> dict[int, int]:
    """Traditional character -> simplified character, as OpenCC's t2s conversion gives it
    for each character on its own (5,118 of them; every one maps to one character, so a
    text keeps its length). Built once per process, the first time a rule set needs it
    (about 60 ms): a per-character table is one C-level ``str.translate`` per text,
    where a phrase-level conversion of every message would cost more and move
    positions."""
    chars = [chr(c) for low, high in _HAN_RANGES for c in range(low, high)]
    converted = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    return {
        ord(char): ord(simple)
        for char, simple in zip(chars, converted, strict=True)
        if simple != char and len(simple) == 1
    }


def normalised(text: str) -> str:
    """``text`` as words are looked for in it (see the module's docstring)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_simplified())
    return _SEPARATORS.sub("", text).lower()


class WordMatcher:
    """The words of a fixed list found in a text, at a cost that does not grow with the
    list: words (normalised) are grouped by length, and a group of many words is one set
    that every substring of that length is looked up in (C-level slicing and hashing, no
    Python loop per character). Few words of a length are looked for one by one (``in``
    is faster than slicing the whole text for them). A text of n characters costs its
    normalisation (linear, in C) and at most about n set lookups per distinct word length
    (at most ``MAX_WORD_CHARS`` of them), however many words the list holds."""

    FEW: Final = 32  # below this many words of one length, `w in text` each is cheaper

    def __init__(self, words: Any) -> None:
        by_length: dict[int, set[str]] = {}
        self.order: dict[str, int] = {}  # a normalised word -> its place in the list
        for word in words if isinstance(words, (list, tuple)) else ():
            if isinstance(word, str):
                key = normalised(word)
                if key and key not in self.order:
                    self.order[key] = len(self.order)
                    by_length.setdefault(len(key), set()).add(key)
        self.few = tuple(w for group in by_length.values() if len(group) < self.FEW for w in group)
        self.groups = tuple(
            (length, frozenset(group))
            for length, group in sorted(by_length.items())
            if len(group) >= self.FEW
        )

    def _parts(self, text: str, length: int) -> Any:
        size = len(text)
        return map(text.__getitem__, map(slice, range(size - length + 1), range(length, size + 1)))

    def search(self, text: Any) -> bool:
        """Whether ``text`` (a string; anything else is not) contains any of the words."""
        if not isinstance(text, str) or not self.order:
            return False
        text = normalised(text)
        if any(word in text for word in self.few):
            return True
        for length, group in self.groups:
            if length > len(text):
                break
            if not group.isdisjoint(self._parts(text, length)):
                return True
        return False

    def matches(self, text: Any) -> list[str]:
        """The words found in ``text`` (normalised), in the list's order, at most
        ``MAX_MATCHED``; none for anything but a string."""
        if not isinstance(text, str) or not self.order:
            return []
        text = normalised(text)
        found = {word for word in self.few if word in text}
        for length, group in self.groups:
            if length > len(text):
                break
            found |= group.intersection(self._parts(text, length))
        return sorted(found, key=self.order.__getitem__)[:MAX_MATCHED]

    def first_at(self, text: str) -> int | None:
        """Where in ``text`` (as written) the first word found starts, or None."""
        joined = normalised(text)
        starts = [at for at in (joined.find(w) for w in self.matches(text)) if at >= 0]
        if not starts:
            return None
        first, seen = min(starts), 0
        for index, char in enumerate(text):  # a character's normalised form is 0+ chars
            seen += len(_char_normalised(char))
            if seen > first:
                return index
        return None


_char_normalised: Final = functools.lru_cache(maxsize=4096)(normalised)
"""One character normalised (texts repeat characters: kept)."""


def excerpt_of(text: Any, matcher: WordMatcher, chars: Any) -> str | None:
    """At most ``chars`` characters of ``text`` (as written) around the first word of the
    matcher found in it, marked with … where cut; the start of the text if none is."""
    if not isinstance(text, str) or isinstance(chars, bool) or not isinstance(chars, int):
        return None
    chars = max(1, min(chars, MAX_EXCERPT_CHARS))
    if len(text) <= chars:
        return text
    first = matcher.first_at(text) or 0
    start = max(0, min(first - chars // 4, len(text) - chars))
    end = start + chars
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


@functools.lru_cache(maxsize=8)
def _matcher(words: tuple[str, ...]) -> WordMatcher:
    """One matcher per word list, however many rules read it."""
    return WordMatcher(words)


def matcher_of(words: Any, *, fixed: bool) -> WordMatcher:
    """The matcher of a constant list (``fixed``, a word list: kept), or of a list only
    known at run time (made for each evaluation)."""
    return _matcher(words) if fixed and isinstance(words, tuple) else WordMatcher(words)


def contains_fixed(text: Fn, words: Any) -> Fn:
    """``contains_any(text, words)`` where the words are a constant (a word list)."""
    found = matcher_of(words, fixed=True)
    return lambda v: found.search(text(v))


def contains_any(text: Fn, words: Fn) -> Fn:
    """``contains_any(text, words)`` where the words are only known at run time."""

    def search(values: Values) -> bool:
        found, candidates = text(values), words(values)
        if not isinstance(found, str) or not isinstance(candidates, (list, tuple)):
            return False
        found = normalised(found)
        return any(
            isinstance(w, str) and (key := normalised(w)) != "" and key in found for w in candidates
        )

    return search


def matched_words(text: Fn, words: Fn, fixed: bool) -> Fn:
    """``matched_words(text, words)``: the words found, normalised, in the list's order."""
    if fixed:
        found = matcher_of(words({}), fixed=True)
        return lambda v: found.matches(text(v))
    return lambda v: matcher_of(words(v), fixed=False).matches(text(v))


def excerpt(text: Fn, words: Fn, chars: Fn, fixed: bool) -> Fn:
    """``excerpt(text, words, chars)``: a short piece of the text around the first word."""
    if fixed:
        found = matcher_of(words({}), fixed=True)
        return lambda v: excerpt_of(text(v), found, chars(v))
    return lambda v: excerpt_of(text(v), matcher_of(words(v), fixed=False), chars(v))
