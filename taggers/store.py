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
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Final, Protocol

import orjson

from taggers.profile import Profile, StoredAs

SAVED: Final = "saved"
REDELIVERED: Final = "redelivered"
MAX_AUDIENCE_GAUGES: Final = 1000  # tags reported by population(); families can grow


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
    ) -> dict[str, str]:
        """Store each profile, its tag memberships, stage and next deadline, atomically per
        user; a store that hands out copies keeps a copy (later changes to the profile are
        not stored until saved again).

        ``partition`` picks the deadline index. ``offsets`` maps a user to, per source (a
        topic partition, say), the offset of the last event of it applied to them; a
        write with an offset not past the stored one of any of its sources is a
        redelivery and changes nothing. Users left out of ``offsets`` are written with no
        offset (a timer sweep). Returns ``saved`` or ``redelivered`` per user.

        A store that hands out copies compares each profile with the version it was read
        at (``Profile.stored``; a profile never read is new, and refused if the user was
        stored meanwhile): the others of the batch are written, then StoreConflictError
        names the refused ones, which are left exactly as stored.
        """
        ...

    def offsets(self, user_id: str) -> dict[str, int]:
        """The last applied offset of each source for a user (none: ``{}``)."""
        ...

    def load_applied(
        self, sources: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Profile], dict[str, dict[str, int]]]:
        """``load`` of the users ``sources`` names, plus each one's last applied offset
        of each source named for them (those it has; users with none are left out)."""
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
        """Every stored user id."""
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
        """Users per stage (of ``stages``) and per tag (audience sizes). The tags are those
        that ever had an audience, at most MAX_AUDIENCE_GAUGES of them by name; a tag
        whose audience emptied is there with 0."""
        ...

    def users_page(self, cursor: str, count: int) -> tuple[str, list[str]]:
        """One step of a scan over the stored users: the next cursor ("0": done; start
        with "0") and about ``count`` user ids. A user stored for the whole scan is
        returned at least once; the cursor is text that may be kept and resumed later."""
        ...

    def ping(self) -> None:
        """Raise unless the store answers."""
        ...


class MemoryStore:
    """An in-memory OperationsStore. By default profiles are kept and handed out by
    reference (no copy: what replays can afford); with ``copies`` they are kept as JSON
    round trips of what was saved, handed out as copies and written under the version
    they were read at, as the Redis store does."""

    def __init__(self, *, copies: bool = False) -> None:
        self._copies = copies
        self._profiles: dict[str, Profile] = {}
        self._audiences: dict[str, set[str]] = {}
        self._tags_of: dict[str, frozenset[str]] = {}
        self._deadlines: dict[int, list[tuple[int, str]]] = {}  # partition -> heap
        self._due_of: dict[int, dict[str, int]] = {}  # partition -> user -> deadline
        self._offsets: dict[str, dict[str, int]] = {}
        self._versions: dict[str, int] = {}  # with copies: the writes of each user

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
            stored.stored.partition if stored.stored else 0,
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
    ) -> dict[str, str]:
        """See ProfileStore.save."""
        results: dict[str, str] = {}
        conflicts: list[str] = []
        for profile in profiles:
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
            self._index(profile, partition)
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
        return results

    def _is_current(self, profile: Profile) -> bool:
        """Whether a profile was read at the user's stored version (new: never stored)."""
        read = "0" if profile.stored is None else profile.stored.version
        return read == str(self._versions.get(profile.user_id, 0))

    def _index(self, profile: Profile, partition: int) -> None:
        """Audiences and the deadline index, as of a profile being written."""
        user = profile.user_id
        tags = frozenset(profile.tags)
        before = self._tags_of.get(user, frozenset())
        if tags != before:
            for tag in before - tags:
                self._audiences[tag].discard(user)
            for tag in tags - before:
                self._audiences.setdefault(tag, set()).add(user)
            self._tags_of[user] = tags
        due_of = self._due_of.get(partition)
        if due_of is None:
            due_of = self._due_of[partition] = {}
        if profile.due is None:
            due_of.pop(user, None)
        elif due_of.get(user) != profile.due:
            # Old heap entries are left behind and skipped when met (lazy delete).
            due_of[user] = profile.due
            heapq.heappush(self._deadlines.setdefault(partition, []), (profile.due, user))

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
        were first stored (no user is ever removed, so each is returned once)."""
        users = list(self._profiles)
        start = int(cursor)
        end = start + max(1, count)
        return ("0" if end >= len(users) else str(end)), users[start:end]

    def ping(self) -> None:
        """See OperationsStore.ping: memory always answers."""

    def users(self) -> Iterator[str]:
        """See ProfileStore.users."""
        return iter(list(self._profiles))


def _json_copy(profile: Profile) -> Profile:
    """A profile as a store that serialises it would read it back (without ``stored``)."""
    return Profile.from_dict(orjson.loads(orjson.dumps(profile.to_dict())))
