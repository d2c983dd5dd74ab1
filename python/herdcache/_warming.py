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
task runs and what tests call after moving a ManualClock.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import math
import random
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
        self.handles: set[WarmHandle] = set()
        self.counts = {"runs": 0, "skipped": 0, "failures": 0, "rewarmed": 0}

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
            self.counts["rewarmed"] += 1
        except Exception as exc:  # noqa: BLE001 - a loader's error: raised once every reload ran
            self.counts["failures"] += 1
            log.warning("rewarm of %s failed: %r", key, exc)
            failed.append(exc)

    def stats(self) -> dict[str, int]:
        return {**self.counts, "scheduled": len(self.handles)}

    def close(self) -> None:
        for handle in list(self.handles):
            handle.cancel()


class WarmHandle:
    """A scheduled warm (CacheManager.schedule_warm); cancel() stops it."""

    def __init__(self, m: CacheManager, fn: Any, args: tuple[Any, ...], params: dict[str, Any], every: float) -> None:
        self._m = m
        self._fn = fn
        self._args = args
        self._params = params
        self.every = every
        self.key: Key = fn.key(*args, **params)
        self._offset = random.random() * WARM_JITTER * every  # this instance's point in each period
        self._period: int | None = None  # the last period tick() handled
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.cancelled = False

    def _now_period(self) -> tuple[int, float]:
        wall = self._m._engine.wall_ns() / 1e9
        period = math.floor(wall / self.every)
        return period, wall - period * self.every

    async def tick(self) -> str:
        """One attempt: "warmed", "skipped" (another instance warms this period), "failed",
        or "not due" (this period is handled already, or the handle is cancelled)."""
        period, _ = self._now_period()
        if self.cancelled or period == self._period:
            return "not due"
        self._period = period
        counts = self._m._warming.counts
        if not await self._claim(period):
            counts["skipped"] += 1
            return "skipped"
        try:
            if inspect.iscoroutinefunction(self._fn.uncached):
                await self._fn.warm(*self._args, **self._params)
            else:  # a blocking loader runs off the event loop
                await asyncio.to_thread(self._fn.warm, *self._args, **self._params)
        except Exception as exc:  # noqa: BLE001 - a loader's error, reported and counted
            counts["failures"] += 1
            log.warning("scheduled warm of %s failed: %r", self.key, exc)
            return "failed"
        counts["runs"] += 1
        return "warmed"

    async def _claim(self, period: int) -> bool:
        """The period's claim in Redis; without Redis (or with it unreachable) this instance warms."""
        m = self._m
        if not m._has_redis:
            return True
        result = await m._engine.l2_claim(f"{self.key}@{period}", m._instance_id, self.every, m._bridge())
        if result.status != STATUS_DONE:
            m._shared_fault(self.key, result.error)
            return True
        return bool(result.count)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())
        self._m._track(self._task)
        self._m._warming.handles.add(self)

    async def _run(self) -> None:
        while True:
            _, into = self._now_period()
            wait = self._offset - into if into < self._offset else self.every - into + self._offset
            # The period's timer: cancel() and close() cancel this task, which ends it at once.
            await asyncio.sleep(max(wait, 0.001))
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
