"""The profiles a worker last wrote, kept so that its next batch of the same user needs
neither a Redis read nor a JSON decode (``streams.redis_store`` uses it).

A kept profile is the object that was saved, with the applied offsets its store knows of
(those it read, ``None`` for a source it read none of, and those it wrote). Handing it out
checks it out: until it is saved again, through this cache, it is not handed out again,
so an object the engine changed and that was never saved (a batch redone after an engine
error, a write refused as a conflict) is never taken for what Redis holds; the next load
reads Redis. Whether a kept profile is still what Redis holds is Redis's to tell: the
save of a profile handed out from here is conditional on the version this worker wrote
and on its writer mark (see ``FUNCTION_LIBRARY``), so another writer's change (a worker
that took the partition over, an identity change, a restore) refuses it, and the worker
redoes the batch from Redis as it does any conflict.

Bounded by ``TAGGER_PROFILE_CACHE_SIZE`` profiles, the least recently saved going first;
a rebalance drops those of the partitions this worker no longer holds (``keep``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from taggers.profile import Profile


@dataclass(slots=True)
class Kept:
    """A profile as this worker read or last wrote it, with the offsets known of it."""

    profile: Profile
    offsets: dict[str, int | None]  # source -> applied offset; None: none applied
    out: bool = True  # handed out and not saved since: not to be handed out again
    hit: bool = False  # handed out from here (its save must find this writer's mark)


class ProfileCache:
    """At most ``size`` kept profiles by user id (0: none kept)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: dict[str, Kept] = {}  # in the order saved, oldest first

    def __len__(self) -> int:
        return len(self._kept)

    def take(self, user_id: str, sources: Collection[str]) -> Kept | None:
        """The kept profile of a user whose offsets of ``sources`` are known, checked
        out; None if there is none to hand out (not kept, out, or a source unknown)."""
        kept = self._kept.get(user_id)
        if kept is None or kept.out:
            return None
        offsets = kept.offsets
        for source in sources:
            if source not in offsets:
                return None
        kept.out = kept.hit = True
        return kept

    def read(self, user_id: str, profile: Profile, offsets: dict[str, int | None]) -> None:
        """Note a profile read from Redis and handed out (checked out until saved)."""
        if self.size > 0:
            self._kept.pop(user_id, None)
            self._kept[user_id] = Kept(profile, offsets)
            self._trim()

    def mine(self, profile: Profile) -> bool:
        """Whether this profile was handed out from here (not read from Redis)."""
        kept = self._kept.get(profile.user_id)
        return kept is not None and kept.profile is profile and kept.hit

    def wrote(self, profile: Profile, offsets: Mapping[str, int] | None) -> None:
        """A profile was saved (with these offsets): kept if it is the one handed out,
        as the newest; any other profile of the user kept is dropped (now stale)."""
        user = profile.user_id
        kept = self._kept.pop(user, None)
        if kept is None or kept.profile is not profile:
            return
        if offsets:
            kept.offsets.update(offsets)
        kept.out = kept.hit = False
        self._kept[user] = kept

    def drop(self, user_ids: Iterable[str]) -> None:
        """Forget these users' kept profiles (their write was refused, or they changed)."""
        for user in user_ids:
            self._kept.pop(user, None)

    def keep(self, partitions: Collection[int]) -> None:
        """Keep only the profiles saved with one of these deadline partitions (those of
        the partitions this worker holds after a rebalance)."""
        gone = [
            user
            for user, kept in self._kept.items()
            if kept.profile.stored is None or kept.profile.stored.partition not in partitions
        ]
        self.drop(gone)

    def _trim(self) -> None:
        while len(self._kept) > self.size:
            del self._kept[next(iter(self._kept))]
