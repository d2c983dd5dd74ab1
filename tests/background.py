"""Waiting for a manager's background work (refreshes, Redis writes of loaded values)."""

from __future__ import annotations

import asyncio
import inspect


async def settled(*managers) -> None:
    """Returns once every background task of `managers` is done (each is bounded by the
    command timeout, so this is too)."""
    for m in managers:
        while True:
            pending = [t for t in (*m._tasks, *m._writes) if isinstance(t, asyncio.Future) and not t.done()]
            if not pending:
                break
            await asyncio.gather(*pending, return_exceptions=True)


async def eventually(predicate, timeout: float = 5.0) -> None:
    """Waits for a state another thread or process reaches (a connection, a broadcast
    applied: herdcache has no public hook to wait on for those) by re-checking every few
    milliseconds, up to `timeout` seconds. `predicate` may be sync or async."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        done = predicate()
        if inspect.isawaitable(done):
            done = await done
        if done:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def subscribed(*managers) -> None:
    """Until every manager's invalidation channel is up (before it the memory tier is not
    served: the subscriber-loss rule)."""
    await eventually(lambda: all(m.stats()["redis"]["subscriber_connected"] for m in managers))
