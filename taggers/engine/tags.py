"""Tags, exclusive groups and tag families: deciding which tags a user holds.

A tag is on while its ``when`` holds (or, once on, until its ``exit_when``); a group's
members are exclusive (the first that holds wins); a family tag is named by a value
(``source`` + ``app`` -> ``source_app``), or by each item of a list value, each member
added and removed on its own. A tag with ``expires_after`` goes at its expiry
unless an event confirms it, and an expired one comes back only on an event.
"""

from __future__ import annotations

import re
from typing import Final

from taggers.engine.plan import MAX_CACHED_FAMILY_NAMES, Plan
from taggers.engine.step import Step, reason, truth
from taggers.expr import CompiledExpr
from taggers.outputs import Reason, TagChange, output_id
from taggers.profile import TagRecord
from taggers.ruleset import Tag

EXPIRED: Final = "expired:"
MAX_FAMILY_MEMBERS: Final = 64
"""The most tags one family gives a user at a time (a list value's first items)."""
_UNSAFE = re.compile(r"[\s\x00-\x1f\"'`{}\[\]<>,;:/\\|]+")


def family_member(family: str, value: object) -> str | None:
    """The tag name for a family value: ``source`` + ``app`` -> ``source_app``."""
    if value is None or value == "":
        return None
    cleaned = _UNSAFE.sub("_", str(value).strip().lower()).strip("_")[:64]
    return f"{family}_{cleaned}" if cleaned else None


def evaluate_tags(plan: Plan, step: Step, tags: tuple[Tag, ...], groups: tuple[str, ...]) -> None:
    """Decide the given tags and groups afresh."""
    for tag in tags:
        if tag.value is not None:
            _family(plan, step, tag)
        else:
            _tag(step, tag)
    for group in groups:
        _group(step, group, plan.rules.groups[group])


def _holds(step: Step, tag: Tag, held: bool) -> tuple[bool, CompiledExpr]:
    """Whether the tag should be on, and the expression that decided it."""
    if held and tag.exit_when is not None:
        return not truth(tag.exit_when, step.values), tag.exit_when
    assert tag.when is not None
    return truth(tag.when, step.values), tag.when


def _tag(step: Step, tag: Tag) -> None:
    record = step.profile.tags.get(tag.name)
    on, decider = _holds(step, tag, record is not None)
    latch = EXPIRED + tag.name
    if not on:
        step.profile.fired.pop(latch, None)
        if record is not None:
            remove_tag(step, tag.name, reason(step, tag.name, decider))
    elif record is None:
        if step.renews:
            step.profile.fired.pop(latch, None)  # an event confirmed it anew
        if latch not in step.profile.fired:
            add_tag(step, tag, tag.name, tag.display, decider)
    elif tag.expires_ms is not None and step.renews:
        record["expires"] = step.now + tag.expires_ms
        step.renewed = True


def _group_winner(
    step: Step, members: tuple[Tag, ...], held: Tag | None
) -> tuple[tuple[Tag, CompiledExpr] | None, CompiledExpr | None]:
    """The member that holds first (not latched expired), and what decided the held one."""
    fired = step.profile.fired
    held_decider: CompiledExpr | None = None
    winner: tuple[Tag, CompiledExpr] | None = None
    for member in members:
        if winner is not None and member is not held and member.expires_ms is None:
            continue  # decided; only expiring tags have latches left to clear
        on, decider = _holds(step, member, member is held)
        if member is held:
            held_decider = decider
        if member.expires_ms is not None and (not on or step.renews):
            fired.pop(EXPIRED + member.name, None)
        if on and winner is None and EXPIRED + member.name not in fired:
            winner = (member, decider)
    return winner, held_decider


def _group(step: Step, group: str, members: tuple[Tag, ...]) -> None:
    held = next((m for m in members if m.name in step.profile.tags), None)
    winner, held_decider = _group_winner(step, members, held)
    if held is not None and (winner is None or winner[0] is not held):
        assert held_decider is not None
        why = reason(step, held.name, held_decider)
        if winner is not None:
            why = Reason(why.rule, why.version, why.values, f"group {group}: now {winner[0].name}")
        remove_tag(step, held.name, why)
    if winner is not None and winner[0] is not held:
        add_tag(step, winner[0], winner[0].name, winner[0].display, winner[1])
    elif winner is not None and held is not None and held.expires_ms and step.renews:
        step.profile.tags[held.name]["expires"] = step.now + held.expires_ms
        step.renewed = True


def _family_target(plan: Plan, tag: Tag, value: object) -> str | None:
    """The member tag a family value names (names kept per value, to a bound)."""
    cache_key = (tag.name, value)
    names = plan.family_names
    try:
        target = names[cache_key]
    except KeyError:
        target = family_member(tag.name, value)
        if len(names) < MAX_CACHED_FAMILY_NAMES:
            names[cache_key] = target
    except TypeError:  # an unhashable value
        target = family_member(tag.name, value)
    return target


def _family_targets(plan: Plan, tag: Tag, value: object) -> dict[str, object]:
    """The member tags a family value names, each with the value that names it: one for a
    string, one per item (the first ``MAX_FAMILY_MEMBERS`` of them) for a list."""
    items = value if isinstance(value, list | tuple) else (value,)
    targets: dict[str, object] = {}
    for item in items:
        if tag.values is not None and item not in tag.values:
            continue
        target = _family_target(plan, tag, item)
        if target is not None and target not in targets:
            targets[target] = item
            if len(targets) >= MAX_FAMILY_MEMBERS:
                break
    return targets


def _family(plan: Plan, step: Step, tag: Tag) -> None:
    assert tag.value is not None
    targets = _family_targets(plan, tag, tag.value.evaluate(step.values))
    tags = step.profile.tags
    current = [name for name, record in tags.items() if record["rule"] == tag.name]
    adding = True
    if tag.expires_ms is not None:
        latch = EXPIRED + tag.name
        if step.renews:
            step.profile.fired.pop(latch, None)  # an event confirmed it anew
            for name in current:
                if name in targets:
                    tags[name]["expires"] = step.now + tag.expires_ms
                    step.renewed = True
        elif latch in step.profile.fired:
            adding = False  # expired: only an event brings a member back
    for name in current:
        if name not in targets:
            remove_tag(step, name, reason(step, tag.name, tag.value))
    for target, value in targets.items() if adding else ():
        if target not in current:
            display = f"{tag.display}: {value}" if tag.display else str(value)
            add_tag(step, tag, target, display, tag.value)


def add_tag(step: Step, tag: Tag, name: str, display: str | None, decider: CompiledExpr) -> None:
    """Give the user a tag (a family's member ``name``), with why."""
    why = reason(step, tag.name, decider)
    step.profile.tags[name] = TagRecord(
        since=step.now,
        expires=None if tag.expires_ms is None else step.now + tag.expires_ms,
        rule=tag.name,
        display=display,
        version=step.version,
        values=why.values,
        when=decider.source,
    )
    step.outputs.append(
        TagChange(
            output_id(step.person_id, step.cause, step.version, "tag", name, "add"),
            step.came_under,
            step.person_id,
            name,
            "add",
            display,
            step.now,
            why,
            step.opted_out,
        )
    )


def remove_tag(step: Step, name: str, why: Reason) -> None:
    """Take a tag from the user, with why."""
    record = step.profile.tags.pop(name)
    step.outputs.append(
        TagChange(
            output_id(step.person_id, step.cause, step.version, "tag", name, "remove"),
            step.came_under,
            step.person_id,
            name,
            "remove",
            record.get("display"),
            step.now,
            why,
            step.opted_out,
        )
    )


def expire_tags(plan: Plan, step: Step) -> None:
    """Remove the tags whose expiry has come, latching them off until an event."""
    if not plan.expiring_tags:
        return
    profile = step.profile
    for name, record in list(profile.tags.items()):
        expires = record.get("expires")
        if expires is not None and expires <= step.now:
            profile.fired[EXPIRED + str(record["rule"])] = 1
            remove_tag(step, name, Reason(str(record["rule"]), step.version, {}, "expired"))


def drop_removed_rules(plan: Plan, step: Step) -> None:
    """Remove the tags whose rule this rule set no longer has."""
    for name, record in list(step.profile.tags.items()):
        if record.get("rule") not in plan.tag_rules:
            why = Reason(str(record.get("rule")), step.version, {}, "rule removed")
            remove_tag(step, name, why)
