"""The Redis store's identity operations: turning ids into links, forgetting ids, their
tombstones, and following links (``taggers.store`` states the contract; ``RedisStore``
hands these calls here, and its module docstring gives the key layout).

Removing an id (a link replacing it, or a forget) is one Redis Function call on the id's
slot (its hash and its link key share the hash tag ``{ID}``), so it is atomic; the call
compares the version the id was read at, so what it removes from the indexes (the tags,
stage and deadline partition of the profile read) is what the id held. The index entries
go first, in the same round trip on one server and in the round trip before on a cluster
(as a save's do), so no profile is ever without the removal it needs: a crash between the
two leaves the id as it was, with some index entries already gone, and the redelivered
operation removes them again (each removal is idempotent). A forget writes the tombstones
before anything else goes, so events older than it change nothing from then on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson
import redis

from taggers.profile import Profile
from taggers.store import (
    MAX_HOPS,
    Lookup,
    StoreConflictError,
    Transfer,
    carried_offsets,
    check_links,
    tombstone_hash,
)

if TYPE_CHECKING:
    from streams.redis_store import RedisStore

ATTEMPTS: Final = 5  # re-reads of an id written while it is removed, before giving up
REFUSED: Final = -1  # a removal's reply: the id changed since it was read


@dataclass(frozen=True, slots=True)
class Held:
    """What an id held as read, so what removing it must take out of the indexes: the
    version to compare, the tags and stage of its profile and the partition of its
    deadline (None: no profile)."""

    version: str = "0"
    tags: frozenset[str] = frozenset()
    stage: str | None = None
    partition: int | None = None

    @classmethod
    def of(cls, profile: Profile) -> Held:
        """What a profile the caller read held, as it was read (``Profile.stored``)."""
        stored = profile.stored
        if stored is None:
            return cls()
        return cls(stored.version, stored.tags, stored.stage, stored.partition)


class RedisIdentities:
    """Links, forgets and tombstones of one RedisStore (its client, keys and tombstone
    lifetime)."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.keys = store.keys

    def link(
        self,
        links: Mapping[str, str],
        absorbed: Sequence[Profile],
        partition: int,
        *,
        keep: bool = False,
    ) -> list[str]:
        """Turn each id into a link to its person (with ``keep``, its profile and offsets
        kept as its transfer); the ids refused (read in ``absorbed`` at a version since
        moved, or written throughout ``ATTEMPTS`` re-reads), their index entries set
        again from what they hold."""
        read = {p.user_id: Held.of(p) for p in absorbed}
        pending = list(links)
        refused: list[str] = []
        for _ in range(ATTEMPTS):
            held = {u: read[u] for u in pending if u in read}
            held |= self.held([u for u in pending if u not in read])

            def call(pipe: Any, user: str, had: Held) -> None:
                keys = [self.keys.user(user), self.keys.link(user)]
                if keep:
                    keys.append(self.keys.transfer(user))
                pipe.fcall("tagger_link", len(keys), *keys, links[user], had.version)

            replies = self.remove_each(held, partition, call)
            again = [u for u in pending if replies[u] == REFUSED]
            refused += [u for u in again if u in read]  # the caller's read is stale
            pending = [u for u in again if u not in read]
            if not pending:
                break
        refused += pending
        if refused:
            self.restore(refused)
        return refused

    def forget(self, user_ids: Sequence[str], at: int, partition: int) -> None:
        """See ProfileStore.forget: tombstones first, then each id's traces."""
        pending = list(dict.fromkeys(user_ids))
        pipe = self.store.client.pipeline(transaction=False)
        lifetime = str(self.store.tombstone_ms)
        for user in pending:
            key = self.keys.tombstone(tombstone_hash(user))
            pipe.fcall("tagger_tombstone", 1, key, str(at), lifetime)
        pipe.execute()
        for _ in range(ATTEMPTS):

            def call(pipe: Any, user: str, had: Held) -> None:
                keys = (self.keys.user(user), self.keys.link(user))
                pipe.fcall("tagger_forget", 2, *keys, had.version)

            replies = self.remove_each(self.held(pending), partition, call)
            pending = [u for u in pending if replies[u] == REFUSED]
            if not pending:
                return
        self.restore(pending)
        raise StoreConflictError(pending)

    def held(self, user_ids: Sequence[str]) -> dict[str, Held]:
        """What each id holds now (one round trip; none for no ids)."""
        if not user_ids:
            return {}
        pipe = self.store.client.pipeline(transaction=False)
        for user in user_ids:
            pipe.hmget(self.keys.user(user), "p", "v", "d")
        found: dict[str, Held] = {}
        for user, (data, version, partition) in zip(user_ids, pipe.execute(), strict=True):
            if data is None:
                found[user] = Held((version or b"0").decode())
                continue
            profile = orjson.loads(data)
            found[user] = Held(
                (version or b"0").decode(),
                frozenset(profile.get("tags", ())),
                profile.get("stage"),
                int(partition or 0),
            )
        return found

    def remove_each(
        self,
        held: Mapping[str, Held],
        partition: int,
        call: Callable[[Any, str, Held], None],
    ) -> dict[str, Any]:
        """Take each id out of its audiences, stage and deadline indexes (``partition``'s
        and the one it was saved with), then queue its Function ``call``: the calls'
        replies by id."""
        pipe = self.store.client.pipeline(transaction=False)
        keys = self.keys
        for user, had in held.items():
            for tag in had.tags:
                pipe.zrem(keys.audience(tag), user)
            if had.stage is not None:
                pipe.zrem(keys.stage(had.stage), user)
            for index in {partition, partition if had.partition is None else had.partition}:
                pipe.zrem(keys.deadlines(index), user)
        if self.store.on_cluster:
            pipe.execute()  # before the removals, which may live on other nodes
        for user, had in held.items():
            call(pipe, user, had)
        replies = pipe.execute()[-len(held) :] if held else []
        return dict(zip(held, replies, strict=True))

    def lookup(self, sources: Mapping[str, Collection[str]]) -> Lookup:
        """See ProfileStore.lookup: each id's hash, link and tombstone in one round trip,
        and one more per hop of a chain of links."""
        users = list(sources)
        pipe = self.store.client.pipeline(transaction=False)
        for user in users:
            pipe.get(self.keys.link(user))
            pipe.get(self.keys.tombstone(tombstone_hash(user)))
        profiles, applied, replies = self.store.read(users, sources, pipe)
        links = {u: t.decode() for u, t in zip(users, replies[::2], strict=True) if t}
        links |= self.follow(links)
        tombs = {u: int(at) for u, at in zip(users, replies[1::2], strict=True) if at}
        return Lookup(profiles, applied, links, tombs)

    def restore(self, user_ids: Sequence[str]) -> None:
        """Set the index entries of ids whose removal was refused from what they hold
        (the removal went first, from a read that turned out stale)."""
        pipe = self.store.client.pipeline(transaction=False)
        self.queue_restore(pipe, self.store.load(user_ids))
        pipe.execute()

    def queue_restore(self, pipe: Any, stored: Mapping[str, Profile]) -> None:
        """Queue the audience, stage and deadline entries of these stored profiles."""
        for user, profile in stored.items():
            for tag in profile.tags:
                pipe.zadd(self.keys.audience(tag), {user: 0})
            if profile.stage is not None:
                pipe.zadd(self.keys.stage(profile.stage), {user: 0})
            if profile.due is not None and profile.stored is not None:
                pipe.zadd(self.keys.deadlines(profile.stored.partition), {user: profile.due})

    def follow(self, frontier: dict[str, str]) -> dict[str, str]:
        """From each id (key) at an id of its chain (value), the id the chain ends at: one
        round trip per hop, at most MAX_HOPS. Ids whose chain is only themselves are left
        out."""
        found: dict[str, str] = {}
        client = self.store.client
        for _ in range(MAX_HOPS):
            if not frontier:
                return found
            pipe = client.pipeline(transaction=False)
            at = list(frontier.items())
            for _, current in at:
                pipe.get(self.keys.link(current))
            frontier = {}
            for (origin, current), target in zip(at, pipe.execute(), strict=True):
                if target is not None:
                    frontier[origin] = target.decode()
                elif current != origin:
                    found[origin] = current
        found.update(frontier)  # a chain longer than MAX_HOPS stops there
        return found

    def tombstones(self, user_ids: Sequence[str]) -> dict[str, int]:
        """See ProfileStore.tombstones (one round trip)."""
        if not user_ids:
            return {}
        keys = [self.keys.tombstone(tombstone_hash(user)) for user in user_ids]
        pipe = self.store.client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        replies = pipe.execute()
        return {u: int(at) for u, at in zip(user_ids, replies, strict=True) if at is not None}

    def absorb(
        self, profiles: Sequence[Profile], person: str, *, cause: str, at: int, partition: int = 0
    ) -> None:
        """See ProfileStore.absorb: the ids noted in flight with the merge's cause and time
        (the hash ``P:transfers``), then linked as ``save`` links them, each keeping its
        profile and offsets (``P:transfer:{ID}``) in the same Function call."""
        links = check_links([], {profile.user_id: person for profile in profiles})
        if not links:
            return
        note = orjson.dumps({"cause": cause, "at": at}).decode()
        self.store.client.hset(self.keys.in_flight(), mapping=dict.fromkeys(links, note))
        read = list(profiles)
        refused = with_functions(self.store, lambda: self.link(links, read, partition, keep=True))
        if refused:
            raise StoreConflictError(refused)

    def transfers(self, user_ids: Sequence[str] | None = None) -> dict[str, Transfer]:
        """See ProfileStore.transfers (one round trip, two for every id in flight)."""
        noted = self.store.client.hgetall(self.keys.in_flight())
        notes = {(u.decode() if isinstance(u, bytes) else u): n for u, n in noted.items()}
        wanted = sorted(notes) if user_ids is None else [u for u in user_ids if u in notes]
        if not wanted:
            return {}
        pipe = self.store.client.pipeline(transaction=False)
        for user in wanted:
            pipe.get(self.keys.transfer(user))
        found: dict[str, Transfer] = {}
        for user, kept in zip(wanted, pipe.execute(), strict=True):
            if kept is None:
                continue  # noted, then a crash before its link: nothing moved
            data, note = orjson.loads(kept), orjson.loads(notes[user])
            profile = Profile.from_dict(orjson.loads(data["p"])) if data["p"] else None
            offsets = {s: int(o) for s, o in (data["o"] or {}).items() if s != "_"}
            moved = carried_offsets(user, offsets)
            found[user] = Transfer(profile, moved, note["cause"], note["at"])
        return found

    def settle(self, user_ids: Sequence[str]) -> None:
        """See ProfileStore.settle: the transfers, then the note that they are in flight."""
        if not user_ids:
            return
        pipe = self.store.client.pipeline(transaction=False)
        for user in user_ids:
            pipe.delete(self.keys.transfer(user))
        pipe.execute()
        self.store.client.hdel(self.keys.in_flight(), *user_ids)


class IdentityCalls:
    """The identity calls of ``RedisStore``, handed to its ``RedisIdentities``."""

    identities: RedisIdentities

    def lookup(self, sources: Mapping[str, Collection[str]]) -> Lookup:
        """See RedisIdentities.lookup (one round trip, and one per hop of a chain)."""
        return self.identities.lookup(sources)

    def resolve(self, user_ids: Sequence[str]) -> dict[str, str]:
        """See ProfileStore.resolve: one round trip per hop."""
        return self.identities.follow({user: user for user in user_ids})

    def forget(self, user_ids: Sequence[str], at: int, *, partition: int = 0) -> None:
        """See ProfileStore.forget: three round trips (four on a cluster) for all of them."""
        identities = self.identities
        identities.store.cache.drop(user_ids)
        with_functions(identities.store, lambda: identities.forget(user_ids, at, partition))
        self.settle(list(user_ids))  # no transfer keeps personal data of a forgotten id

    def tombstones(self, user_ids: Sequence[str]) -> dict[str, int]:
        """See ProfileStore.tombstones (one round trip)."""
        return self.identities.tombstones(user_ids)

    def absorb(
        self, profiles: Sequence[Profile], person: str, *, cause: str, at: int, partition: int = 0
    ) -> None:
        """See RedisIdentities.absorb."""
        self.identities.store.cache.drop([p.user_id for p in profiles])
        self.identities.absorb(profiles, person, cause=cause, at=at, partition=partition)

    def transfers(self, user_ids: Sequence[str] | None = None) -> dict[str, Transfer]:
        """See RedisIdentities.transfers."""
        return self.identities.transfers(user_ids)

    def settle(self, user_ids: Sequence[str]) -> None:
        """See RedisIdentities.settle."""
        self.identities.settle(user_ids)


def with_functions(store: RedisStore, call: Callable[[], Any]) -> Any:
    """``call``, again after loading the Function library if Redis lost it (a restart):
    every write these calls send is idempotent, and a refused Function call did nothing."""
    try:
        return call()
    except redis.ResponseError as error:
        if "Function not found" not in str(error):
            raise
        store.load_functions()
        return call()
