"""The read and write paths, written once for both worlds.

Every operation is an ``async def`` taking a *mode*. In async mode shared-tier calls
return futures resolved by the event-loop bridge; in sync mode they block (GIL released)
and return an already-completed awaitable, so ``drive()`` runs the same coroutine to the
end without an event loop. Who leads a load, what is fresh and what each outcome counts
as are the engine's decisions; this module runs loaders and moves bytes between tiers.

It stays one file on purpose: every operation (reads, loads, writes, batches, counters,
invalidations) is written once against the two modes defined at the top, and each is a
short sequence of the ReadProtocol's steps; split by operation, every part would import
the modes and the same handful of helpers (_encode, _written, _invalidated) back.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from asyncio import get_running_loop
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from . import _otel
from ._bulkhead import LoadTimeout
from ._flight import Flight, StillRunning
from ._validate import MAX_COUNTER

# The engine's codes (cpp/include/herdcache/codes.hpp): shared-tier result statuses and
# lease states (TierResult), and UNFENCED, a store that no load precedes (WriteFence::kUnfenced).
from ._native import KEY_VERSION_KEEP_MS, UNFENCED, CacheError, Key, ReadProtocol, SerializationError, SlowRead, TierReply
from ._native import track_building
from ._native import (STATUS_CONFLICT as CONFLICT, STATUS_DONE as DONE, STATUS_FAULT as FAULT, STATUS_HIT as HIT,
                      STATUS_MISS as MISS, STATUS_REFUSED as REFUSED)

if TYPE_CHECKING:
    from .manager import CacheManager

log = logging.getLogger("herdcache")

# What a read or a load does next: ReadProtocol's steps (cpp/include/herdcache/read_protocol.hpp).
P = ReadProtocol
SERVE, SERVE_AND_REFRESH, FETCH = P.SERVE, P.SERVE_AND_REFRESH, P.FETCH
LOAD_LEASED, LOAD_UNLEASED, WATCH, WAIT_FILL, READ = P.LOAD_LEASED, P.LOAD_UNLEASED, P.WATCH, P.WAIT_FILL, P.READ
WRITE, RELEASE, RESTART = P.WRITE, P.RELEASE, P.RESTART
GET = P.GET
WARM_REPLACES_ANY = 2**63 - 1  # wall ns no stored copy is fresh beyond
ANSWER_WAIT_S = 30.0  # backstop for a background wait on one tier answer
FOLLOWER_WAITS = 2  # a follower waits for its flight this many lock_timeouts at most
NO_ANSWER = TierReply.fault("no answer from redis")
Loader = Callable[[], Any]
T = TypeVar("T")
# The dependencies of the load running in this context (a loader's cached reads add to
# it), or None: set around each loader (_run_loader). While set, the native lookup of a
# cached function leaves its fresh hits to get_or_load, which records them. Each
# dependency tag maps to its version as the read that added it saw it (None: not asked
# yet, or no Redis to ask): the load's write is refused when one of them moved since
# (_depend), so a value built from what was invalidated meanwhile is never stored.
Building = dict[str, "str | None"]
BUILDING: contextvars.ContextVar[Building | None] = contextvars.ContextVar("herdcache_building", default=None)
track_building(BUILDING)


class _Done:
    """An awaitable that is already complete: what blocking calls hand to the shared code."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return self.value
        yield  # noqa: unreachable - makes this a generator


class _Answer:
    """A blocking caller's pending tier answer (a FillWaiter), awaited where it is needed.
    Every command is answered within its timeout; the bound here is a backstop."""

    __slots__ = ("waiter",)

    def __init__(self, waiter: Any) -> None:
        self.waiter = waiter

    def __await__(self) -> Generator[Any, Any, Any]:
        result = self.waiter.wait(ANSWER_WAIT_S)
        return result if result is not None else NO_ANSWER
        yield  # noqa: unreachable - makes this a generator


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine that never suspends (sync mode) to its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    coro.close()
    raise RuntimeError("a blocking cache call tried to suspend")


class AsyncMode:
    blocking = False

    @staticmethod
    def l2(m: CacheManager, method: str, *args: Any) -> Any:
        future = getattr(m._engine, method)(*args, m._bridge())
        return future if not _otel.tracing() else _otel.traced_future(method, future)

    send = l2  # sent now, its answer awaited later (a bridge future either way)

    @staticmethod
    def write_behind(m: CacheManager, key: Key, write: asyncio.Future[Any]) -> None:
        """Handles a write's answer when it comes, from a done callback: no task per write."""
        m._writes.add(write)
        write.add_done_callback(functools.partial(_write_answered, m, key))

    @staticmethod
    def fetch(m: CacheManager, key: Key) -> Any:
        """get()'s Redis read: resolves to the value, None, or a SlowRead to finish here."""
        return m._engine.l2_fetch(key, m._bridges.get(get_running_loop()) or m._bridge())

    @staticmethod
    async def fetch_many(m: CacheManager, keys: list[Key]) -> list[Any]:
        """get_many()'s Redis reads: all sent in this loop iteration (one batch, one round
        trip); one future resolves when all are answered, and they are decoded here."""
        fetched = await m._engine.l2_fetch_many(keys, m._bridges.get(get_running_loop()) or m._bridge())
        answers: list[Any] = fetched.values()  # decoded here, in this task's step
        return answers

    @staticmethod
    def wait(m: CacheManager, key: Key, flight: Flight) -> Any:
        """An awaiting follower waits FOLLOWER_WAITS x lock_timeout at most, as a blocking
        one does (SyncMode.wait says why); its own cancellation ends the wait sooner. Neither
        ends the flight."""
        return flight.wait(FOLLOWER_WAITS * m.lock_timeout, functools.partial(_follower_timeout, m, key))

    @staticmethod
    def spawn(m: CacheManager, coro: Any, key: Key, what: str = "refresh") -> None:
        task = m._track(asyncio.get_running_loop().create_task(coro))  # close() may cancel it
        task.add_done_callback(lambda t: _log_background_failure(key, what, t))

    @staticmethod
    def settle(m: CacheManager, value: Any) -> Any:
        return value

    @staticmethod
    def fill_waiter(m: CacheManager, key: Key, timeout: float) -> Any:
        return m._engine.l2_wait_fill(key, timeout, m._bridge())

    @staticmethod
    async def wait_filled(m: CacheManager, waiter: Any, timeout: float) -> Any:
        try:
            result = await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            return None
        return result if result.status in (DONE, HIT) else None

    @staticmethod
    def acquire(m: CacheManager) -> Any:
        assert m._bulkhead is not None  # called only with max_concurrent_loads set
        return m._bulkhead.acquire()


class SyncMode:
    blocking = True

    @staticmethod
    def l2(m: CacheManager, method: str, *args: Any) -> Any:
        if _otel.tracing():
            return _Done(_otel.traced_call(method, getattr(m._engine, method), *args, None))
        return _Done(getattr(m._engine, method)(*args, None))

    @staticmethod
    def send(m: CacheManager, method: str, *args: Any) -> Any:
        """Sends now, without blocking, in order with this thread's later commands; the
        returned awaitable blocks for the answer (in the background thread awaiting it)."""
        return _Answer(getattr(m._engine, method)(*args, None, True))

    @staticmethod
    def write_behind(m: CacheManager, key: Key, write: Any) -> None:
        SyncMode.spawn(m, _answered(m, SYNC, key, write), key, "write")

    @staticmethod
    def fetch(m: CacheManager, key: Key) -> Any:
        result = m._engine.l2_fetch(key, None)
        if result is None:  # a miss, or Redis trouble: let the tier's log lines out (async: the bridge does)
            m._flush_logs()
        return _Done(result)

    @staticmethod
    def fetch_many(m: CacheManager, keys: list[Key]) -> Any:
        results = m._engine.l2_fetch_many(keys)
        m._flush_logs()
        return _Done(results)

    @staticmethod
    def wait(m: CacheManager, key: Key, flight: Flight) -> Any:
        """A blocking follower waits FOLLOWER_WAITS x lock_timeout at most: its leader may
        wait one lock_timeout for another process' lease, then load, and a load running
        longer than lock_timeout has outlived its lease anyway. Nothing can cancel a
        blocked thread, so past that it gets LoadTimeout rather than wait on a loader
        that may never return."""
        try:
            return _Done(flight.wait_sync(FOLLOWER_WAITS * m.lock_timeout))
        except StillRunning:
            raise _follower_timeout(m, key) from None

    @staticmethod
    def spawn(m: CacheManager, coro: Any, key: Key, what: str = "refresh") -> None:
        future = m._executor().submit(drive, coro)
        if what == "write":
            m._track_write(future)
        future.add_done_callback(lambda f: _log_background_failure(key, what, f))

    @staticmethod
    def settle(m: CacheManager, value: Any) -> Any:
        return _Done(m._run_coroutine(value))

    @staticmethod
    def fill_waiter(m: CacheManager, key: Key, timeout: float) -> Any:
        return m._engine.l2_wait_fill(key, timeout, None)

    @staticmethod
    def wait_filled(m: CacheManager, waiter: Any, timeout: float) -> Any:
        result = waiter.wait(timeout)
        return _Done(result if result is not None and result.status in (DONE, HIT) else None)

    @staticmethod
    def acquire(m: CacheManager) -> Any:
        assert m._bulkhead is not None  # called only with max_concurrent_loads set
        m._bulkhead.acquire_sync()
        return _Done(None)


ASYNC, SYNC = AsyncMode(), SyncMode()


# --- reads ---------------------------------------------------------------------------


async def get(m: CacheManager, mode: Any, key: Key) -> Any:
    outer = BUILDING.get()
    asked = None if outer is None else _depend_before(m, mode, outer, key, ())
    step, value, _ = m._engine.get(key, True, GET)
    if step == FETCH:
        if outer is not None:
            value = await _fetch_inside_loader(m, mode, key)
        else:
            value = await mode.fetch(m, key)  # decoded (or a miss or a fault), filled in memory and counted
            if type(value) is SlowRead:
                value = finish_read(m, key, value)
    if outer is not None:  # read while another key loads: that key's entry is built from this one
        await _depend_after(m, mode, outer, key, asked)
    return value


async def _fetch_inside_loader(m: CacheManager, mode: Any, key: Key) -> Any:
    """get()'s Redis read inside a loader: as l2_fetch's, and the entry's tags are passed
    on to the entry the loader builds (one kept out of memory, Policy(memory=False), has
    none that dependencies_of() could find)."""
    since = m._engine.write_sequence()
    result = await mode.l2(m, "l2_read", key, [], "", 0.0, 0)
    if result.status == FAULT:
        m._shared_fault(key, result.error)
    elif result.status == HIT:
        _pass_on(result.tags)
    return finish_read(m, key, SlowRead(result, since))


async def get_many(m: CacheManager, mode: Any, keys: list[Key]) -> list[Any]:
    """Each key's value or None, in order: from memory where it is there, the others read
    from Redis in one round trip (each read as get() does it). Inside a loader each key
    is read as get() reads it, one after the other, so that each becomes a dependency of
    the entry being built, with its tags and versions."""
    if BUILDING.get() is not None:
        return [await get(m, mode, key) for key in keys]
    values: list[Any]
    values, missed = m._engine.get_many(keys, GET)  # get()'s memory lookup of each key
    if missed:
        results = await mode.fetch_many(m, [keys[i] for i in missed])
        for i, result in zip(missed, results):
            values[i] = finish_read(m, keys[i], result) if type(result) is SlowRead else result
    return values


def finish_read(m: CacheManager, key: Key, slow: SlowRead) -> Any:
    """get()'s answer to a Redis read the engine left to Python: a payload the engine's
    fast decode did not take (a custom serializer's, or an unusable one, logged and
    counted here). Also called by the native get (_native.getter)."""
    r = slow.result
    if r.status == HIT:
        payload = r.payload
        value = _decode(m, key, payload)
        if value is not _UNUSABLE:
            m._engine.fill(key, value, len(payload), r.tags, r.fresh_until, r.stale_until, r.load_seconds, True,
                           slow.since)
            return value
    m._engine.count_miss(key.resource)
    return None


async def get_or_load(m: CacheManager, mode: Any, key: Key, loader: Loader, tags: list[str], ttl: Any, *, counted: bool = True) -> Any:
    outer = BUILDING.get()
    asked = None if outer is None else _depend_before(m, mode, outer, key, tags)
    step, value, fresh_until = m._engine.get(key, counted)
    if step == SERVE_AND_REFRESH:
        refresh(m, mode, key, loader, tags, ttl, fresh_until)
    elif step != SERVE:
        value = await load(m, mode, key, loader, tags, ttl)  # LEAD
    if outer is not None:  # read while another key loads: that key's entry is built from this one
        await _depend_after(m, mode, outer, key, asked)
    return value


# --- dependencies: what a loader reads, with the versions its write must still find ----
#
# A read inside a loader makes the outer entry depend on the inner key's dependency tags
# (dependencies_of: the key's own, and every tag its entry carries). Their versions are
# asked for before the read (the key's own tags, the tags in memory and the ones the
# caller passes: sent ahead of the read, in order on the same connection) and, for tags
# only the read brought (an entry from Redis, an inner load's), right after it; a version
# this instance knows (version_cache.hpp) is the one it judged its memory tier by. _lead
# adds them to the outer write's guard, so the write is refused when an invalidation of
# any of them landed after the read. Nothing of this runs on a read outside a loader.


def _depend_before(m: CacheManager, mode: Any, outer: Building, key: Key, tags: list[str] | tuple[()]) -> Any:
    """Adds what is known of `key`'s dependency tags to `outer` and asks for their
    versions; returns the pending answer, or None."""
    new = [tag for tag in m._engine.dependencies_of(key) if tag not in outer]
    new += [tag for tag in tags if tag not in outer and tag not in new]
    if not new:
        return None
    for tag in new:
        outer[tag] = None
    return (new, mode.send(m, "l2_versions", new)) if m._has_redis else None


async def _depend_after(m: CacheManager, mode: Any, outer: Building, key: Key, asked: Any) -> None:
    """Takes in the versions asked for before the read, then adds the tags the read
    brought (and any passed on without a version) with their versions as of now."""
    if asked is not None:
        _take_versions(m, outer, asked[0], await asked[1])
    for tag in m._engine.dependencies_of(key):
        outer.setdefault(tag, None)
    if m._has_redis:
        late = [tag for tag, version in outer.items() if version is None]
        if late:
            _take_versions(m, outer, late, await mode.l2(m, "l2_versions", late))


def _take_versions(m: CacheManager, outer: Building, tags: list[str], reply: Any) -> None:
    if reply.status == FAULT:  # left None: the write is then checked as it was before this
        m._shared_fault(None, reply.error)
        return
    for tag, version in zip(tags, reply.versions):
        if outer.get(tag) is None:  # the first version seen stands: a later one could hide a bump
            outer[tag] = version


def _pass_on(tags: list[str], versions: Building | None = None) -> None:
    """A value read from Redis or loaded while another key loads: the outer entry depends
    on its tags too. dependencies_of() finds them on the entry in memory; this is for one
    that is not there (Policy(memory=False), or not yet filled). `versions`: the inner
    load's own dependencies, with the versions its reads saw."""
    outer = BUILDING.get()
    if outer is None:
        return
    for tag in tags:
        version = versions.get(tag) if versions is not None else None
        if outer.get(tag) is None:
            outer[tag] = version


def _guarded(guard: Any, added: list[str], deps: Building) -> Any:
    """The write guard of a load whose loader read other entries: the versions its read
    saw, then those of the dependency tags it added (`added`, in order). Unchanged when a
    version is unknown (Redis could not be asked): the write records the current ones."""
    if guard is None or not added:
        return guard
    versions = [deps.get(tag) for tag in added]
    if any(version is None for version in versions):
        return guard
    return guard.with_versions(versions)


def with_dependencies(m: CacheManager, tags: list[str], depends_on: list[Key]) -> list[str]:
    """`tags` plus what an entry built from each of `depends_on` depends on (depends_on=)."""
    deps = {tag for key in depends_on for tag in m._engine.dependencies_of(key)}
    return tags + sorted(deps.difference(tags))


async def load(m: CacheManager, mode: Any, key: Key, loader: Loader, tags: list[str], ttl: Any, *, refresh: bool = False) -> Any:
    """Joins the key's flight, leading it if there is none, and returns its value.
    With refresh=True (warm) the value is reloaded even if one is cached. A follower only
    waits: in a herd of hundreds every call it makes shows in the last one's latency; the
    leader's miss latency stands for them all."""
    leader, flight, flight_id = m._engine.begin_load(key, Flight, refresh)
    if not leader:
        value = await mode.wait(m, key, flight)
        if flight.built_from:  # inside a loader: what this key's value was built from goes on
            _pass_on(list(flight.built_from), flight.built_from)
        return value
    started = m._engine.now()
    # warm(): replace whatever is cached, however fresh (a stale-while-revalidate refresh
    # passes how fresh its own copy was instead: see refresh()).
    replace_before = WARM_REPLACES_ANY if refresh else None
    # The leader runs the load itself (its first round trip leaves at once, before the
    # followers that arrived with it run). If it is cancelled while followers wait, the
    # load starts over for them in the background (_lead).
    if not _otel.tracing():
        value = await _lead(m, mode, key, loader, tags, ttl, flight, flight_id, replace_before)
    else:
        with _otel.load_span(m, key):  # the span of the load and of the round trips it makes
            value = await _lead(m, mode, key, loader, tags, ttl, flight, flight_id, replace_before)
    m._engine.record_miss(key.resource, m._engine.now() - started)
    return value


def refresh(m: CacheManager, mode: Any, key: Key, loader: Loader, tags: list[str], ttl: Any, fresh_until: int) -> Flight | None:
    """Starts one background refresh of `key` unless a load of it is already running.
    `fresh_until` (wall ns) is how fresh this instance's copy is: a shared copy fresher
    than that means another process refreshed it already. Returns the refresh's flight
    when this call started it (a cached route keeps its request open until it lands)."""
    if m._engine.in_flight(key):
        return None
    leader, flight, flight_id = m._engine.begin_load(key, Flight, True)
    if not leader:
        return None
    mode.spawn(m, _lead(m, mode, key, loader, tags, ttl, flight, flight_id, fresh_until + 1), key)
    started: Flight = flight
    return started


async def _lead(m: CacheManager, mode: Any, key: Key, loader: Loader, tags: list[str], ttl: float | None, flight: Flight, flight_id: int,
                replace_before: int | None, restarted: bool = False, leased: Any = None) -> Any:
    """Leads one flight: takes the value from Redis or the lease to load it, loads, stores,
    each step as the ReadProtocol says. `replace_before` set: a refresh of a copy fresh
    until then (wall ns). `leased`: the WriteGuard of a lease a read already granted (a
    stale copy served, refreshed under it). The flight's lease token is the same however
    often its load starts over, so a restarted load is granted the lease it had; it
    starts over once at most (`restarted`)."""
    engine = m._engine
    started = engine.now()
    since = engine.write_sequence()  # an invalidation after this covering the key fences the store
    token = leased.lease_token if leased is not None else m._lease_token(flight_id)
    protocol = ReadProtocol(engine, key, replace_before is not None, leased is not None, restarted, m.lock_timeout)
    guard = leased
    try:
        if protocol.begin() == READ:
            found, guard = await _coordinate(m, mode, protocol, flight, key, tags, replace_before, since, token)
            if found is not _LOAD:
                engine.finish_load(key, flight_id, True, -1.0)
                flight.set_result(found)
                if guard is not None:  # stale, and the lease to refresh it is ours
                    _refresh_under(m, mode, key, loader, tags, ttl, guard)
                return found
        value, deps = await _run_loader(m, mode, key, loader)
        added: list[str] = []
        if deps:  # what the loader read from the cache: the entry is built from it
            added = sorted(set(deps).difference(tags))
            guard = _guarded(guard, added, deps)
            tags = tags + added
        _pass_on(tags, deps)  # a load inside another key's loader: that entry is built from this one
        if tags:
            flight.built_from = {tag: deps.get(tag) for tag in tags}
        stored, value = _store_local(m, key, value, tags, ttl, engine.now() - started, since)
    except asyncio.CancelledError as exc:
        # The leader itself is cancelled: the callers that joined its flight are not.
        step = protocol.cancelled(engine.abandon_load(key, flight_id), not m.closed)
        if step == RESTART:
            mode.spawn(m, _lead(m, mode, key, loader, tags, ttl, flight, flight_id, replace_before, True, leased),
                       key, "load")
        else:
            flight.set_exception(exc)
            engine.finish_load(key, flight_id, False, -1.0)
            if step == RELEASE:
                mode.spawn(m, _release(m, mode, key, token), key, "lease release")
        raise
    except BaseException as exc:
        engine.finish_load(key, flight_id, False, engine.now() - started)
        flight.set_exception(exc)
        if protocol.failed() == RELEASE and not isinstance(exc, GeneratorExit):
            await mode.l2(m, "l2_release", key, token)  # let a waiting process load it now
        raise
    engine.finish_load(key, flight_id, True, engine.now() - started)
    step = protocol.loaded(stored is not None)
    if step == WRITE and added and engine.now() - started > _DEPENDENCY_WRITE_LIMIT_S:
        step = RELEASE  # a delete's version of what the loader read may be gone: not provable
    if step == WRITE:
        assert stored is not None  # loaded(False) never answers WRITE
        payload, fresh_until, stale_until = stored
        write = mode.send(m, "l2_write", key, payload, fresh_until, stale_until, engine.now() - started, tags, guard,
                          replace_before is not None)
        mode.write_behind(m, key, write)  # nobody waits for it: the caller has its value
    elif step == RELEASE:  # fenced: out of date, written nowhere
        mode.spawn(m, _release(m, mode, key, token), key, "lease release")
    flight.set_result(value)
    return value


async def _run_loader(m: CacheManager, mode: Any, key: Key, loader: Loader) -> tuple[Any, Building]:
    """Runs the loader inside the bulkhead, counted, timed, slow loads logged. Returns
    its value and the dependencies of what it read from the cache meanwhile (BUILDING)."""
    engine = m._engine
    if m._bulkhead is not None:
        await mode.acquire(m)
    started = engine.now()
    deps: Building = {}
    building = BUILDING.set(deps)
    try:
        engine.count(key.resource, "loads")
        value = loader()
        if inspect.isawaitable(value):
            value = await mode.settle(m, value)
    finally:
        BUILDING.reset(building)
        if m._bulkhead is not None:
            m._bulkhead.release()
        elapsed = engine.now() - started
        if elapsed >= m.slow_load_threshold:
            log.warning("slow load: %s took %.3f s", key, elapsed)
    return value, deps


async def _coordinate(m: CacheManager, mode: Any, protocol: Any, flight: Flight, key: Key, tags: list[str], replace_before: int | None,
                      since: int, token: str) -> tuple[Any, ...]:
    """Reads the key from Redis with a lease and performs the protocol's steps until it
    serves or loads. Returns (value, guard) when Redis has a value to serve (guard: the
    lease to refresh it under, or None), or (_LOAD, guard) when this process must load:
    guard is the WriteGuard its write must prove (lease token, generation, versions; token
    "" without a lease), or None when Redis could not be asked."""
    engine = m._engine
    refreshing = replace_before is not None
    read = (m, "l2_read", key, tags, token, m.lock_timeout, engine.wall_ns() if replace_before is None else replace_before)
    result = await mode.l2(*read)
    waiter = None
    while True:
        status = result.status
        value = _UNUSABLE
        if status == HIT:
            payload = result.payload
            value = _decode(m, key, payload)
        elif status == FAULT:
            m._shared_fault(key, result.error)
        step = protocol.on_reply(status, result.lease, result.holder, value is not _UNUSABLE)
        if step == READ or step == WATCH:
            if step == WATCH:  # registered before the read, so a fill in between is not missed
                waiter = mode.fill_waiter(m, key, protocol.wait_seconds)
            result = await mode.l2(*read)
            continue
        if step == WAIT_FILL:
            filled = await mode.wait_filled(m, waiter, protocol.wait_seconds)
            waiter = None
            if filled is not None and filled.status == HIT:
                result = filled  # the notice carried the entry: as good as a read
                continue
            if protocol.fill_waited() == READ:
                result = await mode.l2(*read)
                continue
            step = LOAD_UNLEASED
        if step == LOAD_UNLEASED:
            return _LOAD, (result.guard("") if status == MISS else None)
        guard = result.guard(token)
        if step == LOAD_LEASED:
            return _LOAD, guard
        # SERVE, SERVE_AND_REFRESH: memory keeps it either way
        flight.built_from = dict.fromkeys(result.tags)
        _pass_on(result.tags)
        engine.fill(key, value, len(payload), result.tags, result.fresh_until, result.stale_until,
                    result.load_seconds, not refreshing, since)
        return value, (guard if step == SERVE_AND_REFRESH else None)


def _refresh_under(m: CacheManager, mode: Any, key: Key, loader: Loader, tags: list[str], ttl: float | None,
                   guard: Any) -> None:
    """Refreshes `key` in the background under the lease a read already granted (guard)."""
    leader, flight, flight_id = m._engine.begin_load(key, Flight, True)
    if leader:
        mode.spawn(m, _lead(m, mode, key, loader, tags, ttl, flight, flight_id, WARM_REPLACES_ANY, leased=guard), key)
    else:  # this process already refreshes it: the lease is not needed
        mode.spawn(m, _release(m, mode, key, guard.lease_token), key)


async def _release(m: CacheManager, mode: Any, key: Key, token: str) -> None:
    await mode.l2(m, "l2_release", key, token)


# A load whose loader read other entries writes to Redis only within this long of its
# start: the versions its guard proves are kept that long at least (kKeyVersionKeepMs).
_DEPENDENCY_WRITE_LIMIT_S = KEY_VERSION_KEEP_MS / 2000
_UNUSABLE = object()  # a payload that did not decode
_LOAD = object()  # _coordinate's answer when this process must load


def _decode(m: CacheManager, key: Key, payload: bytes) -> Any:
    try:
        return m._codec_of(key.resource).decode(payload)
    except SerializationError as exc:
        log.warning("ignoring %s in redis: %s", key, exc)
    m._engine.count(key.resource, "errors")
    return _UNUSABLE


# --- writes and invalidations ----------------------------------------------------------


def _encode(m: CacheManager, key: Key, value: Any) -> tuple[bytes, Any]:
    """(payload, the value every tier returns: decoded from that payload). A value that
    cannot be encoded raises SerializationError naming where it was cached: nothing stored."""
    try:
        return m._codec_of(key.resource).roundtrip(value)
    except SerializationError as exc:
        raise SerializationError(f"{m._where(key.resource)}: {exc}") from exc


def _store_local(m: CacheManager, key: Key, value: Any, tags: list[str], ttl: Any, load_s: float,
                 since: int = UNFENCED) -> tuple[tuple[Any, ...] | None, Any]:
    """Serializes and stores in memory. Returns (stored, value): value is what every tier
    returns (decoded from the payload); stored is (payload, fresh_until, stale_until) for
    Redis, or None when an invalidation covering the key happened after `since` (the write
    sequence when its load began): the value is out of date and is written nowhere."""
    payload, value = _encode(m, key, value)
    lifetime = m._engine.store(key, value, len(payload), tags, ttl, max(load_s, 0.0), since)
    if lifetime is None:
        log.info("not caching %s: it was invalidated while it loaded", key)
        return None, value
    return (payload, *lifetime), value


def _send_shared(m: CacheManager, mode: Any, key: Key, stored: tuple[Any, ...], tags: list[str], load_s: float, guard: Any,
                 replaces: bool) -> Any:
    """Sends the Redis write of a value just stored in memory; returns its awaitable answer.
    `replaces`: other instances may hold the value it replaces, and the write tells them."""
    payload, fresh_until, stale_until = stored
    return mode.l2(m, "l2_write", key, payload, fresh_until, stale_until, load_s, tags, guard, replaces)


async def _answered(m: CacheManager, mode: Any, key: Key, write: Any) -> None:
    _written(m, key, await write)


def _written(m: CacheManager, key: Key, result: Any) -> None:
    """Takes in a write's answer (the engine already dropped a refused value from memory)."""
    if result.status == FAULT:
        m._shared_fault(key, result.error)
    elif result.status == REFUSED:
        log.info("not caching %s: it was invalidated while it loaded", key)


def _write_answered(m: CacheManager, key: Key, write: asyncio.Future[Any]) -> None:
    """The done callback of a write sent in the background from the event loop."""
    m._writes.discard(write)
    if write.cancelled():
        return
    exc = write.exception()
    if exc is not None:
        log.warning("background write of %s failed: %r", key, exc)
    else:
        _written(m, key, write.result())


async def store(m: CacheManager, mode: Any, key: Key, value: Any, tags: list[str], ttl: Any) -> None:
    """set(): stored now (no load precedes it, so nothing fences it), written to Redis,
    and announced to the instances that may hold the value it replaces."""
    stored, _ = _store_local(m, key, value, tags, ttl, 0.0)
    if m._has_redis and stored is not None:  # unfenced: None only from a fenced load
        _written(m, key, await _send_shared(m, mode, key, stored, tags, 0.0, None, True))


async def store_many(m: CacheManager, mode: Any, items: list[tuple[Key, Any]], tags: list[str], ttl: Any) -> None:
    """set_many(): every value encoded first (one that cannot be is refused before anything
    is stored), then stored, and the Redis writes sent together and answered in turn."""
    encoded = [(key, _encode(m, key, value)) for key, value in items]
    writes = []
    for key, (payload, value) in encoded:
        lifetime = m._engine.store(key, value, len(payload), tags, ttl, 0.0)
        if m._has_redis:
            writes.append((key, mode.send(m, "l2_write", key, payload, *lifetime, 0.0, tags, None, True)))
    for key, write in writes:
        _written(m, key, await write)


async def add(m: CacheManager, mode: Any, key: Key, value: Any, tags: list[str], ttl: Any) -> bool:
    """Stores `value` only if the key holds nothing (atomic across processes with Redis)."""
    return await _conditional(m, mode, key, value, tags, ttl, None)


async def compare_and_set(m: CacheManager, mode: Any, key: Key, expected: Any, value: Any, tags: list[str], ttl: Any) -> bool:
    """Stores `value` only if the key holds `expected` (compared as serialized payloads)."""
    return await _conditional(m, mode, key, value, tags, ttl, _encode(m, key, expected)[0])


async def _conditional(m: CacheManager, mode: Any, key: Key, value: Any, tags: list[str], ttl: Any,
                       expected_payload: bytes | None) -> bool:
    engine = m._engine
    payload, value = _encode(m, key, value)  # raises SerializationError: nothing stored
    if m._has_redis:
        fresh_until, stale_until = engine.lifetime(key, ttl)
        condition = ("absent",) if expected_payload is None else ("equals", expected_payload)
        # A compare-and-set replaces a value others may hold in memory: its write tells them.
        result = await mode.l2(m, "l2_write", key, payload, fresh_until, stale_until, 0.0, tags, condition,
                               expected_payload is not None)
        outcome = ReadProtocol.on_conditional_reply(result.status)
        if outcome == P.STORED:
            engine.fill(key, value, len(payload), tags, fresh_until, stale_until, 0.0, False)
            return True
        if outcome == P.REFUSED:
            engine.invalidate_key(key)  # what this instance holds is not what Redis has
            return False
        m._shared_fault(key, result.error)  # Redis unavailable: decide on this instance's memory
    cached, current, _, _ = engine.peek(key)
    expected = expected_payload is not None
    equal = expected and cached and _encode(m, key, current)[0] == expected_payload
    if not ReadProtocol.holds_locally(expected, cached, equal):
        return False
    engine.store(key, value, len(payload), tags, ttl, 0.0)
    return True


STORED_UNREADABLE = 2  # l2_incr's Conflict count: the entry is stored in a form the script cannot read
CAS_ATTEMPTS = 100  # compare-and-set rounds an increment tries before it gives up (contention)


async def incr(m: CacheManager, mode: Any, key: Key, delta: int, tags: list[str], ttl: Any) -> int:
    """Adds `delta` to the integer `key` holds (absent: 0) and returns the new value;
    atomic across processes with Redis, which keeps the entry's lifetime unless `ttl` is
    given. Signed, non-JSON or compressed entries are incremented by compare-and-set instead."""
    codec = m._codec_of(key.resource)
    if m._has_redis and (m._signing_key or not codec.counts_in_redis):
        return await _incr_by_compare_and_set(m, mode, key, delta, tags, ttl)
    if m._has_redis:
        fresh_until, stale_until = m._engine.lifetime(key, ttl)
        result = await mode.l2(m, "l2_incr", key, delta, fresh_until, stale_until, ttl is not None, tags)
        if result.status == DONE:
            return int(result.count)
        if result.status == CONFLICT and result.count == STORED_UNREADABLE:  # compressed: Redis cannot read it
            return await _incr_by_compare_and_set(m, mode, key, delta, tags, ttl)
        if result.status == CONFLICT and result.count == 1:
            _counted_value(m, key, MAX_COUNTER + 1)  # raises, as every tier does
        if result.status == CONFLICT:
            raise TypeError(f"{m._where(key.resource)}: {key} holds {result.error[:80]!r}, not an integer: "
                            "incr changes nothing")
        m._shared_fault(key, result.error)  # Redis could not answer: this instance's memory decides, as for add()
    return _incr_in_memory(m, key, delta, tags, ttl)


def _incr_in_memory(m: CacheManager, key: Key, delta: int, tags: list[str], ttl: Any) -> int:
    engine = m._engine
    with m._counter_lock:  # atomic within the process: threads and the event loop alike
        cached, current, fresh_until, stale_until = engine.peek(key)
        if cached and (type(current) is not int):
            raise TypeError(f"{m._where(key.resource)}: {key} holds a {type(current).__name__}, not an integer: "
                            "incr changes nothing")
        value = _counted_value(m, key, (current if cached else 0) + delta)
        payload, value = _encode(m, key, value)
        if cached and ttl is None:  # the entry's lifetime is kept
            engine.fill(key, value, len(payload), tags, fresh_until, stale_until, 0.0, False)
        else:
            engine.store(key, value, len(payload), tags, ttl, 0.0)
        counted: int = value  # what the codec gives back for the int stored
        return counted


def _counted_value(m: CacheManager, key: Key, value: int) -> int:
    if abs(value) > MAX_COUNTER:  # as Redis' increment refuses it: the same on every tier
        raise TypeError(f"{m._where(key.resource)}: incr of {key} would make an integer beyond 2**53: "
                        "incr changes nothing")
    return value


async def _incr_by_compare_and_set(m: CacheManager, mode: Any, key: Key, delta: int, tags: list[str], ttl: Any) -> int:
    for _ in range(CAS_ATTEMPTS):
        current = await get(m, mode, key)
        if current is None:
            if await add(m, mode, key, delta, tags, ttl):
                return delta
            continue
        if type(current) is not int:
            raise TypeError(f"{m._where(key.resource)}: {key} holds a {type(current).__name__}, not an integer: "
                            "incr changes nothing")
        value = _counted_value(m, key, current + delta)
        if await compare_and_set(m, mode, key, current, value, tags, ttl):
            return value
    raise CacheError(f"incr of {key}: {CAS_ATTEMPTS} compare-and-set rounds lost to other writers")


async def invalidate(m: CacheManager, mode: Any, invalidation: Any, removed: int) -> int:
    """Applies in Redis, and broadcasts, an invalidation already applied to this
    instance's memory tier; returns how many entries it removed."""
    if m._has_redis:
        return _invalidated(m, invalidation, removed, await mode.l2(m, "l2_invalidate", invalidation))
    return removed


async def invalidate_many(m: CacheManager, mode: Any, done_locally: list[tuple[Any, int]]) -> list[int]:
    """invalidate() of several invalidations applied to memory already, sent to Redis
    together; how many entries each removed."""
    if not m._has_redis:
        return [removed for _, removed in done_locally]
    sent = [(inv, removed, mode.send(m, "l2_invalidate", inv)) for inv, removed in done_locally]
    return [_invalidated(m, inv, removed, await answer) for inv, removed, answer in sent]


def _invalidated(m: CacheManager, invalidation: Any, removed: int, result: Any) -> int:
    if result.status == FAULT:
        m._shared_fault(None, result.error)
    elif invalidation.counts_entries:
        return max(removed, int(result.count))
    return removed


def _follower_timeout(m: CacheManager, key: Key) -> LoadTimeout:
    return LoadTimeout(f"the load of {key} that another caller leads has not finished after "
                       f"{FOLLOWER_WAITS * m.lock_timeout:g} s ({FOLLOWER_WAITS} x lock_timeout)")


def _log_background_failure(key: Key, what: str, task: Any) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        return
    if what == "refresh":
        log.warning("refresh of %s failed, the stale value keeps serving until it expires: %r", key, exc)
    else:
        log.warning("background %s of %s failed: %r", what, key, exc)
