"""The bulkhead: at most `limit` loaders of one manager run at once.

One bound shared by async callers (which wait on a future of their own loop) and
blocking callers (which wait on an event), so a burst of distinct misses cannot take more
than `limit` database connections whichever API it arrives through. Slots are handed
over in arrival order. A caller waits for a slot `timeout` seconds at most (the manager's
lock_timeout), then gets LoadTimeout: a database that holds every slot that long is not
answering, and queueing more callers behind it only makes each of them wait longer.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

from ._native import CacheError


class LoadTimeout(CacheError, TimeoutError):
    """A load waited longer than its bound: for a slot of max_concurrent_loads, or, in a
    blocking call, for the load of the same key another caller leads."""


class Bulkhead:
    __slots__ = ("limit", "timeout", "_free", "_lock", "_waiters", "running_peak")

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout
        self._free = limit
        self._lock = threading.Lock()
        self._waiters: collections.deque[Any] = collections.deque()
        self.running_peak = 0

    def _take(self) -> bool:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            self.running_peak = max(self.running_peak, self.limit - self._free)
            return True
        return False

    async def acquire(self) -> None:
        with self._lock:
            if self._take():
                return
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, self.timeout)  # cancels `future` when it times out
        except (asyncio.CancelledError, asyncio.TimeoutError) as exc:
            with self._lock:
                try:
                    self._waiters.remove((loop, future))
                    handed = False
                except ValueError:
                    handed = True  # the slot was handed to us as we were cancelled
            # Handed over while being cancelled: if the future still got its result we hold
            # the slot; if it was cancelled first, _grant passes the slot on.
            if handed and not future.cancelled():
                self.release()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._timed_out() from None

    def acquire_sync(self) -> None:
        with self._lock:
            if self._take():
                return
            event = threading.Event()
            self._waiters.append(event)
        if event.wait(self.timeout):
            return
        with self._lock:
            try:
                self._waiters.remove(event)
            except ValueError:
                return  # the slot was handed to us as the wait ended: ours
        raise self._timed_out()

    def _timed_out(self) -> LoadTimeout:
        return LoadTimeout(f"no load slot free after {self.timeout:g} s: all max_concurrent_loads={self.limit} "
                           f"loads are still running (the bound is lock_timeout)")

    def release(self) -> None:
        with self._lock:
            if not self._waiters:
                self._free += 1
                return
            waiter = self._waiters.popleft()  # the slot passes straight to the next waiter
        if isinstance(waiter, threading.Event):
            waiter.set()
        else:
            loop, future = waiter
            loop.call_soon_threadsafe(_grant, future, self)


def _grant(future: asyncio.Future[Any], bulkhead: Bulkhead) -> None:
    if future.cancelled():
        bulkhead.release()  # its waiter left: pass the slot on
    else:
        future.set_result(None)
