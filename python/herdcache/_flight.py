"""The waitable object behind one in-process flight (the engine's flight handle).

The engine decides who leads a load and who follows; this is what followers wait on.
A flight started from async code completes an asyncio future on the leader's loop;
one started from a thread completes a concurrent future. Followers can wait from either
world, and a follower that is cancelled or times out never cancels the flight itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any


class StillRunning(Exception):
    """wait_sync()'s timeout passed (distinct from a TimeoutError the loader raised)."""


class Flight:
    __slots__ = ("_loop", "_future", "_waiters")

    def __init__(self) -> None:
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            self._future: Any = self._loop.create_future()
        except RuntimeError:
            self._loop = None
            self._future = concurrent.futures.Future()
        # Followers on the leader's loop: a future each, completed directly by the leader
        # (cheaper than a shield per follower, and a cancelled follower cancels only its own).
        self._waiters: list[asyncio.Future[Any]] = []

    # The leader completes the flight from the thread (or loop) that created it.
    def set_result(self, value: Any) -> None:
        self._future.set_result(value)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(value)

    def set_exception(self, exc: BaseException) -> None:
        self._future.set_exception(exc)
        if self._loop is not None:
            self._future.exception()  # mark retrieved: followers, if any, re-raise it
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    def wait(self) -> Any:
        """An awaitable of the flight's value. On the leader's loop it is a future of the
        follower's own (done already if the flight is), so no coroutine frame is needed."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            if self._future.done():
                return self._future
            waiter = loop.create_future()
            self._waiters.append(waiter)
            return waiter
        return asyncio.shield(asyncio.wrap_future(self._as_concurrent(), loop=loop))

    def wait_sync(self, timeout: float | None = None) -> Any:
        """The flight's value (or its exception), blocking `timeout` seconds at most; then
        StillRunning. The flight itself goes on either way."""
        proxy = self._as_concurrent()
        if not concurrent.futures.wait([proxy], timeout).done:
            proxy.cancel()
            raise StillRunning
        return proxy.result()

    def _as_concurrent(self) -> concurrent.futures.Future[Any]:
        if self._loop is None:
            # A fresh proxy, so a waiter's cancellation never reaches the flight's future.
            proxy: concurrent.futures.Future[Any] = concurrent.futures.Future()
            self._future.add_done_callback(lambda f: _copy(f, proxy))
            return proxy
        proxy = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._future.add_done_callback, lambda f: _copy(f, proxy))
        return proxy


def _copy(source: Any, target: concurrent.futures.Future[Any]) -> None:
    try:
        if source.cancelled():
            target.cancel()
        elif source.exception() is not None:
            target.set_exception(source.exception())
        else:
            target.set_result(source.result())
    except concurrent.futures.InvalidStateError:
        pass  # the waiter gave up (cancelled its proxy) first
