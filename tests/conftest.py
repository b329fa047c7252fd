"""Fixtures that start real servers on loopback. A server that cannot start fails the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from streams.local_stack import RedisServer
from tests.support.stack import LocalRedisCluster
from tests.support.stores import MEMORY_KINDS, StoreKind, memory_kind, redis_kind


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (each test gets it flushed: see ``redis_client``)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on an empty database."""
    client = redis.Redis.from_url(redis_server.url, socket_timeout=None)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A three-node Redis Cluster for the session (flushed per test: ``cluster_client``)."""
    with LocalRedisCluster(3) as cluster:
        yield cluster


@pytest.fixture
def cluster_client(redis_cluster: LocalRedisCluster) -> Iterator[RedisCluster]:
    """A cluster client on an empty cluster."""
    client = RedisCluster.from_url(redis_cluster.url, socket_timeout=None)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.close()


def _store_kind(request: pytest.FixtureRequest) -> StoreKind:
    name: str = request.param
    if name in MEMORY_KINDS:
        return memory_kind(name)
    client = request.getfixturevalue("cluster_client" if name == "cluster" else "redis_client")
    return redis_kind(name, client)


_ON_SERVERS = pytest.mark.integration
_COPYING_KINDS = [
    pytest.param("copies"),
    pytest.param("redis", marks=_ON_SERVERS),
    pytest.param("kept", marks=_ON_SERVERS),
    pytest.param("cluster", marks=_ON_SERVERS),
]


@pytest.fixture(params=[pytest.param("memory"), *_COPYING_KINDS])
def store_kind(request: pytest.FixtureRequest) -> StoreKind:
    """Every kind of store the contract (taggers.store) covers, empty: in memory by
    reference and with copies, Redis (also keeping the profiles it wrote) and Redis
    Cluster (those marked integration)."""
    return _store_kind(request)


@pytest.fixture(params=_COPYING_KINDS)
def copying_store_kind(request: pytest.FixtureRequest) -> StoreKind:
    """Every kind of store that hands out copies (what the worker's pipeline needs), empty."""
    return _store_kind(request)


_INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration needs real servers: mark it so (``-m "not
    integration"`` is the suite without them)."""
    for item in items:
        if item.path.is_relative_to(_INTEGRATION):
            item.add_marker(pytest.mark.integration)
