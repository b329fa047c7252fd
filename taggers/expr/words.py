"""``contains_any(text, words)``: whether a text contains any word of a list, fast when
the list is a fixed word list (``lists.*``) however many words it holds.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from taggers.expr.checked import Fn, Values


class WordMatcher:
    """Whether a text contains any word of a fixed list, at a cost that does not grow with
    the list: words are grouped by length, and a group of many words is one set that every
    substring of that length is looked up in (C-level slicing and hashing, no Python loop
    per character). Few words of a length are looked for one by one (``in`` is faster
    than slicing the whole text for them). A text of n characters costs at most about n
    set lookups per distinct word length (at most ``MAX_WORD_CHARS`` of them), however
    many words the list holds."""

    FEW: Final = 32  # below this many words of one length, `w in text` each is cheaper

    def __init__(self, words: Any) -> None:
        by_length: dict[int, set[str]] = {}
        for word in words if isinstance(words, (list, tuple)) else ():
            if isinstance(word, str) and word:
                by_length.setdefault(len(word), set()).add(word)
        self.few = tuple(w for group in by_length.values() if len(group) < self.FEW for w in group)
        self.groups = tuple(
            (length, frozenset(group))
            for length, group in sorted(by_length.items())
            if len(group) >= self.FEW
        )

    def search(self, text: Any) -> bool:
        """Whether ``text`` (a string; anything else is not) contains any of the words."""
        if not isinstance(text, str):
            return False
        if any(word in text for word in self.few):
            return True
        size = len(text)
        for length, group in self.groups:
            if length > size:
                break
            parts = map(
                text.__getitem__, map(slice, range(size - length + 1), range(length, size + 1))
            )
            if not group.isdisjoint(parts):
                return True
        return False


@functools.lru_cache(maxsize=8)
def _matcher(words: tuple[str, ...]) -> WordMatcher:
    """One matcher per word list, however many rules read it."""
    return WordMatcher(words)


def contains_fixed(text: Fn, words: Any) -> Fn:
    """``contains_any(text, words)`` where the words are a constant (a word list)."""
    found = _matcher(words) if isinstance(words, tuple) else WordMatcher(words)
    return lambda v: found.search(text(v))


def contains_any(text: Fn, words: Fn) -> Fn:
    """``contains_any(text, words)`` where the words are only known at run time."""

    def search(values: Values) -> bool:
        found, candidates = text(values), words(values)
        if not isinstance(found, str) or not isinstance(candidates, (list, tuple)):
            return False
        return any(isinstance(w, str) and w and w in found for w in candidates)

    return search
