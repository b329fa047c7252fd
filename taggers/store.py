"""Where profiles live. ``ProfileStore`` is the interface; ``MemoryStore`` keeps them in RAM.

The Redis store (used by the streaming worker) implements the same interface; replays,
dry runs and rule tests use the in-memory one.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from taggers.profile import Profile


class ProfileStore(Protocol):
    """Profiles by user, tag audiences, and the index of users' next deadlines."""

    def load(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """The stored profiles of these users (users never seen are left out)."""
        ...

    def save(
        self,
        profiles: Iterable[Profile],
        *,
        partition: int = 0,
        offsets: Mapping[str, Mapping[str, int]] | None = None,
    ) -> dict[str, str]:
        """Store each profile, its tag memberships and its next deadline, atomically per user.

        ``partition`` picks the deadline index. ``offsets`` maps a user to, per source (a
        topic partition, say), the offset of the last event of it applied to them; a
        write with an offset not past the stored one of its source is a redelivery and
        changes nothing. Returns ``saved`` or ``redelivered`` per user.
        """
        ...

    def offsets(self, user_id: str) -> dict[str, int]:
        """The last applied offset of each source for a user."""
        ...

    def load_applied(
        self, sources: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Profile], dict[str, dict[str, int]]]:
        """``load`` of the users ``sources`` names, plus each one's last applied offset
        of each source named for them (those it has)."""
        ...

    def drop_deadlines(self, user_ids: Sequence[str], *, partition: int = 0) -> None:
        """Forget deadlines of users that have no profile (nothing can fire for them)."""
        ...

    def due(self, until: int, *, partition: int = 0, limit: int = 1000) -> list[str]:
        """Users of a partition with a deadline at or before ``until``, at most ``limit``."""
        ...

    def tag_members(self, tag: str) -> list[str]:
        """The users holding a tag (the tag's audience), sorted."""
        ...

    def users(self) -> Iterator[str]:
        """Every stored user id."""
        ...


class MemoryStore:
    """An in-memory ProfileStore; profiles are kept by reference (no copy)."""

    def __init__(self) -> None:
        self._profiles: dict[str, Profile] = {}
        self._audiences: dict[str, set[str]] = {}
        self._tags_of: dict[str, frozenset[str]] = {}
        self._deadlines: list[tuple[int, str]] = []
        self._due_of: dict[str, int] = {}
        self._offsets: dict[str, dict[str, int]] = {}

    def load(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """See ProfileStore.load."""
        profiles = self._profiles
        return {u: profiles[u] for u in user_ids if u in profiles}

    def get(self, user_id: str) -> Profile | None:
        """One stored profile, or None."""
        return self._profiles.get(user_id)

    def save(
        self,
        profiles: Iterable[Profile],
        *,
        partition: int = 0,
        offsets: Mapping[str, Mapping[str, int]] | None = None,
    ) -> dict[str, str]:
        """See ProfileStore.save. One deadline index serves every partition here."""
        results: dict[str, str] = {}
        for profile in profiles:
            user = profile.user_id
            positions = None if offsets is None else offsets.get(user)
            if positions:
                applied = self._offsets.setdefault(user, {})
                if any(applied.get(s, -1) >= offset for s, offset in positions.items()):
                    results[user] = "redelivered"
                    continue
                applied.update(positions)
            results[user] = "saved"
            self._profiles[user] = profile
            tags = frozenset(profile.tags)
            before = self._tags_of.get(user, frozenset())
            if tags != before:
                for tag in before - tags:
                    self._audiences[tag].discard(user)
                for tag in tags - before:
                    self._audiences.setdefault(tag, set()).add(user)
                self._tags_of[user] = tags
            if profile.due is None:
                self._due_of.pop(user, None)
            elif self._due_of.get(user) != profile.due:
                # Old heap entries are left behind and skipped when popped (lazy delete).
                self._due_of[user] = profile.due
                heapq.heappush(self._deadlines, (profile.due, user))
        return results

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
        for user in user_ids:
            self._due_of.pop(user, None)

    def due(self, until: int, *, partition: int = 0, limit: int = 1000) -> list[str]:
        """See ProfileStore.due; due users are handed out once (until saved again)."""
        found: list[str] = []
        heap = self._deadlines
        while heap and heap[0][0] <= until and len(found) < limit:
            due, user = heapq.heappop(heap)
            if self._due_of.get(user) == due:
                del self._due_of[user]
                found.append(user)
        return found

    def tag_members(self, tag: str) -> list[str]:
        """See ProfileStore.tag_members."""
        return sorted(self._audiences.get(tag, ()))

    def users(self) -> Iterator[str]:
        """See ProfileStore.users."""
        return iter(list(self._profiles))
