"""Scaffolding for the store contract suite: each kind of store it runs over (in memory by
reference, in memory with copies, Redis, Redis Cluster), behind one handle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.cluster import RedisCluster

from streams.redis_store import Client, RedisStore
from taggers.store import MemoryStore, OperationsStore

MEMORY_KINDS = ("memory", "copies")
REDIS_KINDS = ("redis", "kept", "cluster")


@dataclass(eq=False)
class StoreKind:
    """One kind of store over its data, empty at the start of a test.

    ``open`` gives a store on that data: on Redis a new RedisStore each time (a store
    caches nothing, so a second one is a second writer, or a fresh reader); in memory
    the one store. ``emptied`` clears the data first (a Hypothesis example starts anew).
    """

    name: str
    _open: Callable[[], OperationsStore]
    _clear: Callable[[], None]

    def open(self) -> OperationsStore:
        """A store on this kind's data."""
        return self._open()

    def emptied(self) -> OperationsStore:
        """A store on this kind's data, cleared."""
        self._clear()
        return self._open()


def memory_kind(name: str) -> StoreKind:
    """A MemoryStore: ``memory`` by reference, ``copies`` handing out copies."""
    copies = name == "copies"
    stores = [MemoryStore(copies=copies)]

    def clear() -> None:
        stores[0] = MemoryStore(copies=copies)

    return StoreKind(name, lambda: stores[0], clear)


def redis_kind(name: str, client: Client) -> StoreKind:
    """RedisStore on a client of one server (``redis``) or of a cluster (``cluster``);
    ``kept``: on one server, keeping the profiles it wrote (``streams.profile_cache``)."""

    def clear() -> None:
        if isinstance(client, RedisCluster):
            client.flushall(target_nodes=RedisCluster.PRIMARIES)
        else:
            client.flushall()

    size = 100 if name == "kept" else 0
    return StoreKind(name, lambda: RedisStore(client, cache_size=size), clear)


__all__ = ["MEMORY_KINDS", "REDIS_KINDS", "StoreKind", "memory_kind", "redis_kind"]
