"""Running loaders: the leader side of a flight, stale-while-revalidate refreshes, and
their blocking twins for ``cache.sync``.

Who leads, who follows, what is fresh and what a load counts as are the engine's
decisions (``begin_load`` / ``finish_load`` / ``get``); this module only runs the loader
where Python code has to run, and completes the flight with its value or exception.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any, Callable

from ._flight import Flight
from ._native import Key

if TYPE_CHECKING:
    from .manager import CacheManager

log = logging.getLogger("herdcache")

FRESH, STALE = 1, 2
Loader = Callable[[], Any]


# --- async ---------------------------------------------------------------------------


async def get_or_load(m: CacheManager, key: Key, loader: Loader, tags: list[str], ttl, *, counted: bool = True) -> Any:
    state, value = m._engine.get(key, counted)
    if state == FRESH:
        return value
    if state == STALE:
        m._engine.serve_stale(key)
        refresh_in_background(m, key, loader, tags, ttl)
        return value
    return await load(m, key, loader, tags, ttl)


async def load(m: CacheManager, key: Key, loader: Loader, tags: list[str], ttl, *, refresh: bool = False) -> Any:
    """Joins the key's flight (leading it if there is none) and returns its value."""
    started = m._engine.now()
    leader, flight, flight_id = m._engine.begin_load(key, Flight, refresh)
    if not leader:
        value = await flight.wait()
    else:
        # The load runs as its own task: a leader that is cancelled does not cancel the
        # load its followers are waiting for.
        task = m._track(asyncio.get_running_loop().create_task(_lead(m, key, loader, tags, ttl, flight, flight_id)))
        value = await asyncio.shield(task)
    m._engine.record_miss(key.resource, m._engine.now() - started)
    return value


async def _lead(m: CacheManager, key: Key, loader: Loader, tags, ttl, flight: Flight, flight_id: int) -> Any:
    engine = m._engine
    started = engine.now()
    try:
        value = loader()
        if inspect.isawaitable(value):
            value = await value
        m._store(key, value, tags, ttl, engine.now() - started)
    except BaseException as exc:
        engine.finish_load(key, flight_id, False, engine.now() - started)
        flight.set_exception(exc)
        raise
    engine.finish_load(key, flight_id, True, engine.now() - started)
    flight.set_result(value)
    return value


def refresh_in_background(m: CacheManager, key: Key, loader: Loader, tags, ttl) -> None:
    """Starts one background refresh of `key` unless a load of it is already running."""
    if m._engine.in_flight(key):
        return
    leader, flight, flight_id = m._engine.begin_load(key, Flight, True)
    if leader:
        task = asyncio.get_running_loop().create_task(_lead(m, key, loader, tags, ttl, flight, flight_id))
        task.add_done_callback(lambda t: _log_refresh_failure(key, t))
        m._track(task)


def _log_refresh_failure(key: Key, task: asyncio.Task | Any) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.warning("refresh of %s failed, the stale value keeps serving until it expires: %r", key, exc)


# --- blocking ------------------------------------------------------------------------


def get_or_load_sync(m: CacheManager, key: Key, loader: Loader, tags: list[str], ttl, *, counted: bool = True) -> Any:
    state, value = m._engine.get(key, counted)
    if state == FRESH:
        return value
    if state == STALE:
        m._engine.serve_stale(key)
        refresh_in_thread(m, key, loader, tags, ttl)
        return value
    return load_sync(m, key, loader, tags, ttl)


def load_sync(m: CacheManager, key: Key, loader: Loader, tags, ttl, *, refresh: bool = False) -> Any:
    started = m._engine.now()
    leader, flight, flight_id = m._engine.begin_load(key, Flight, refresh)
    value = flight.wait_sync() if not leader else _lead_sync(m, key, loader, tags, ttl, flight, flight_id)
    m._engine.record_miss(key.resource, m._engine.now() - started)
    return value


def _lead_sync(m: CacheManager, key: Key, loader: Loader, tags, ttl, flight: Flight, flight_id: int) -> Any:
    engine = m._engine
    started = engine.now()
    try:
        value = loader()
        if inspect.isawaitable(value):
            value = m._run_coroutine(value)
        m._store(key, value, tags, ttl, engine.now() - started)
    except BaseException as exc:
        engine.finish_load(key, flight_id, False, engine.now() - started)
        flight.set_exception(exc)
        raise
    engine.finish_load(key, flight_id, True, engine.now() - started)
    flight.set_result(value)
    return value


def refresh_in_thread(m: CacheManager, key: Key, loader: Loader, tags, ttl) -> None:
    if m._engine.in_flight(key):
        return
    leader, flight, flight_id = m._engine.begin_load(key, Flight, True)
    if leader:
        future = m._executor().submit(_lead_sync, m, key, loader, tags, ttl, flight, flight_id)
        future.add_done_callback(lambda f: _log_refresh_failure(key, f))
