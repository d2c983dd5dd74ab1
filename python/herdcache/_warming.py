"""Warming: reloading what an invalidation removed (rewarm=True) and scheduled warms.

Rewarm. A cached function's miss remembers how to load its key again (the call's loader,
tags and ttl) in a bounded table, most recent last. invalidate(..., rewarm=True) notes
which remembered keys this instance holds in memory, invalidates, and reloads those that
the invalidation removed (entries built from them included) through the lease: one load
cluster-wide, and a request arriving meanwhile waits for it instead of loading too (seed
000's "delete by pattern, then re-warm, so the cache is never empty"). Keys loaded with
plain get_or_load() are not reloaded: their loader may hold request state.

Scheduled warms. schedule_warm(resource, *args, every=s) re-runs the registered loader
once per period of `every` seconds of the manager's clock (wall time, so every instance
agrees on the periods). Each instance's task wakes at a random offset into each period
(jitter); the first to claim "<ns>#c:<key>@<period>" in Redis (SET NX, expiring with the
period) warms, the others count a skip. WarmHandle.tick() is one such attempt, what the
task runs and what tests call after moving a ManualClock. cache.sync.schedule_warm makes
a SyncWarmHandle instead: the same attempt in blocking mode, run by a daemon thread
(code without an event loop: WSGI, Django, scripts).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import math
import random
import threading
from typing import TYPE_CHECKING, Any, Callable

from . import _ops
from ._native import STATUS_DONE, Key

if TYPE_CHECKING:
    from .manager import CacheManager

log = logging.getLogger("herdcache")
REWARM_TRACKED = 10_000  # keys whose loaders a manager remembers for rewarm=True
WARM_JITTER = 0.1  # scheduled warms start within this fraction of their period


class Warming:
    """A manager's warming state: remembered loaders, scheduled warms, their counts."""

    def __init__(self, m: CacheManager) -> None:
        self._m = m
        self._loaders: collections.OrderedDict[str, tuple[Key, Callable[[], Any], list[str], Any]] = collections.OrderedDict()
        self.handles: set[WarmHandle | SyncWarmHandle] = set()
        self.counts = {"runs": 0, "skipped": 0, "failures": 0, "rewarmed": 0}
        self._counts_lock = threading.Lock()  # scheduled warms of cache.sync count from their threads

    def remember(self, key: Key, loader: Callable[[], Any], tags: list[str], ttl: Any) -> None:
        """A cached function's miss: how to load `key` again."""
        name = str(key)
        self._loaders[name] = (key, loader, tags, ttl)
        self._loaders.move_to_end(name)
        if len(self._loaders) > REWARM_TRACKED:
            self._loaders.popitem(last=False)

    def present(self) -> list[tuple[Key, Callable[[], Any], list[str], Any]]:
        """The remembered keys this instance holds in memory now."""
        peek = self._m._engine.peek
        return [entry for entry in self._loaders.values() if peek(entry[0])[0]]

    async def rewarm(self, mode: Any, present: list[tuple[Key, Callable[[], Any], list[str], Any]],
                     named: tuple[str, tuple[Any, ...]] | None = None) -> None:
        """Reloads each of `present` that is no longer in memory (invalidated), and the key
        `named` (resource, args) names when its args are a whole key of the resource's
        cached function, present or not. Every reload is tried; the first one's error is
        raised after them (the invalidation itself has happened), and each is counted."""
        m = self._m
        peek = m._engine.peek
        done = set()
        failed: list[Exception] = []
        for key, loader, tags, ttl in present:
            if peek(key)[0]:
                continue  # not covered by the invalidation
            done.add(str(key))
            await self._reload(key, lambda: _ops.load(m, mode, key, loader, tags, ttl, refresh=True), failed)
        fn = m._registry.get(named[0]) if named is not None else None
        if fn is not None and named is not None:
            try:
                whole: Key | None = fn.key(*named[1])
            except TypeError:  # a prefix, not a whole key
                whole = None
            if whole is not None and str(whole) not in done:
                await self._reload(whole, lambda: self._warm(mode, fn, named[1]), failed)
        if failed:
            raise failed[0]

    async def _warm(self, mode: Any, fn: Any, args: tuple[Any, ...]) -> None:
        warmed = fn.warm(*args)  # the cached function's own mode: it may differ from `mode`
        if inspect.isawaitable(warmed):
            if mode.blocking:
                self._m._run_coroutine(warmed)
            else:
                await warmed

    async def _reload(self, key: Key, load: Callable[[], Any], failed: list[Exception]) -> None:
        try:
            await load()
            self.count("rewarmed")
        except Exception as exc:  # noqa: BLE001 - a loader's error: raised once every reload ran
            self.count("failures")
            log.warning("rewarm of %s failed: %r", key, exc)
            failed.append(exc)

    def count(self, name: str) -> None:
        with self._counts_lock:
            self.counts[name] += 1

    def stats(self) -> dict[str, int]:
        with self._counts_lock:
            return {**self.counts, "scheduled": len(self.handles)}

    def close(self) -> None:
        """Cancels every scheduled warm; a blocking one's warm running now is waited for,
        lock_timeout at most (past that its lease has lapsed anyway)."""
        handles = list(self.handles)
        for handle in handles:
            handle.cancel()
        for handle in handles:
            handle.join(self._m.lock_timeout)


class _Scheduled:
    """What both kinds of scheduled warm share: the key, this instance's point in each
    period, and one attempt (_attempt) written once for both modes."""

    def __init__(self, m: CacheManager, fn: Any, args: tuple[Any, ...], params: dict[str, Any], every: float) -> None:
        self._m = m
        self._fn = fn
        self._args = args
        self._params = params
        self.every = every
        self.key: Key = fn.key(*args, **params)
        self._offset = random.random() * WARM_JITTER * every  # this instance's point in each period
        self._period: int | None = None  # the last period an attempt handled
        self._period_lock = threading.Lock()  # a blocking handle's thread and a caller's tick()
        self.cancelled = False

    def _now_period(self) -> tuple[int, float]:
        wall = self._m._engine.wall_ns() / 1e9
        period = math.floor(wall / self.every)
        return period, wall - period * self.every

    def _until_next(self) -> float:
        """Seconds until this instance's point in the next period it has not handled."""
        _, into = self._now_period()
        wait = self._offset - into if into < self._offset else self.every - into + self._offset
        return max(wait, 0.001)

    async def _attempt(self, mode: Any) -> str:
        """One attempt: "warmed", "skipped" (another instance warms this period), "failed",
        or "not due" (this period is handled already, or the handle is cancelled)."""
        period, _ = self._now_period()
        with self._period_lock:
            if self.cancelled or period == self._period:
                return "not due"
            self._period = period
        warming = self._m._warming
        if not await self._claim(mode, period):
            warming.count("skipped")
            return "skipped"
        try:
            await self._warm(mode)
        except Exception as exc:  # noqa: BLE001 - a loader's error, reported and counted
            warming.count("failures")
            log.warning("scheduled warm of %s failed: %r", self.key, exc)
            return "failed"
        warming.count("runs")
        return "warmed"

    async def _warm(self, mode: Any) -> None:
        fn, args, params = self._fn, self._args, self._params
        if mode.blocking:  # on the handle's thread: a coroutine loader runs on a loop of its own
            warmed = fn.warm(*args, **params)
            if inspect.isawaitable(warmed):
                self._m._run_coroutine(warmed)
        elif inspect.iscoroutinefunction(fn.uncached):
            await fn.warm(*args, **params)
        else:  # a blocking loader runs off the event loop
            await asyncio.to_thread(fn.warm, *args, **params)

    async def _claim(self, mode: Any, period: int) -> bool:
        """The period's claim in Redis; without Redis (or with it unreachable) this instance warms."""
        m = self._m
        if not m._has_redis:
            return True
        result = await mode.l2(m, "l2_claim", f"{self.key}@{period}", m._instance_id, self.every)
        if result.status != STATUS_DONE:
            m._shared_fault(self.key, result.error)
            return True
        return bool(result.count)


class WarmHandle(_Scheduled):
    """A scheduled warm (CacheManager.schedule_warm): a task on the event loop; cancel() stops it."""

    def __init__(self, m: CacheManager, fn: Any, args: tuple[Any, ...], params: dict[str, Any], every: float) -> None:
        super().__init__(m, fn, args, params, every)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def tick(self) -> str:
        """One attempt (see _Scheduled._attempt): what the task runs each period."""
        return await self._attempt(_ops.ASYNC)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())
        self._m._track(self._task)
        self._m._warming.handles.add(self)

    async def _run(self) -> None:
        while True:
            # The period's timer: cancel() and close() cancel this task, which ends it at once.
            await asyncio.sleep(self._until_next())
            await self.tick()

    def cancel(self) -> None:
        """Stops the scheduled warm (one running now is cancelled, as close() cancels it)."""
        self.cancelled = True
        self._m._warming.handles.discard(self)
        loop = self._loop
        if self._task is None or loop is None or loop.is_closed():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._task.cancel()
        else:  # cache.sync.close() from another thread: a task is cancelled on its own loop
            loop.call_soon_threadsafe(self._task.cancel)

    def join(self, timeout: float) -> None:
        """Nothing to wait for: close() awaits the cancelled task."""


class SyncWarmHandle(_Scheduled):
    """A scheduled warm of cache.sync.schedule_warm: a daemon thread, no event loop needed.
    Its period timer is an Event wait, so cancel() and close() end it at once; a warm
    running then finishes (a thread cannot be cancelled), and close() waits for it, bounded."""

    def __init__(self, m: CacheManager, fn: Any, args: tuple[Any, ...], params: dict[str, Any], every: float) -> None:
        super().__init__(m, fn, args, params, every)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"herdcache-warm-{fn.resource}", daemon=True)

    def tick(self) -> str:
        """One attempt, blocking (see _Scheduled._attempt): what the thread runs each period."""
        return _ops.drive(self._attempt(_ops.SYNC))

    def start(self) -> None:
        self._m._warming.handles.add(self)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._until_next()):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - e.g. the manager closing under it: the thread ends quietly
                log.warning("scheduled warm of %s stopped: %r", self.key, exc)
                return

    def cancel(self) -> None:
        """Stops the scheduled warm; a warm running now finishes."""
        self.cancelled = True
        self._stop.set()
        self._m._warming.handles.discard(self)

    def join(self, timeout: float) -> None:
        """Waits up to `timeout` s for a warm running on the thread to finish."""
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
