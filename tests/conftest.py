"""Fixtures that start real servers on loopback. A server that cannot start fails the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from streams.local_stack import RedisServer
from tests.support.stack import LocalRedisCluster


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


_INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration needs real servers: mark it so (``-m "not
    integration"`` is the suite without them)."""
    for item in items:
        if item.path.is_relative_to(_INTEGRATION):
            item.add_marker(pytest.mark.integration)
