"""The Redis store's profile writes: a batch of users' profiles, their offsets and their
audience, stage and deadline entries (``streams.redis_store`` gives the layout and the
guarantees; ``RedisStore.save`` hands its batches here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from taggers.profile import Profile

if TYPE_CHECKING:
    from streams.redis_store import RedisStore


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
        tags = frozenset(profile.tags)
        before = frozenset() if profile.stored is None else profile.stored.tags
        for tag in tags - before:
            pipe.zadd(self.keys.audience(tag), {user: 0})
            pipe.sadd(self.keys.tag_names(), tag)
        for tag in before - tags:
            pipe.zrem(self.keys.audience(tag), user)
        before_stage = None if profile.stored is None else profile.stored.stage
        if before_stage is not None and before_stage != profile.stage:
            pipe.zrem(self.keys.stage(before_stage), user)
        if profile.stage is not None:  # always, as deadlines below
            pipe.zadd(self.keys.stage(profile.stage), {user: 0})
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
            tags = frozenset(profile.tags)
            before = frozenset() if stored is None else stored.tags
            changes: list[str] = []
            for tag in tags - before:
                changes += ("+", key(keys.audience(tag)), tag)
            for tag in before - tags:
                changes += ("-", key(keys.audience(tag)), "")
            before_stage = None if stored is None else stored.stage
            if before_stage is not None and before_stage != profile.stage:
                changes += ("-", key(keys.stage(before_stage)), "")
            if profile.stage is not None:  # always, as the deadline (see the pipeline's)
                changes += ("+", key(keys.stage(profile.stage)), "")
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
