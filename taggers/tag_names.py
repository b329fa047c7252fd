"""Which tag names a rule set can give, so that a look-up by a name it cannot give (a
typo) is told so, rather than shown an empty audience. Used by ``GET
/tags/{tag}/members`` and ``tagger audience``."""

from __future__ import annotations

import difflib
from typing import Any

from taggers.engine.tags import family_member
from taggers.ruleset import RuleSet

FAMILY_VALUE = "<value>"
"""How an open family's tags are named where tags are listed: ``interest_<value>``."""


def known_tags(rules: RuleSet) -> list[str]:
    """The tags the rules can give, sorted: each plain tag, each member of a family with
    listed ``values``, and an open family as ``NAME_<value>``."""
    names: set[str] = set()
    for tag in rules.tags:
        if tag.value is None:
            names.add(tag.name)
        elif tag.values is None:
            names.add(f"{tag.name}_{FAMILY_VALUE}")
        else:
            names.update(m for v in tag.values if (m := family_member(tag.name, v)) is not None)
    return sorted(names)


def tag_declared(rules: RuleSet, name: str) -> bool:
    """Whether the rules can give a tag of this name (any ``NAME_...`` of an open family)."""
    for tag in rules.tags:
        if tag.value is None:
            if name == tag.name:
                return True
        elif tag.values is None:
            if name.startswith(f"{tag.name}_") and len(name) > len(tag.name) + 1:
                return True
        elif any(family_member(tag.name, v) == name for v in tag.values):
            return True
    return False


def unknown_tag(rules: RuleSet, name: str) -> dict[str, Any]:
    """What to answer for a tag the rules cannot give and no user holds: an ``error``
    that names it and says the closest known tag (or lists them), the ``tag``, the
    known ``tags`` and ``did_you_mean`` (a name, or None)."""
    known = known_tags(rules)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "tags are: " + ", ".join(known)
    return {
        "error": f"no tag {name!r}: the rules (version {rules.version}) give no such tag"
        f" and no user holds it; {hint}",
        "tag": name,
        "tags": known,
        "did_you_mean": close[0] if close else None,
    }
