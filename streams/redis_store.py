"""Profiles in Redis: the store the streaming worker uses, an ``OperationsStore`` (see
``taggers.store`` for the contract) that hands out copies.

Layout (``P`` is the key prefix, ``tagger`` by default):

- ``P:u:{USER}``: a hash per user: ``p`` the profile (JSON), ``v`` a version that every
  write bumps (a compare-and-set token), ``o:SOURCE`` the last applied offset of each
  source (``0``, ``1``...: partitions of the input topic; ``k0``, ``k1``...: re-keyed
  copies, by the input partition they came from, at its offsets; ``r0``...: records
  produced by hand on the re-keyed topic, at its offsets), ``d`` the partition whose
  deadline set holds the user, ``w`` the mark of the store that wrote it last (a random
  id per store; see ``streams.profile_cache``).
- ``P:link:{USER}``: the id a linked user leads to (a string; a link has no hash).
- ``P:tomb:{HASH}``: a forgotten id's tombstone, ``HASH`` its ``tombstone_hash`` (no id
  is kept): the time of the forget, expiring after the tombstone lifetime.
- ``P:tag:{TAG}``: a tag's audience, a sorted set of user ids (score 0: ordered by id, so
  pages are stable); ``P:tags`` the set of tag names that ever had an audience.
- ``P:stage:{STAGE}``: the users in a lifecycle stage, likewise.
- ``P:due:{pPARTITION}``: users' next deadlines, a sorted set scored by due time.

A user's write is atomic: on one Redis server a batch of users is one Redis Function call
(``tagger_save_batch``: one round trip, the batch atomic as a whole), on a Redis Cluster
one call per user on that user's hash. The function refuses a write whose offset is not
past the stored one (a redelivery), whose version moved since the profile was read
(another writer, such as a zombie worker after a rebalance), whose writer mark is not
this store's when the profile is one it kept (``streams.profile_cache``), or whose user
is a link. Every command names one key or a user's own keys, which share one hash slot,
so the store runs unchanged on Redis Cluster. Links and forgets are in
``streams.redis_identity``; the writes are ``streams.redis_writes``.

Audience, stage and deadline updates are never behind a profile: on one server they are
made in the same call, for the writes not refused as conflicts; on a cluster they go in
a round trip before the profile writes (a client sends each node its share in parallel),
and those of a refused write are repaired from the stored profile after it. All are
idempotent, and a repeated deadline is harmless (the engine finds nothing due and moves on).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias
from urllib.parse import unquote_plus

import orjson
import redis
from redis.cluster import RedisCluster

from streams.profile_cache import ProfileCache
from streams.redis_identity import IdentityCalls, RedisIdentities, with_functions
from streams.redis_writes import ProfileWrites
from streams.settings import Settings, revealed
from taggers.profile import Profile, StoredAs
from taggers.store import (
    LINKED,
    MAX_AUDIENCE_GAUGES,
    REDELIVERED,
    SAVED,
    StoreConflictError,
    check_links,
)

# The contract's names (taggers.store) are also exported from here: what a writer catches.
__all__ = [
    "CONFLICT",
    "FUNCTION_LIBRARY",
    "Client",
    "Keys",
    "RedisStore",
    "client_for",
    "connect",
    "redacted",
]

FUNCTION_LIBRARY: Final = """#!lua name=tagger
local function offset_is_newer(stored, offset)
  if not stored then return true end
  if #offset ~= #stored then return #offset > #stored end
  return offset > stored
end

-- KEYS[1]: the user's hash, KEYS[2]: the user's link (the previous release sends no
-- KEYS[2]). ARGV: profile JSON, expected version, deadline partition, then pairs of
-- source and offset (none: a write with no offset, such as a timer sweep).
local function save_profile_at(keys, args)
  local key = keys[1]
  local version = redis.call('HGET', key, 'v') or '0'
  if version ~= args[2] then return -1 end
  if keys[2] and redis.call('EXISTS', keys[2]) == 1 then return -1 end
  for i = 4, #args, 2 do
    if not offset_is_newer(redis.call('HGET', key, 'o:' .. args[i]), args[i + 1]) then
      return 0
    end
  end
  for i = 4, #args, 2 do
    redis.call('HSET', key, 'o:' .. args[i], args[i + 1])
  end
  redis.call('HSET', key, 'p', args[1], 'd', args[3])
  return redis.call('HINCRBY', key, 'v', 1)
end

-- ARGV: profile JSON, expected version, deadline partition, this writer's mark, '1' if
-- the stored mark must be it (a profile this writer kept since it wrote it: a version
-- alone could come round again once the hash is deleted and written anew), then pairs
-- of source and offset. The mark is written with the profile.
local function save_profile_as(keys, args)
  if args[5] == '1' and redis.call('HGET', keys[1], 'w') ~= args[4] then return -1 end
  local at = {args[1], args[2], args[3]}
  for i = 6, #args do at[#at + 1] = args[i] end
  local reply = save_profile_at(keys, at)
  if reply > 0 then redis.call('HSET', keys[1], 'w', args[4]) end
  return reply
end

-- A batch of users' writes in one call (one Redis server; a cluster is sent one call per
-- user, the index updates in a round trip before). KEYS[1]: the tag names, KEYS[2]: the
-- batch's deadline set, then the users' hashes and links and the audience and stage sets
-- the writes touch, named by their index in KEYS. ARGV: the deadline partition, this
-- writer's mark, then per user: user id, hash index, link index, profile JSON, expected
-- version, '1' if the stored mark must be this writer's, next deadline ('' for none),
-- the count of index changes and each as three (+ to add, - to remove; the set's index;
-- a tag name to note among the tag names, or ''), the count of offsets and each as two
-- (source, offset). Per user as save_profile_as, with the index changes made only if
-- the write is not refused (a redelivery rewrites them, as a pipeline's would): the
-- replies, in order.
local function save_batch(keys, args)
  local deadlines, partition, mark = keys[2], args[1], args[2]
  local replies = {}
  local i = 3
  while i <= #args do
    local user, hash, link = args[i], keys[tonumber(args[i + 1])], keys[tonumber(args[i + 2])]
    local changes_at = i + 8
    local offsets_at = changes_at + 3 * tonumber(args[i + 7])
    local after = offsets_at + 1 + 2 * tonumber(args[offsets_at])
    local reply = -1
    if args[i + 5] ~= '1' or redis.call('HGET', hash, 'w') == mark then
      local at = {args[i + 3], args[i + 4], partition}
      for j = offsets_at + 1, after - 1 do at[#at + 1] = args[j] end
      reply = save_profile_at({hash, link}, at)
    end
    if reply ~= -1 then
      for j = changes_at, offsets_at - 1, 3 do
        local set = keys[tonumber(args[j + 1])]
        if args[j] == '+' then
          redis.call('ZADD', set, 0, user)
          if args[j + 2] ~= '' then redis.call('SADD', keys[1], args[j + 2]) end
        else
          redis.call('ZREM', set, user)
        end
      end
      if args[i + 6] == '' then
        redis.call('ZREM', deadlines, user)
      else
        redis.call('ZADD', deadlines, args[i + 6], user)
      end
      if reply > 0 then redis.call('HSET', hash, 'w', mark) end
    end
    replies[#replies + 1] = reply
    i = after
  end
  return replies
end

-- The previous release's call (ARGV: profile JSON, expected version, source or '',
-- offset, deadline partition), kept for its workers during a rolling upgrade.
local function save_profile(keys, args)
  local at = {args[1], args[2], args[5]}
  if args[3] ~= '' then
    at[4], at[5] = args[3], args[4]
  end
  return save_profile_at(keys, at)
end

-- KEYS[1]: the id's hash, KEYS[2]: its link, KEYS[3] (a merge's step 1): its transfer.
-- ARGV: the id it links to, the version it was read at. The profile and offsets go (kept
-- as the transfer, JSON {p: profile JSON or '', o: {source: offset}}), the link is written.
local function link(keys, args)
  if (redis.call('HGET', keys[1], 'v') or '0') ~= args[2] then return -1 end
  if keys[3] then
    local fields = redis.call('HGETALL', keys[1])
    local offsets, profile = {}, ''
    for i = 1, #fields, 2 do
      if string.sub(fields[i], 1, 2) == 'o:' then
        offsets[string.sub(fields[i], 3)] = fields[i + 1]
      elseif fields[i] == 'p' then
        profile = fields[i + 1]
      end
    end
    if next(offsets) == nil then offsets = {_ = false} end
    redis.call('SET', keys[3], cjson.encode({p = profile, o = offsets}))
  end
  redis.call('DEL', keys[1])
  redis.call('SET', keys[2], args[1])
  return 1
end

-- KEYS[1]: the id's hash, KEYS[2]: its link. ARGV: the version it was read at.
local function forget(keys, args)
  if (redis.call('HGET', keys[1], 'v') or '0') ~= args[1] then return -1 end
  redis.call('DEL', keys[1], keys[2])
  return 1
end

-- KEYS[1]: a tombstone. ARGV: the forget time, the lifetime in ms. The later time stays.
local function tombstone(keys, args)
  local kept = redis.call('GET', keys[1])
  if not kept or tonumber(kept) < tonumber(args[1]) then
    redis.call('SET', keys[1], args[1])
  end
  redis.call('PEXPIRE', keys[1], args[2])
  return 1
end

redis.register_function('tagger_save_batch', save_batch)
redis.register_function('tagger_save_profile_as', save_profile_as)
redis.register_function('tagger_save_profile_at', save_profile_at)
redis.register_function('tagger_save_profile', save_profile)
redis.register_function('tagger_link', link)
redis.register_function('tagger_forget', forget)
redis.register_function('tagger_tombstone', tombstone)
"""
CONFLICT: Final = "conflict"

Client: TypeAlias = "redis.Redis | RedisCluster"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix."""

    prefix: str = "tagger"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}:u:{{{user_id}}}"

    def link(self, user_id: str) -> str:
        return f"{self.prefix}:link:{{{user_id}}}"

    def transfer(self, user_id: str) -> str:
        return f"{self.prefix}:transfer:{{{user_id}}}"

    def in_flight(self) -> str:
        return f"{self.prefix}:transfers"

    def tombstone(self, hashed: str) -> str:
        return f"{self.prefix}:tomb:{{{hashed}}}"

    def audience(self, tag: str) -> str:
        return f"{self.prefix}:tag:{{{tag}}}"

    def tag_names(self) -> str:
        return f"{self.prefix}:tags"

    def stage(self, stage: str) -> str:
        return f"{self.prefix}:stage:{{{stage}}}"

    def deadlines(self, partition: int) -> str:
        return f"{self.prefix}:due:{{p{partition}}}"


class RedisStore(IdentityCalls):
    """An OperationsStore on Redis (see the module docstring for the layout and guarantees).

    ``load`` hands out copies (profiles are JSON in Redis). ``save`` writes only profiles
    read through a store on this Redis (or new users), comparing the version it read
    (carried in ``Profile.stored``, so the store keeps nothing per user); ``offsets``
    (user -> offset of a source) make a redelivered write a no-op. ``client`` is public
    for what shares the Redis but is not a store: the rules board (``streams.rules_board``).
    Tombstones live ``tombstone_days`` (``TAGGER_TOMBSTONE_DAYS``) from their last forget.
    Up to ``cache_size`` profiles it last wrote are kept (``streams.profile_cache``); a
    load of one of them is no Redis read, and still a copy: it is handed out once.
    """

    def __init__(
        self,
        client: Client,
        *,
        prefix: str = "tagger",
        tombstone_days: int = 400,
        cache_size: int = 0,
    ) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.tombstone_ms = tombstone_days * 86_400_000
        self.identities = RedisIdentities(self)
        self.writes = ProfileWrites(self)
        self.cache = ProfileCache(cache_size)
        self.mark = uuid.uuid4().hex  # written with each profile: see save_profile_as
        self.on_cluster = isinstance(client, RedisCluster)  # a pipeline runs per node
        self.load_functions()

    @property
    def hands_out_copies(self) -> bool:
        """See ProfileStore.hands_out_copies: always (each load parses the stored JSON)."""
        return True

    def load_functions(self) -> None:
        """(Re)load the Redis Function library; Redis may have restarted without it."""
        self.client.function_load(FUNCTION_LIBRARY, replace=True)

    def ping(self) -> None:
        """See OperationsStore.ping: raise unless Redis answers; on a cluster, every
        primary (each holds slots)."""
        if isinstance(self.client, RedisCluster):
            self.client.ping(target_nodes=RedisCluster.PRIMARIES)
        else:
            self.client.ping()

    def load(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """See ProfileStore.load: one round trip for all of them (none for those kept)."""
        cache = self.cache
        found: dict[str, Profile] = {}
        missed: list[str] = []
        for user in user_ids:
            kept = cache.take(user, ())
            if kept is None:
                missed.append(user)
            else:
                found[user] = kept.profile
        if missed:
            fresh = self._load(missed, None)[0]
            for user, profile in fresh.items():
                cache.read(user, profile, {})  # no offsets known of it
            found |= fresh
        return found

    def load_applied(
        self, sources: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Profile], dict[str, dict[str, int]]]:
        """See ProfileStore.load_applied: one round trip for all of them (none for those
        kept)."""
        cache = self.cache
        found: dict[str, Profile] = {}
        applied: dict[str, dict[str, int]] = {}
        missed: dict[str, Collection[str]] = {}
        for user, wanted in sources.items():
            kept = cache.take(user, wanted)
            if kept is None:
                missed[user] = wanted
                continue
            found[user] = kept.profile
            known = kept.offsets
            have = {s: o for s in wanted if (o := known[s]) is not None}
            if have:
                applied[user] = have
        if not missed:
            return found, applied
        fresh, fresh_applied = self._load(list(missed), missed)
        for user, profile in fresh.items():
            offsets = fresh_applied.get(user, {})
            cache.read(user, profile, {s: offsets.get(s) for s in missed[user]})
        return found | fresh, applied | fresh_applied

    def _load(
        self, user_ids: Sequence[str], sources: Mapping[str, Collection[str]] | None
    ) -> tuple[dict[str, Profile], dict[str, dict[str, int]]]:
        found, applied, _ = self.read(user_ids, sources, self.client.pipeline(transaction=False))
        return found, applied

    def read(
        self, user_ids: Sequence[str], sources: Mapping[str, Collection[str]] | None, pipe: Any
    ) -> tuple[dict[str, Profile], dict[str, dict[str, int]], list[Any]]:
        """The profiles and applied offsets (of ``sources``) of these users, read after
        the commands ``pipe`` holds already, whose replies come back as they are."""
        ahead = len(pipe)
        wanted = {user: list(sources.get(user, ())) if sources else [] for user in user_ids}
        for user in user_ids:
            fields = [f"o:{source}" for source in wanted[user]]
            pipe.hmget(self.keys.user(user), "p", "v", "d", *fields)
        found: dict[str, Profile] = {}
        applied: dict[str, dict[str, int]] = {}
        replies = pipe.execute()
        for user, reply in zip(user_ids, replies[ahead:], strict=True):
            data, version, partition, *offsets = reply
            have = {s: int(o) for s, o in zip(wanted[user], offsets, strict=True) if o is not None}
            if have:
                applied[user] = have
            if data is None:
                continue  # a new user: written with version 0 and no tags before
            profile = Profile.from_dict(orjson.loads(data))
            profile.stored = StoredAs(
                (version or b"0").decode(),
                frozenset(profile.tags),
                int(partition or 0),
                profile.stage,
            )
            found[user] = profile
        return found, applied, replies[:ahead]

    def offsets(self, user_id: str) -> dict[str, int]:
        """See ProfileStore.offsets (one round trip)."""
        fields = self.client.hgetall(self.keys.user(user_id))
        return {
            _text(name)[2:]: int(value)
            for name, value in fields.items()
            if _text(name).startswith("o:")
        }

    def save(
        self,
        profiles: Iterable[Profile],
        *,
        partition: int = 0,
        offsets: Mapping[str, Mapping[str, int]] | None = None,
        links: Mapping[str, str] | None = None,
        absorbed: Iterable[Profile] = (),
    ) -> dict[str, str]:
        """See ProfileStore.save: profiles, their audiences and deadlines in one round
        trip (two on a cluster); links after them, in two more (one to read the ids not
        in ``absorbed``). Raises StoreConflictError if any profile or absorbed id changed
        since it was read, after the others are written."""
        batch = list(profiles)
        links = check_links(batch, links)
        results = self._save(batch, partition, offsets) if batch else {}
        refused: list[str] = []
        if links:
            read = list(absorbed)
            self.cache.drop(links)
            refused = with_functions(self, lambda: self.identities.link(links, read, partition))
            results |= {user: LINKED for user in links if user not in refused}
        if refused:
            raise StoreConflictError(refused)
        return results

    def _save(
        self,
        batch: list[Profile],
        partition: int,
        offsets: Mapping[str, Mapping[str, int]] | None,
    ) -> dict[str, str]:
        writes = self.writes
        replies = with_functions(self, lambda: writes.write(batch, partition, offsets))
        results: dict[str, str] = {}
        conflicts: list[str] = []
        cache = self.cache
        for profile, reply in zip(batch, replies, strict=True):
            user = profile.user_id
            if reply == -1:
                conflicts.append(user)
                continue
            results[user] = REDELIVERED if reply == 0 else SAVED
            if reply != 0:
                profile.stored = StoredAs(
                    str(reply), frozenset(profile.tags), partition, profile.stage
                )
                cache.wrote(profile, None if offsets is None else offsets.get(user))
            else:
                cache.drop((user,))
        if conflicts:
            refused = set(conflicts)
            cache.drop(refused)
            if self.on_cluster:  # one call on one server wrote nothing of theirs
                writes.repair([p for p in batch if p.user_id in refused])
            raise StoreConflictError(conflicts)
        return results

    def population(self, stages: Sequence[str]) -> tuple[dict[str, int], dict[str, int]]:
        """See OperationsStore.population: set sizes, not a scan."""
        names = sorted(_text(t) for t in self.client.smembers(self.keys.tag_names()))
        tags = names[:MAX_AUDIENCE_GAUGES]
        pipe = self.client.pipeline(transaction=False)
        for stage in stages:
            pipe.zcard(self.keys.stage(stage))
        for tag in tags:
            pipe.zcard(self.keys.audience(tag))
        sizes = [int(size) for size in pipe.execute()]
        by_stage = dict(zip(stages, sizes[: len(stages)], strict=True))
        return by_stage, dict(zip(tags, sizes[len(stages) :], strict=True))

    def due(self, until: int, *, partition: int = 0, limit: int = 1000) -> list[str]:
        """See ProfileStore.due, for one partition's deadlines; at most ``limit`` users."""
        found = self.client.zrangebyscore(
            self.keys.deadlines(partition), "-inf", until, start=0, num=limit
        )
        return [_text(user) for user in found]

    def drop_deadlines(self, user_ids: Sequence[str], *, partition: int = 0) -> None:
        """See ProfileStore.drop_deadlines."""
        if user_ids:
            self.client.zrem(self.keys.deadlines(partition), *user_ids)

    def tag_members(self, tag: str, *, after: str = "", limit: int | None = None) -> list[str]:
        """See OperationsStore.tag_members: one range by id (ZRANGE BYLEX)."""
        start = f"({after}" if after else "-"
        found = self.client.zrange(
            self.keys.audience(tag),
            start,
            "+",
            bylex=True,
            offset=0 if limit is not None else None,
            num=limit,
        )
        return [_text(user) for user in found]

    def audience_page(
        self, tag: str, *, after: str = "", count: int = 1000
    ) -> list[tuple[str, dict[str, Any] | None]]:
        """A page of a tag's audience (at most ``count`` members after the user id
        ``after``, by id) with each member's record of the tag (``since``, ``expires``...
        in epoch ms), read in two round trips: the range, then the members' profiles.
        The record is None for a member whose profile no longer holds the tag (it changed
        between the two reads); the next page starts after the page's last member all
        the same."""
        members = self.tag_members(tag, after=after, limit=count)
        if not members:
            return []
        pipe = self.client.pipeline(transaction=False)
        for user in members:
            pipe.hget(self.keys.user(user), "p")
        page: list[tuple[str, dict[str, Any] | None]] = []
        for user, data in zip(members, pipe.execute(), strict=True):
            record = None if data is None else orjson.loads(data).get("tags", {}).get(tag)
            page.append((user, record))
        return page

    def users_page(self, cursor: str, count: int) -> tuple[str, list[str]]:
        """See OperationsStore.users_page: one SCAN step.

        On a cluster the nodes are scanned one after the other: the cursor is
        ``NODE:CURSOR``, NODE an index into the primaries sorted by name."""
        prefix = self.keys.user("")[:-2]
        match = f"{prefix}{{*}}"
        if not isinstance(self.client, RedisCluster):
            at, keys = self.client.scan(int(cursor), match=match, count=count)
            return str(at), [_text(key)[len(prefix) + 1 : -1] for key in keys]
        cluster: Any = self.client  # redis-py's cluster methods are not typed
        nodes = sorted(cluster.get_primaries(), key=lambda node: str(node.name))
        index, _, at_text = cursor.partition(":")
        node = int(index) if at_text else 0
        cursors, keys = cluster.scan(
            int(at_text or 0), match=match, count=count, target_nodes=nodes[node]
        )
        at = next(iter(cursors.values()))
        if int(at) != 0:
            following = f"{node}:{at}"
        else:
            following = f"{node + 1}:0" if node + 1 < len(nodes) else "0"
        return following, [_text(key)[len(prefix) + 1 : -1] for key in keys]

    def users(self) -> Iterator[str]:
        """See ProfileStore.users: a SCAN, for tools, not the hot path."""
        prefix = self.keys.user("")[:-2]
        for key in self.client.scan_iter(match=f"{prefix}{{*}}", count=1000):
            yield key.decode()[len(prefix) + 1 : -1]


def _text(value: object) -> str:
    """A reply as text (the client returns bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(
    url: str,
    timeout: float = 10.0,
    *,
    cluster: bool = False,
    username: str | None = None,
    password: str | None = None,
    ca_file: str | None = None,
) -> Client:
    """A Redis client for the store: hiredis replies, health checks, and a socket timeout
    so that a Redis that hangs (rather than refuses) is noticed and retried.

    ``cluster``: the URL names one node of a Redis Cluster, which tells the rest.
    ``username``/``password`` (AUTH; else those in the URL); ``ca_file`` checks a
    ``rediss://`` server's certificate against that CA bundle.
    """
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": 5}
    if username is not None:
        options["username"] = username
    if password is not None:
        options["password"] = password
    if ca_file is not None:
        options["ssl_ca_certs"] = ca_file
    if cluster:
        return RedisCluster.from_url(url, **options)
    client: redis.Redis = redis.Redis.from_url(url, health_check_interval=30, **options)
    return client


def client_for(settings: Settings, timeout: float = 10.0) -> Client:
    """The Redis client the settings describe (URL, cluster, AUTH, TLS CA)."""
    return connect(
        settings.redis_url,
        timeout,
        cluster=settings.redis_cluster,
        username=settings.redis_username,
        password=revealed(settings.redis_password),
        ca_file=None if settings.redis_ca_file is None else str(settings.redis_ca_file),
    )


def redacted(url: str) -> str:
    """A URL fit for logs and messages: the password of its user part and the value of
    every query parameter that may hold a secret (``?password=``, ``token``, ``key``...)
    replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    location, mark, query = rest.partition("?")
    credentials, at, host = location.rpartition("@")
    if at and ":" in credentials:
        location = f"{credentials.split(':', 1)[0]}:***@{host}"
    if mark:
        query = "&".join(_redacted_parameter(part) for part in query.split("&"))
    return f"{scheme}://{location}{mark}{query}"


_SECRET_PARAMETER: Final = re.compile(r"pass|pwd|secret|token|key|auth|cred", re.IGNORECASE)


def _redacted_parameter(part: str) -> str:
    name, equals, value = part.partition("=")
    if equals and value and _SECRET_PARAMETER.search(unquote_plus(name)):
        return f"{name}=***"
    return part
