"""One person across ids: linking ids (``identify``), merging their profiles, and
forgetting a person (``forget``), over any ``ProfileStore``.

Each id is, in a store, unknown, a person (it has a profile), a link to another id (the
chain leads to the person) or forgotten (a tombstone). Events under a linked id apply to
its person. An identify or forget changes several ids, and no store can change ids of
different Redis slots in one atomic step, so each change is a sequence of steps that are
each atomic on one id and safe to run again:

1. each absorbed id becomes a link to the survivor, its profile kept beside the link as a
   *transfer* (a write refused if the id changed since it was read);
2. the survivor absorbs each transfer it has not absorbed yet (its ``ids`` say which) and
   is saved (refused likewise);
3. the transfers are settled (dropped).

The outputs are sent before step 2 is saved, as for any event. A crash after any step
leaves the state of before the identify, or one from which the next identity change
(the worker redoes the batch it did not commit) finishes it exactly once: each change
first completes what step 1 left in flight, from the transfers, with the cause and time
they keep, so with the same output ids. Identity changes run one at a time (the worker
sends them all to one partition), so no two of them race; events under the ids do, and
each step's version check makes a raced step start over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from taggers.engine import Engine
from taggers.events import FORGET, IDENTIFY, BehaviourEvent
from taggers.outputs import Forgotten, Output, Reason, output_id
from taggers.profile import Profile
from taggers.store import ProfileStore, StoreConflictError

IDENTITY_EVENTS: Final = frozenset({IDENTIFY, FORGET})
"""The event types that change who is who, rather than what a person did."""
DEFAULT_MAX_IDS: Final = 64
"""The most ids one person may have (the person's own included) unless set otherwise."""
MAX_ATTEMPTS: Final = 20  # an identity change raced by events under its ids, read again


class IdentityError(Exception):
    """An identity event that cannot be done: a dead letter with ``reason``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Target:
    """Where an event under an id applies: the person's id, and since when the id was
    forgotten, if it was (``forgotten_at``: events at or before it change nothing)."""

    person: str
    forgotten_at: int | None = None

    def ignores(self, ts: int) -> bool:
        """Whether an event of this time is one the forget left behind."""
        return self.forgotten_at is not None and ts <= self.forgotten_at

    def left_behind(self, profile: Profile, ts: int) -> bool:
        """Whether an event of this time, applying to ``profile``, changes nothing: one the
        forget of this id, or of the person the profile was made anew after, left behind."""
        return self.ignores(ts) or (profile.reborn is not None and ts <= profile.reborn)

    def new_profile(self, engine: Engine, user_id: str) -> Profile:
        """The person's first profile, for an event under ``user_id``: it remembers the
        forget of an earlier person under that id (``reborn``)."""
        profile = engine.new_profile(self.person)
        if self.forgotten_at is not None and user_id == self.person:
            profile.reborn = self.forgotten_at
        return profile


def targets(store: ProfileStore, user_ids: Sequence[str]) -> dict[str, Target]:
    """Where events under each id apply (a link: its person; otherwise the id itself),
    with the forget time of forgotten ids (one read: ``ProfileStore.lookup``)."""
    found = store.lookup(dict.fromkeys(user_ids, ()))
    return {u: Target(found.links.get(u, u), found.tombstones.get(u)) for u in user_ids}


def load_person(store: ProfileStore, user_id: str) -> Profile | None:
    """The profile of the person an id is (or leads to), if there is one: what reading a
    profile by any linked id finds."""
    person = store.resolve([user_id]).get(user_id, user_id)
    return store.load([person]).get(person)


def locate(engine: Engine, store: ProfileStore, user_id: str) -> tuple[Target, Profile]:
    """Where an event under an id applies, and the person's stored profile there, or a new
    one (which remembers a forget of the id before it: ``reborn``); one read for an id
    that is a person, two or three for any other."""
    stored = store.load([user_id]).get(user_id)
    if stored is not None:
        return Target(user_id), stored  # the usual case: the id is a person
    target = targets(store, [user_id])[user_id]
    if target.person != user_id:
        stored = store.load([target.person]).get(target.person)
    return target, stored or target.new_profile(engine, user_id)


@dataclass(slots=True)
class Change:
    """What an identity event does, in the order to do it: send ``outputs``, then save
    ``profiles`` (each with the deadline index it was stored with), then ``forget`` ids
    (with the time), then ``settle`` transfers. Step 1 (the links) is done by then."""

    outputs: list[Output] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    forget: tuple[list[str], int] | None = None
    settle: list[str] = field(default_factory=list)
    # the absorbed ids' watermarks, as the survivor keeps them (``carried``)
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)
    recovered: bool = False  # it finished an earlier change: run the event again after

    def apply(self, store: ProfileStore) -> None:
        """Do the store's part of the change (after the outputs are sent)."""
        for profile in self.profiles:
            offsets = self.offsets.get(profile.user_id)
            store.save(
                [profile],
                partition=profile.partition,
                offsets={profile.user_id: offsets} if offsets else None,
            )
        if self.forget is not None:
            ids, at = self.forget
            store.forget(ids, at)
        if self.settle:
            store.settle(self.settle)


class Identity:
    """Runs identify and forget events over a store, with one engine."""

    def __init__(self, engine: Engine, store: ProfileStore, max_ids: int = DEFAULT_MAX_IDS):
        self.engine = engine
        self.store = store
        self.max_ids = max_ids

    def change(self, event: BehaviourEvent, cause: str) -> Change:
        """The change an identify or forget event makes, with step 1 done; the caller
        sends its outputs, then ``Change.apply``. IdentityError if it cannot be done.
        Running it again after a crash at any point finishes it once: a change a crash
        stopped after step 1 is finished first (``recovered``: then run the event again).
        """
        for _ in range(MAX_ATTEMPTS):
            recovered = self._complete(None)
            if recovered.settle:
                recovered.recovered = True
                return recovered
            try:
                if event.type == FORGET:
                    return self._forget(event, cause)
                return self._identify(event, cause)
            except StoreConflictError:
                continue  # an event under one of the ids moved it since read: again
        raise StoreConflictError([event.user_id])

    def _identify(self, event: BehaviourEvent, cause: str) -> Change:
        ids = [event.user_id, *_linked_ids(event)]
        found = targets(self.store, ids)
        ids = [i for i in ids if not found[i].ignores(event.ts)]
        if not ids:
            return Change()
        persons = list(dict.fromkeys(found[i].person for i in ids))
        profiles = self.store.load(persons)
        survivor_id = next((p for p in persons if p in profiles), persons[0])
        survivor = profiles.get(survivor_id) or self.engine.new_profile(survivor_id)
        joining = self._joining(persons, profiles, survivor)
        if not joining:
            return Change()
        where = survivor.partition
        self.store.absorb(joining, survivor_id, cause=cause, at=event.ts, partition=where)
        return self._complete([j.user_id for j in joining])

    def _joining(
        self, persons: list[str], profiles: dict[str, Profile], survivor: Profile
    ) -> list[Profile]:
        """The profiles (new ones for ids never seen) that join the survivor."""
        joining = [profiles.get(p) or self.engine.new_profile(p) for p in persons]
        joining = [j for j in joining if j.user_id != survivor.user_id]
        new_ids = {survivor.user_id, *survivor.ids}
        for joined in joining:
            new_ids |= {joined.user_id, *joined.ids}
        if len(new_ids) > self.max_ids:
            raise IdentityError(
                "too_many_ids",
                f"linking would give {survivor.user_id!r} {len(new_ids)} ids, "
                f"more than the {self.max_ids} a person may have",
            )
        return joining

    def _complete(self, absorbed: Sequence[str] | None) -> Change:
        """Step 2 (to send and save) and step 3 (to settle) for the transfers of these
        ids (None: every one in flight, as a crash may have left them), with the cause
        and time of the merge that made them."""
        change = Change()
        pending = self.store.transfers(absorbed)
        links = self.store.resolve(list(pending)) if pending else {}
        persons = {user: links.get(user, user) for user in pending}
        wanted: dict[str, set[str]] = {}
        for user, transfer in pending.items():
            wanted.setdefault(persons[user], set()).update(transfer.offsets)
        loaded, applied = self.store.load_applied(wanted)
        survivors = {p: loaded.get(p) or self.engine.new_profile(p) for p in wanted}
        for user, transfer in pending.items():
            person, profile = persons[user], transfer.profile
            survivor = survivors[person]
            change.settle.append(user)
            if user in survivor.ids or person == user:
                continue  # absorbed before a crash (or a link since forgotten)
            # A watermark the person moved on already (an event under the id applied to
            # the person since the link) stays: the later offset is the one that guards.
            have = applied.get(person, {})
            carried = {w: o for w, o in transfer.offsets.items() if o > have.get(w, -1)}
            change.offsets.setdefault(person, {}).update(carried)
            if profile is None or (not profile.events and not profile.ids):
                survivor.ids.append(user)  # an id with nothing to merge: a link
                continue
            at = max(transfer.at, profile.clock, survivor.clock)
            cause = f"{transfer.cause}:{user}"
            change.outputs += self.engine.absorb(survivor, profile, at, cause)
        change.profiles = list(survivors.values())
        return change

    def _forget(self, event: BehaviourEvent, cause: str) -> Change:
        """Delete the person of the event's user id and every id of it, leaving tombstones
        at the event's time; one ``forgotten`` output (none if it was done already)."""
        user = event.user_id
        found = self.store.lookup({user: ()})
        person = found.links.get(user, user)
        profile = (
            found.profiles.get(user) if person == user else self.store.load([person]).get(person)
        )
        forgotten = found.tombstones.get(user)
        # Done already, unless a crash stopped it before the person went (a profile
        # from before the forget, not one an event after it made anew).
        done = profile is None or (profile.reborn is not None and profile.reborn >= event.ts)
        if forgotten is not None and forgotten >= event.ts and user not in found.links and done:
            return Change()
        ids = list(dict.fromkeys([person, *(profile.ids if profile else ()), user]))
        # The ids the event names last: until they are forgotten, running the forget again
        # (after a crash midway) still finds the person, and with it the other ids.
        order = [i for i in ids if i not in (person, user)]
        order += list(dict.fromkeys([person, user]))
        version = self.engine.version
        why = Reason("identity", version, {}, "the person asked to be forgotten")
        gone = Forgotten(
            id=output_id(person, cause, version, "forgotten"),
            user_id=user,
            person_id=person,
            ids=tuple(ids),
            at=event.ts,
            reason=why,
        )
        return Change(outputs=[gone], forget=(order, event.ts))


def _linked_ids(event: BehaviourEvent) -> list[str]:
    """The other ids an identify names (none for other events)."""
    if event.type != IDENTIFY:
        return []
    return [i for i in event.props.get("ids", ()) if i != event.user_id]
