"""The read and write paths, written once for both worlds.

Every operation is an ``async def`` taking a *mode*. In async mode shared-tier calls
return futures resolved by the event-loop bridge; in sync mode they block (GIL released)
and return an already-completed awaitable, so ``drive()`` runs the same coroutine to the
end without an event loop. Who leads a load, what is fresh and what each outcome counts
as are the engine's decisions; this module runs loaders and moves bytes between tiers.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any, Callable

from ._flight import Flight
from ._native import Key, SerializationError
from .serializers import BadSignature

if TYPE_CHECKING:
    from .manager import CacheManager

log = logging.getLogger("herdcache")

FRESH, STALE = 1, 2  # engine.get states
HIT, MISS, DONE, REFUSED, FAULT = 0, 1, 2, 3, 4  # shared-tier result statuses
Loader = Callable[[], Any]


class _Done:
    """An awaitable that is already complete: what blocking calls hand to the shared code."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self):
        return self.value
        yield  # noqa: unreachable - makes this a generator


def drive(coro: Any) -> Any:
    """Runs a coroutine that never suspends (sync mode) to its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a blocking cache call tried to suspend")


class AsyncMode:
    blocking = False

    @staticmethod
    def l2(m: CacheManager, method: str, *args: Any) -> Any:
        return getattr(m._engine, method)(*args, m._bridge())

    @staticmethod
    def wait(flight: Flight) -> Any:
        return flight.wait()

    @staticmethod
    def spawn(m: CacheManager, coro: Any, key: Key) -> None:
        task = m._track(asyncio.get_running_loop().create_task(coro))
        task.add_done_callback(lambda t: _log_refresh_failure(key, t))

    @staticmethod
    def settle(m: CacheManager, value: Any) -> Any:
        return value


class SyncMode:
    blocking = True

    @staticmethod
    def l2(m: CacheManager, method: str, *args: Any) -> Any:
        return _Done(getattr(m._engine, method)(*args, None))

    @staticmethod
    def wait(flight: Flight) -> Any:
        return _Done(flight.wait_sync())

    @staticmethod
    def spawn(m: CacheManager, coro: Any, key: Key) -> None:
        future = m._executor().submit(drive, coro)
        future.add_done_callback(lambda f: _log_refresh_failure(key, f))

    @staticmethod
    def settle(m: CacheManager, value: Any) -> Any:
        return _Done(m._run_coroutine(value))


ASYNC, SYNC = AsyncMode(), SyncMode()


# --- reads ---------------------------------------------------------------------------


async def get(m: CacheManager, mode: Any, key: Key) -> Any:
    state, value = m._engine.get(key)
    if state:
        if state == STALE:
            m._engine.serve_stale(key)
        return value
    if m._engine.has_redis:
        found = await _read_shared(m, mode, key, [])
        if isinstance(found, tuple):
            state, value = found
            if state == STALE:
                m._engine.serve_stale(key)
            else:
                m._engine.count(key.resource, "hits")
            return value
    m._engine.count_miss(key.resource)
    return None


async def get_or_load(m: CacheManager, mode: Any, key: Key, loader: Loader, tags: list[str], ttl: Any, *, counted: bool = True) -> Any:
    state, value = m._engine.get(key, counted)
    if state == FRESH:
        return value
    if state == STALE:
        m._engine.serve_stale(key)
        refresh(m, mode, key, loader, tags, ttl)
        return value
    return await load(m, mode, key, loader, tags, ttl)


async def load(m: CacheManager, mode: Any, key: Key, loader: Loader, tags: list[str], ttl: Any, *, refresh: bool = False) -> Any:
    """Joins the key's flight, leading it if there is none, and returns its value."""
    started = m._engine.now()
    leader, flight, flight_id = m._engine.begin_load(key, Flight, refresh)
    if not leader:
        value = await mode.wait(flight)
    elif mode.blocking:
        value = await _lead(m, mode, key, loader, tags, ttl, flight, flight_id, refresh)
    else:
        # The load runs as its own task: a leader that is cancelled does not cancel the
        # load its followers are waiting for.
        task = m._track(asyncio.get_running_loop().create_task(
            _lead(m, mode, key, loader, tags, ttl, flight, flight_id, refresh)))
        value = await asyncio.shield(task)
    m._engine.record_miss(key.resource, m._engine.now() - started)
    return value


def refresh(m: CacheManager, mode: Any, key: Key, loader: Loader, tags: list[str], ttl: Any) -> None:
    """Starts one background refresh of `key` unless a load of it is already running."""
    if m._engine.in_flight(key):
        return
    leader, flight, flight_id = m._engine.begin_load(key, Flight, True)
    if leader:
        mode.spawn(m, _lead(m, mode, key, loader, tags, ttl, flight, flight_id, True), key)


async def _lead(m: CacheManager, mode: Any, key: Key, loader: Loader, tags, ttl, flight: Flight, flight_id: int, refreshing: bool) -> Any:
    engine = m._engine
    started = engine.now()
    stale_from_shared = False
    try:
        versions = None
        if engine.has_redis:
            found = await _read_shared(m, mode, key, tags)
            if isinstance(found, tuple):
                state, value = found
                if state == FRESH or not refreshing:
                    engine.count(key.resource, "hits")
                    if state == STALE:
                        engine.count(key.resource, "stale_served")
                        stale_from_shared = True
                    engine.finish_load(key, flight_id, True, -1.0)
                    flight.set_result(value)
                    if stale_from_shared:
                        refresh(m, mode, key, loader, tags, ttl)
                    return value
            elif isinstance(found, list):
                versions = found
        if not refreshing:
            engine.count_miss(key.resource)
        engine.count(key.resource, "loads")
        value = loader()
        if inspect.isawaitable(value):
            value = await mode.settle(m, value)
        elapsed = engine.now() - started
        await _store(m, mode, key, value, tags, ttl, elapsed, versions, replaces=refreshing)
    except BaseException as exc:
        engine.finish_load(key, flight_id, False, engine.now() - started)
        flight.set_exception(exc)
        raise
    engine.finish_load(key, flight_id, True, engine.now() - started)
    flight.set_result(value)
    return value


async def _read_shared(m: CacheManager, mode: Any, key: Key, tags: list[str]) -> Any:
    """(state, value) on a usable shared hit (also filling memory); the dependency
    versions (a list) on a miss; None when Redis could not answer."""
    status, payload, fresh_until, stale_until, load_s, stored_tags, versions, _, error = await mode.l2(
        m, "l2_read", key, tags)
    if status == FAULT:
        m._shared_fault(key, error)
        return None
    if status == HIT:
        try:
            value = m._codec.decode(payload)
        except BadSignature:
            log.warning("ignoring %s in redis: its signature does not verify", key)
            m._engine.count(key.resource, "errors")
        except SerializationError as exc:
            log.warning("ignoring %s in redis: %s", key, exc)
            m._engine.count(key.resource, "errors")
        else:
            m._engine.count(key.resource, "redis_hits")
            m._engine.fill(key, value, len(payload), stored_tags, fresh_until, stale_until, load_s)
            return (FRESH if m._engine.wall_ns() < fresh_until else STALE), value
        return []  # unusable: treat as a miss, write without a version check
    m._engine.count(key.resource, "redis_misses")
    return versions


# --- writes and invalidations ----------------------------------------------------------


async def _store(m: CacheManager, mode: Any, key: Key, value: Any, tags: list[str], ttl: Any, load_s: float,
                 versions: Any, *, replaces: bool) -> None:
    payload = m._codec.encode(value)  # raises SerializationError: nothing stored
    fresh_until, stale_until = m._engine.store(key, value, len(payload), tags, ttl, max(load_s, 0.0))
    if m._engine.has_redis:
        result = await mode.l2(m, "l2_write", key, payload, fresh_until, stale_until, load_s, tags, versions)
        if result[0] == FAULT:
            m._shared_fault(key, result[8])
        elif result[0] == REFUSED:
            # An invalidation landed while this value loaded: it is already out of date.
            m._engine.invalidate_key(key)
            log.info("not caching %s: it was invalidated while it loaded", key)
        elif replaces:
            # Other instances may hold the value this one replaced in their memory tier.
            await mode.l2(m, "l2_announce", "key", [str(key)])


async def store(m: CacheManager, mode: Any, key: Key, value: Any, tags: list[str], ttl: Any) -> None:
    await _store(m, mode, key, value, tags, ttl, 0.0, None, replaces=True)


async def invalidate(m: CacheManager, mode: Any, kind: str, targets: list[str], removed: int) -> int:
    """Broadcasts an invalidation already applied to this instance's memory tier."""
    if m._engine.has_redis:
        result = await mode.l2(m, "l2_invalidate", kind, targets)
        if result[0] == FAULT:
            m._shared_fault(None, result[8])
        elif kind in ("key", "pattern", "clear"):
            return max(removed, result[7])
    return removed


def _log_refresh_failure(key: Key, task: Any) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.warning("refresh of %s failed, the stale value keeps serving until it expires: %r", key, exc)
