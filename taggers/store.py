"""Where profiles live: the contracts the rest of the code holds a store to, and MemoryStore.

``ProfileStore`` is what the core needs: profiles by user, their tag audiences, each
user's last applied offsets and the index of next deadlines. ``OperationsStore`` adds what
a running deployment needs beyond it: audience pages and populations for the web views and
gauges, a resumable scan for the recompute after a rule change, and a liveness check.

A store either hands out copies (``hands_out_copies``: what ``load`` returns is the
caller's, and the store changes only on ``save``) or the stored profiles themselves. Only
a store that hands out copies can undo: ``taggers.pipeline.Pipeline`` drops an event the
engine failed on by preparing the batch again from profiles read afresh, and the worker
redoes a batch whose save another writer beat; so the pipeline refuses any other store.
A replay or a dry run does not undo, and runs on the faster store of references.

``MemoryStore`` is both (``copies``): by reference for replays, dry runs and rule tests;
with copies, a double of the Redis store (``streams.redis_store``) for tests of the
worker's parts. ``tests/unit/test_store_contract.py`` runs one suite of this
contract over both, over Redis and over a Redis Cluster.

User ids are the ones events accept (``taggers.events``: 1-128 characters, no braces, no
control characters); any such id is a valid key in every store.

Each id is, in a store, exactly one of: unknown; a person (it has a profile); a link (it
leads to another id, chains followed by ``resolve``); forgotten (a tombstone: the hash of
the id, ``tombstone_hash``, and the time of the forget). ``save(..., links=...)`` turns ids
into links and ``forget`` forgets them, each removing every trace of the id (profile,
offsets, audiences, stage, deadlines); ``lookup`` tells a worker what each id of its
batch is in one round trip. docs/identity.md says what this is for.
"""

from __future__ import annotations

import hashlib
import heapq
from bisect import bisect_right
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

import orjson
from mypy_extensions import mypyc_attr

from taggers.profile import Profile, StoredAs

SAVED: Final = "saved"
REDELIVERED: Final = "redelivered"
LINKED: Final = "linked"
MAX_AUDIENCE_GAUGES: Final = 1000  # tags reported by population(); families can grow
MAX_HOPS: Final = 64  # links a chain is followed through (a person has at most this many ids)
TOMBSTONE_SALT: Final = "tagger-forget:"


def tombstone_hash(user_id: str) -> str:
    """What a tombstone is kept under: the SHA-256 (hex) of ``TOMBSTONE_SALT`` and the id,
    so that the store holds no id of a forgotten person, yet finds the tombstone of any id
    an event names. (The salt only keeps these hashes apart from other hashes of ids.)"""
    return hashlib.sha256((TOMBSTONE_SALT + user_id).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Transfer:
    """What an absorbed id leaves beside its link until its person absorbs it: its
    ``profile`` as it was stored (None: it had none), its watermarks as the person keeps
    them (``carried_offsets``), and the ``cause`` and time (``at``) of the merge, so that
    whoever finishes it sends the outputs it would have sent."""

    profile: Profile | None
    offsets: dict[str, int]
    cause: str
    at: int


def carried_offsets(user_id: str, offsets: Mapping[str, int]) -> dict[str, int]:
    """An absorbed id's watermarks as its person keeps them: its own (``3``, ``k3``)
    named after it (``3@ID``), so that events still arriving under it are guarded where
    they now apply; those it carried from ids it absorbed before keep their names."""
    return {(w if "@" in w else f"{w}@{user_id}"): o for w, o in offsets.items()}


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a store holds of some ids, as one read: ``load_applied``'s profiles and
    applied offsets, plus ``links`` (each id that is a link -> the person it leads to, as
    ``resolve`` gives it) and ``tombstones`` (each forgotten id -> the time of its forget).
    An id is in at most one of ``profiles`` and ``links``; a forgotten id may have a
    profile again (a new event after the forget recreated it)."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    applied: dict[str, dict[str, int]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    tombstones: dict[str, int] = field(default_factory=dict)


class StoreConflictError(Exception):
    """Profiles changed in the store since they were read: another writer got there first."""

    def __init__(self, user_ids: list[str]) -> None:
        super().__init__(f"{len(user_ids)} profile(s) changed since read, e.g. {user_ids[0]!r}")
        self.user_ids = user_ids


class ProfileStore(Protocol):
    """Profiles by user, tag audiences, last applied offsets, and users' next deadlines.

    Copy semantics are the store's to state (``hands_out_copies``); everything else below
    holds for every store. A write refused as a conflict changes nothing of that user:
    profile, offsets, audiences and deadline stay as stored. One refused as a redelivery
    writes neither profile nor offsets; its audience and deadline entries, which for a
    true redelivery (the same events on the same stored profile) are those stored, the
    Redis store writes again (it sends them ahead of the profile, in the same round trip).
    """

    @property
    def hands_out_copies(self) -> bool:
        """Whether ``load`` hands out copies: a profile loaded, changed and not saved
        leaves the store as it was, two loads give two independent profiles, and a save
        whose profile was read before another write of that user is refused
        (``StoreConflictError``). Otherwise ``load`` hands out the stored profiles
        themselves: changing one changes the store, and there is no stale read to refuse.
        """
        ...

    def load(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """The stored profiles of these users (users never seen are left out), as copies or
        as the stored profiles themselves (see ``hands_out_copies``)."""
        ...

    def save(
        self,
        profiles: Iterable[Profile],
        *,
        partition: int = 0,
        offsets: Mapping[str, Mapping[str, int]] | None = None,
        links: Mapping[str, str] | None = None,
        absorbed: Iterable[Profile] = (),
    ) -> dict[str, str]:
        """Store each profile, its tag memberships, stage and next deadline, atomically per
        user; a store that hands out copies keeps a copy (later changes to the profile are
        not stored until saved again).

        ``partition`` picks the deadline index. ``offsets`` maps a user to, per source (a
        topic partition, say), the offset of the last event of it applied to them; a
        write with an offset not past the stored one of any of its sources is a
        redelivery and changes nothing. Users left out of ``offsets`` are written with no
        offset (a timer sweep). Returns ``saved`` or ``redelivered`` per user.

        Each ``links`` entry ``id -> person`` turns that id into a link to the person,
        atomically per id: its profile, offsets, audience memberships, stage membership
        and deadline entries (of the partition it was saved with) go, and the link is
        written (returned as ``linked``); an id with no profile just gets the link. An id
        is either saved or linked by one call, never both, and never linked to itself.
        ``absorbed`` are the linked ids' profiles as the caller read them: a store that
        hands out copies links such an id only if it is still at the version it was read
        at (so no event applied to it meanwhile is lost); an id linked without its profile
        there is linked whatever it holds.

        A store that hands out copies compares each profile with the version it was read
        at (``Profile.stored``; a profile never read is new, and refused if the user was
        stored meanwhile, or is a link): the others of the batch are written, then
        StoreConflictError names the refused ones, which are left exactly as stored. If a
        profile is refused no link is written (a merge whose survivor moved is not half
        done); a refused link leaves the profiles written. A store of references refuses
        nothing: a profile saved for a link makes the id a person again.
        """
        ...

    def lookup(self, sources: Mapping[str, Collection[str]]) -> Lookup:
        """``load_applied`` of these users plus which of them are links (to whom) and
        which are forgotten (when): all a worker needs to route and apply its batch, in
        one round trip (one more per link whose person is itself a link)."""
        ...

    def resolve(self, user_ids: Sequence[str]) -> dict[str, str]:
        """For each of these ids that is a link, the id it leads to: chains followed, at
        most MAX_HOPS links (a longer chain, or a cycle, which no caller makes, stops
        there). Persons, unknown and forgotten ids are left out. The id led to is the
        person (or, if it was since forgotten, an unknown id)."""
        ...

    def forget(self, user_ids: Sequence[str], at: int, *, partition: int = 0) -> None:
        """Forget each id (a person and all its ids): its profile, link, offsets, audience
        and stage memberships and deadlines (in ``partition`` and the one it was saved
        with) go, atomically per id, and it gets a tombstone holding only
        ``tombstone_hash(id)`` and ``at`` (the later one if it has one already), kept
        for the store's tombstone lifetime. Forgetting again is harmless (a redelivery)."""
        ...

    def tombstones(self, user_ids: Sequence[str]) -> dict[str, int]:
        """The time of the forget of each of these ids that has a tombstone."""
        ...

    def absorb(
        self, profiles: Sequence[Profile], person: str, *, cause: str, at: int, partition: int = 0
    ) -> None:
        """Step 1 of a merge (``taggers.identity``): each id (its profile as read; a new
        profile for an id never seen) becomes a link to ``person`` as ``save``'s links
        do, atomically per id, its profile and watermarks kept as its ``Transfer`` (with
        the merge's ``cause`` and time) until ``settle``. The ids are first noted as in
        flight, so that ``transfers()`` finds them after a crash. StoreConflictError
        names the ids changed since read (left as stored; the others are linked)."""
        ...

    def transfers(self, user_ids: Sequence[str] | None = None) -> dict[str, Transfer]:
        """The transfers kept for these ids (None: every id in flight)."""
        ...

    def settle(self, user_ids: Sequence[str]) -> None:
        """Drop the transfers of these ids (their person has absorbed them)."""
        ...

    def offsets(self, user_id: str) -> dict[str, int]:
        """The last applied offset of each source for a user (none: ``{}``)."""
        ...

    def load_applied(
        self, sources: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Profile], dict[str, dict[str, int]]]:
        """``load`` of the users ``sources`` names, plus each one's last applied offset
        of each source named for them (those it has; users with none are left out).
        Links and forgotten ids have no profile here: ``lookup`` tells them apart."""
        ...

    def drop_deadlines(self, user_ids: Sequence[str], *, partition: int = 0) -> None:
        """Forget deadlines of users that have no profile (nothing can fire for them)."""
        ...

    def due(self, until: int, *, partition: int = 0, limit: int = 1000) -> list[str]:
        """Users whose deadline saved with ``partition`` is at or before ``until``, at most
        ``limit``, earliest first. Reading them changes nothing: a user stays due until
        saved with a later deadline (or none) in that partition, or dropped, so a sweep
        whose save fails loses no deadline. Another partition's index may list a user
        saved there before (an engine that finds nothing due moves on)."""
        ...

    def tag_members(self, tag: str) -> list[str]:
        """The users holding a tag (the tag's audience), sorted."""
        ...

    def users(self) -> Iterator[str]:
        """Every user with a stored profile (no link, no tombstone)."""
        ...


class OperationsStore(ProfileStore, Protocol):
    """A ProfileStore as a running deployment uses it beyond the core: what the worker's
    live rules (``users_page``, the recompute's scan), its gauges (``population``) and its
    web views (``tag_members`` by page for ``GET /tags/{tag}/members``, ``ping`` for
    ``/readyz``) call. (The rules board is Redis itself, not a store: see
    ``streams.rules_board``.)"""

    def tag_members(self, tag: str, *, after: str = "", limit: int | None = None) -> list[str]:
        """The users holding a tag, sorted by id; a page holds at most ``limit`` of them
        (all: None) and starts after the user id ``after`` (from the first: "")."""
        ...

    def population(self, stages: Sequence[str]) -> tuple[dict[str, int], dict[str, int]]:
        """Users per stage (of ``stages``) and per tag (audience sizes), of persons only
        (links and forgotten ids are in neither). The tags are those that ever had an
        audience, at most MAX_AUDIENCE_GAUGES of them by name; a tag whose audience
        emptied is there with 0."""
        ...

    def users_page(self, cursor: str, count: int) -> tuple[str, list[str]]:
        """One step of a scan over the users with a profile (no link, no tombstone): the
        next cursor ("0": done; start with "0") and about ``count`` user ids. A user stored
        for the whole scan is returned at least once; the cursor is text that may be kept
        and resumed later."""
        ...

    def ping(self) -> None:
        """Raise unless the store answers."""
        ...


# Subclassed by tests (a store that pauses or fails on cue): a compiled class allows that only
# when it says so.
@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryStore:
    """An in-memory OperationsStore. By default profiles are kept and handed out by
    reference (no copy: what replays can afford); with ``copies`` they are kept as JSON
    round trips of what was saved, handed out as copies and written under the version
    they were read at, as the Redis store does. Tombstones are kept forever."""

    def __init__(self, *, copies: bool = False) -> None:
        self._copies = copies
        self._profiles: dict[str, Profile] = {}
        self._audiences: dict[str, set[str]] = {}
        self._tags_of: dict[str, frozenset[str]] = {}
        self._deadlines: dict[int, list[tuple[int, str]]] = {}  # partition -> heap
        self._due_of: dict[int, dict[str, int]] = {}  # partition -> user -> deadline
        self._offsets: dict[str, dict[str, int]] = {}
        self._versions: dict[str, int] = {}  # with copies: the writes of each user
        self._links: dict[str, str] = {}  # id -> the id it links to
        self._transfers: dict[str, Transfer] = {}  # absorbed id -> its transfer
        self._tombstones: dict[str, int] = {}  # tombstone_hash(id) -> forget time
        # users_page's scan: users in the order they gained a profile; None where one
        # lost it (linked, forgotten), so that no position moves and no id stays.
        self._order: list[str | None] = []
        self._position: dict[str, int] = {}

    @property
    def hands_out_copies(self) -> bool:
        """See ProfileStore.hands_out_copies: as the store was made (``copies``)."""
        return self._copies

    def load(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """See ProfileStore.load."""
        profiles = self._profiles
        if not self._copies:
            return {u: profiles[u] for u in user_ids if u in profiles}
        return {u: self._copy_out(profiles[u]) for u in user_ids if u in profiles}

    def _copy_out(self, stored: Profile) -> Profile:
        profile = _json_copy(stored)
        user = profile.user_id
        profile.stored = StoredAs(
            str(self._versions[user]),
            frozenset(profile.tags),
            stored.partition,
            profile.stage,
        )
        return profile

    def get(self, user_id: str) -> Profile | None:
        """One stored profile (a copy, with ``copies``), or None."""
        found = self._profiles.get(user_id)
        return found if found is None or not self._copies else self._copy_out(found)

    def save(
        self,
        profiles: Iterable[Profile],
        *,
        partition: int = 0,
        offsets: Mapping[str, Mapping[str, int]] | None = None,
        links: Mapping[str, str] | None = None,
        absorbed: Iterable[Profile] = (),
    ) -> dict[str, str]:
        """See ProfileStore.save."""
        batch = list(profiles)
        links = check_links(batch, links)
        results: dict[str, str] = {}
        conflicts: list[str] = []
        for profile in batch:
            user = profile.user_id
            if self._copies and not self._is_current(profile):
                conflicts.append(user)
                continue
            positions = None if offsets is None else offsets.get(user)
            if positions:
                applied = self._offsets.setdefault(user, {})
                if any(applied.get(s, -1) >= offset for s, offset in positions.items()):
                    results[user] = REDELIVERED
                    continue
                applied.update(positions)
            results[user] = SAVED
            self._links.pop(user, None)  # (with copies, a link was refused above)
            self._index(profile, partition)
            if user not in self._position:
                self._position[user] = len(self._order)
                self._order.append(user)
            if self._copies:
                version = self._versions[user] = self._versions.get(user, 0) + 1
                stored = StoredAs(str(version), frozenset(profile.tags), partition, profile.stage)
                profile.stored = stored
                kept = _json_copy(profile)
                kept.stored = stored
                self._profiles[user] = kept
            else:
                self._profiles[user] = profile
        if conflicts:
            raise StoreConflictError(conflicts)
        if links and (refused := self._link(links, absorbed)):  # a plain save has none
            raise StoreConflictError(refused)
        return results | {user: LINKED for user in links} if links else results

    def _link(self, links: Mapping[str, str], absorbed: Iterable[Profile]) -> list[str]:
        """Turn ids into links (see ProfileStore.save); the ones refused."""
        read = {p.user_id: p.stored for p in absorbed}
        refused: list[str] = []
        for user, person in links.items():
            if self._copies and user in read:
                was = read[user]
                if ("0" if was is None else was.version) != str(self._versions.get(user, 0)):
                    refused.append(user)
                    continue
            self._remove(user)
            self._links[user] = person
            if self._copies:  # a writer that read the profile is refused from now on
                self._versions[user] = self._versions.get(user, 0) + 1
        return refused

    def _is_current(self, profile: Profile) -> bool:
        """Whether a profile was read at the user's stored version (new: never stored)
        and the user is not a link."""
        read = "0" if profile.stored is None else profile.stored.version
        user = profile.user_id
        return read == str(self._versions.get(user, 0)) and user not in self._links

    def _index(self, profile: Profile, partition: int) -> None:
        """Audiences and the deadline index, as of a profile being written."""
        user = profile.user_id
        self._retag(user, profile.tags.keys())
        due_of = self._due_of.get(partition)
        if due_of is None:
            due_of = self._due_of[partition] = {}
        if profile.due is None:
            due_of.pop(user, None)
        elif due_of.get(user) != profile.due:
            # Old heap entries are left behind and skipped when met (lazy delete).
            due_of[user] = profile.due
            heapq.heappush(self._deadlines.setdefault(partition, []), (profile.due, user))

    def _retag(self, user: str, names: AbstractSet[str]) -> None:
        """The user's audience memberships made those of ``names`` (a profile's tags are
        compared as they are: a frozenset is built only when they changed)."""
        before = self._tags_of.get(user, frozenset())
        if names != before:
            tags = frozenset(names)
            for tag in before - tags:
                self._audiences[tag].discard(user)
            for tag in tags - before:
                self._audiences.setdefault(tag, set()).add(user)
            self._tags_of[user] = tags

    def _remove(self, user: str) -> None:
        """Every trace of an id but its link and tombstone: profile, offsets, audiences,
        deadlines (a stage is counted over the profiles, so it goes with the profile)."""
        self._profiles.pop(user, None)
        if (position := self._position.pop(user, None)) is not None:
            self._order[position] = None
        self._offsets.pop(user, None)
        self._retag(user, frozenset())
        self._tags_of.pop(user, None)
        for due_of in self._due_of.values():  # heap entries are skipped when met
            due_of.pop(user, None)

    def lookup(self, sources: Mapping[str, Collection[str]]) -> Lookup:
        """See ProfileStore.lookup."""
        profiles, applied = self.load_applied(sources)
        users = list(sources)
        # A replay asks at every event: no hashing while nobody was ever forgotten.
        links = self.resolve(users) if self._links else {}
        return Lookup(profiles, applied, links, self.tombstones(users) if self._tombstones else {})

    def resolve(self, user_ids: Sequence[str]) -> dict[str, str]:
        """See ProfileStore.resolve."""
        found: dict[str, str] = {}
        for user in user_ids:
            at = user
            for _ in range(MAX_HOPS):
                if (next_id := self._links.get(at)) is None:
                    break
                at = next_id
            if at != user:
                found[user] = at
        return found

    def forget(self, user_ids: Sequence[str], at: int, *, partition: int = 0) -> None:
        """See ProfileStore.forget."""
        for user in user_ids:
            key = tombstone_hash(user)
            self._tombstones[key] = max(at, self._tombstones.get(key, at))
            self._remove(user)
            self._links.pop(user, None)
            self._transfers.pop(user, None)
            self._versions.pop(user, None)  # as Redis, whose hash goes with its version

    def tombstones(self, user_ids: Sequence[str]) -> dict[str, int]:
        """See ProfileStore.tombstones."""
        kept = self._tombstones
        return {u: kept[key] for u in user_ids if (key := tombstone_hash(u)) in kept}

    def absorb(
        self, profiles: Sequence[Profile], person: str, *, cause: str, at: int, partition: int = 0
    ) -> None:
        """See ProfileStore.absorb."""
        kept: dict[str, Transfer] = {}
        for profile in profiles:
            user = profile.user_id
            stored = self._profiles.get(user)
            copied = stored if stored is None or not self._copies else self._copy_out(stored)
            offsets = carried_offsets(user, self._offsets.get(user, {}))
            kept[user] = Transfer(copied, offsets, cause, at)
        refused = set(self._link(check_links([], {u: person for u in kept}), profiles))
        self._transfers |= {u: t for u, t in kept.items() if u not in refused}
        if refused:
            raise StoreConflictError(sorted(refused))

    def transfers(self, user_ids: Sequence[str] | None = None) -> dict[str, Transfer]:
        """See ProfileStore.transfers."""
        kept = self._transfers
        wanted = list(kept) if user_ids is None else user_ids
        found = {u: kept[u] for u in wanted if u in kept}
        if not self._copies:
            return found
        return {
            u: replace(t, profile=t.profile and _json_copy(t.profile), offsets=dict(t.offsets))
            for u, t in found.items()
        }

    def settle(self, user_ids: Sequence[str]) -> None:
        """See ProfileStore.settle."""
        for user in user_ids:
            self._transfers.pop(user, None)

    def offsets(self, user_id: str) -> dict[str, int]:
        """See ProfileStore.offsets."""
        return dict(self._offsets.get(user_id, {}))

    def load_applied(
        self, sources: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Profile], dict[str, dict[str, int]]]:
        """See ProfileStore.load_applied."""
        applied: dict[str, dict[str, int]] = {}
        for user, wanted in sources.items():
            have = self._offsets.get(user, {})
            if found := {s: have[s] for s in wanted if s in have}:
                applied[user] = found
        return self.load(list(sources)), applied

    def drop_deadlines(self, user_ids: Sequence[str], *, partition: int = 0) -> None:
        """See ProfileStore.drop_deadlines."""
        due_of = self._due_of.get(partition, {})
        for user in user_ids:
            due_of.pop(user, None)

    def none_due(self, until: int, *, partition: int = 0) -> bool:
        """Whether no user of ``partition`` can be due by ``until``: a replay's question
        at every event (a stale index entry may be early, never late)."""
        heap = self._deadlines.get(partition)
        return not heap or heap[0][0] > until

    def due(self, until: int, *, partition: int = 0, limit: int = 1000) -> list[str]:
        """See ProfileStore.due."""
        heap = self._deadlines.get(partition)
        if not heap or heap[0][0] > until:
            return []  # the usual case: a replay asks at every event
        due_of = self._due_of[partition]
        found: list[tuple[int, str]] = []
        seen: set[str] = set()
        while heap and heap[0][0] <= until and len(found) < limit:
            entry = heapq.heappop(heap)
            due, user = entry
            if due_of.get(user) == due and user not in seen:  # else stale, or twice
                seen.add(user)
                found.append(entry)
        for entry in found:  # still due until saved or dropped
            heapq.heappush(heap, entry)
        return [user for _, user in found]

    def tag_members(self, tag: str, *, after: str = "", limit: int | None = None) -> list[str]:
        """See OperationsStore.tag_members."""
        members = sorted(self._audiences.get(tag, ()))
        start = bisect_right(members, after) if after else 0
        return members[start:] if limit is None else members[start : start + limit]

    def population(self, stages: Sequence[str]) -> tuple[dict[str, int], dict[str, int]]:
        """See OperationsStore.population (a count over the profiles, not kept as sets)."""
        counts = Counter(profile.stage for profile in self._profiles.values())
        tags = sorted(self._audiences)[:MAX_AUDIENCE_GAUGES]
        return {s: counts[s] for s in stages}, {t: len(self._audiences[t]) for t in tags}

    def users_page(self, cursor: str, count: int) -> tuple[str, list[str]]:
        """See OperationsStore.users_page: the cursor is a position in the order users
        gained their profile (a user removed, linked or forgotten, moves no other)."""
        start = int(cursor)
        end = start + max(1, count)
        page = [user for user in self._order[start:end] if user is not None]
        return ("0" if end >= len(self._order) else str(end)), page

    def ping(self) -> None:
        """See OperationsStore.ping: memory always answers."""

    def users(self) -> Iterator[str]:
        """See ProfileStore.users."""
        return iter(list(self._profiles))


def check_links(profiles: Sequence[Profile], links: Mapping[str, str] | None) -> Mapping[str, str]:
    """The links of a save (none: ``{}``), refused (ValueError) if an id would be saved
    and linked at once, or linked to itself: a caller's bug, not a store's state."""
    if not links:
        return {}
    if both := {p.user_id for p in profiles} & set(links):
        raise ValueError(f"saved and linked at once: {sorted(both)[0]!r}")
    if loops := [user for user, person in links.items() if user == person]:
        raise ValueError(f"linked to itself: {loops[0]!r}")
    return links


def _json_copy(profile: Profile) -> Profile:
    """A profile as a store that serialises it would read it back (without ``stored``)."""
    return Profile.from_dict(orjson.loads(orjson.dumps(profile.to_dict())))
