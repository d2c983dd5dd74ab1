"""The tiers a CacheManager runs on, for the contract suite: one spec, every tier.

    memory  redis_url=None: the embedded memory tier alone.
    redis   the memory tier in front of a real redis-server (the session's, FLUSHALL'd
            before each test by the redis_server fixture, so a namespace cannot meet a
            previous test's entries).
    tls     the same server over TLS: rediss://localhost, verified against the test CA.
    sentinel  a master found through three sentinels (redis+sentinel://), FLUSHALL'd
            before each test.

conftest.py's `tier` fixture hands a test one Tier per parameter; a test written against
it runs on each. Managers are opened with their invalidation channel up: with Redis the
memory tier is not served before it (the subscriber-loss rule), and a test must not
depend on how fast the subscriber connects.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from herdcache import CacheManager

from background import subscribed

SUBSCRIBE_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.005


class Tier:
    def __init__(self, name: str, redis_url: str | None = None) -> None:
        self.name = name
        self.redis_url = redis_url

    @property
    def redis(self) -> bool:
        return self.redis_url is not None

    def __repr__(self) -> str:
        return f"Tier({self.name})"

    def manager(self, **kwargs: Any) -> CacheManager:
        """A new manager on this tier, not started (for tests of the lifecycle itself)."""
        return CacheManager(redis_url=self.redis_url, **kwargs)

    @contextlib.asynccontextmanager
    async def open(self, **kwargs: Any):
        """A started manager whose memory tier is served (invalidation channel up); closed
        on the way out."""
        async with self.manager(**kwargs) as m:
            if self.redis:
                await subscribed(m)
            yield m

    @contextlib.contextmanager
    def open_sync(self, **kwargs: Any):
        """The same for blocking tests: started and closed through cache.sync."""
        m = self.manager(**kwargs)
        m.sync.start()
        try:
            if self.redis:
                _subscribed_blocking(m)
            yield m
        finally:
            if not m.closed:
                m.sync.close()


def _subscribed_blocking(m: CacheManager) -> None:
    """background.subscribed for a thread without an event loop: the engine's I/O thread
    connects the subscriber; nothing reports it but stats()."""
    deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_S
    while not m.stats()["redis"]["subscriber_connected"]:
        if time.monotonic() > deadline:
            raise AssertionError(f"invalidation channel not up after {SUBSCRIBE_TIMEOUT_S}s")
        time.sleep(POLL_INTERVAL_S)
