"""The Redis store's profile writes: a batch of users' profiles, their offsets and their
audience, stage and deadline entries (``streams.redis_store`` gives the layout and the
guarantees; ``RedisStore.save`` hands its batches here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from taggers.profile import Profile

if TYPE_CHECKING:
    from streams.redis_store import Keys, RedisStore


def index_changes(keys: Keys, profile: Profile) -> list[tuple[str, str, str]]:
    """The audience and stage entries a write of ``profile`` adds (``+``) or removes
    (``-``), as (op, key, tag): ``tag`` is an added tag's name (for the set of tag names),
    else empty. The same for a batch call and for a cluster's pipeline."""
    user_tags = frozenset(profile.tags)
    before = frozenset() if profile.stored is None else profile.stored.tags
    changes = [("+", keys.audience(tag), tag) for tag in user_tags - before]
    changes += [("-", keys.audience(tag), "") for tag in before - user_tags]
    before_stage = None if profile.stored is None else profile.stored.stage
    if before_stage is not None and before_stage != profile.stage:
        changes.append(("-", keys.stage(before_stage), ""))
    if profile.stage is not None:  # always, as the deadline
        changes.append(("+", keys.stage(profile.stage), ""))
    return changes


class ProfileWrites:
    """Writes the profile batches of one RedisStore (its client, keys, mark and cache)."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.keys = store.keys

    def repair(self, refused: list[Profile]) -> None:
        """Undo what a refused write's side effects did to audiences and deadlines: they
        went in the same pipeline, before the refusal, and a stale profile's tags and
        deadline are not the stored ones. Each user's touched entries are set again from
        the stored profile."""
        store = self.store
        users = [p.user_id for p in refused]
        stored = store.read(users, None, store.client.pipeline(transaction=False))[0]
        pipe = self.store.client.pipeline(transaction=False)
        for profile in refused:
            user = profile.user_id
            current = stored.get(user)
            before = frozenset() if profile.stored is None else profile.stored.tags
            have = frozenset() if current is None else frozenset(current.tags)
            for tag in (before | frozenset(profile.tags)) - have:
                pipe.zrem(self.keys.audience(tag), user)
            stage = None if current is None else current.stage
            before_stage = None if profile.stored is None else profile.stored.stage
            for gone in {before_stage, profile.stage} - {None, stage}:
                pipe.zrem(self.keys.stage(str(gone)), user)
        store.identities.queue_restore(pipe, stored)
        pipe.execute()

    def _queue_side_effects(self, pipe: Any, profile: Profile, partition: int) -> None:
        user = profile.user_id
        for op, key, tag in index_changes(self.keys, profile):
            if op == "+":
                pipe.zadd(key, {user: 0})
                if tag:
                    pipe.sadd(self.keys.tag_names(), tag)
            else:
                pipe.zrem(key, user)
        # Always written, not only when changed: an index entry left stale by a crash is
        # then corrected by the next write, and a sweep can never see the same user forever.
        if profile.due is None:
            pipe.zrem(self.keys.deadlines(partition), user)
        else:
            pipe.zadd(self.keys.deadlines(partition), {user: profile.due})

    def write(
        self,
        batch: list[Profile],
        partition: int,
        offsets: Mapping[str, Mapping[str, int]] | None,
    ) -> list[Any]:
        """Send a batch: one call on one server, else one pipeline; the replies of the
        profile writes, in order."""
        if not self.store.on_cluster:
            return self._call(batch, partition, offsets)
        pipe = self.store.client.pipeline(transaction=False)
        for profile in batch:
            self._queue_side_effects(pipe, profile, partition)
        pipe.execute()  # before the profiles, which may live on other nodes
        keys, mark, mine = self.keys, self.store.mark, self.store.cache.mine
        for profile in batch:
            user = profile.user_id
            positions = {} if offsets is None else offsets.get(user) or {}
            pipe.fcall(
                "tagger_save_profile_as",
                2,
                keys.user(user),
                keys.link(user),
                orjson.dumps(profile.to_dict()),
                "0" if profile.stored is None else profile.stored.version,
                str(partition),
                mark,
                "1" if mine(profile) else "0",
                *(part for source, at in positions.items() for part in (source, str(at))),
            )
        replies: list[Any] = pipe.execute()
        return replies[-len(batch) :]

    def _call(
        self,
        batch: list[Profile],
        partition: int,
        offsets: Mapping[str, Mapping[str, int]] | None,
    ) -> list[Any]:
        """A batch as one ``tagger_save_batch`` call (see it for the arguments)."""
        keys, mark, mine = self.keys, self.store.mark, self.store.cache.mine
        named: dict[str, str] = {}  # key -> its index in KEYS (1-based, as text)
        names = [keys.tag_names(), keys.deadlines(partition)]

        def key(name: str) -> str:
            index = named.get(name)
            if index is None:
                names.append(name)
                index = named[name] = str(len(names))
            return index

        args: list[Any] = [str(partition), mark]
        for profile in batch:
            user, stored = profile.user_id, profile.stored
            changes: list[str] = []
            for op, name, tag in index_changes(keys, profile):
                changes += (op, key(name), tag)
            positions = {} if offsets is None else offsets.get(user) or {}
            args += (
                user,
                key(keys.user(user)),
                key(keys.link(user)),
                orjson.dumps(profile.to_dict()),
                "0" if stored is None else stored.version,
                "1" if mine(profile) else "0",
                "" if profile.due is None else str(profile.due),
                str(len(changes) // 3),
                *changes,
                str(len(positions)),
                *(part for source, at in positions.items() for part in (source, str(at))),
            )
        replies: list[Any] = self.store.client.fcall("tagger_save_batch", len(names), *names, *args)
        return replies
