"""The waitable object behind one in-process flight (the engine's flight handle).

The engine decides who leads a load and who follows; this is what followers wait on.
A flight started from async code completes an asyncio future on the leader's loop;
one started from a thread completes a concurrent future. Followers can wait from either
world, and a follower that is cancelled or times out never cancels the flight itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from typing import Any, Callable


class StillRunning(Exception):
    """wait_sync()'s timeout passed (distinct from a TimeoutError the loader raised)."""


class Flight:
    __slots__ = ("_loop", "_future", "_waiters", "built_from")

    def __init__(self) -> None:
        # What the value was built from (dependency tag -> version or None), set by the
        # leader before it completes the flight: a follower reading inside a loader passes
        # it on to the entry that loader builds, as the leader's own read would.
        self.built_from: dict[str, str | None] | None = None
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

    def wait(self, timeout: float | None = None,
             expired: Callable[[], BaseException] | None = None) -> Any:
        """An awaitable of the flight's value: a future of the follower's own (the flight's
        own when it is done already), so no coroutine frame is needed. With `timeout`, the
        follower's future gets `expired()` after that many seconds; the flight goes on."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._future.done():
            return self._future
        waiter = loop.create_future()
        if self._loop is loop:
            self._waiters.append(waiter)
        else:
            self._as_concurrent().add_done_callback(functools.partial(_hand_over, loop, waiter))
        if timeout is not None:
            timer = loop.call_later(timeout, _expire, waiter, expired or TimeoutError)
            waiter.add_done_callback(lambda _: timer.cancel())
        return waiter

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


def _copy(source: Any, target: Any) -> None:
    """Settles a follower's future (concurrent or asyncio) as the flight's ended, unless the
    follower gave up first (cancelled, or its wait expired)."""
    if target.done():
        return
    try:
        if source.cancelled():
            target.cancel()
        elif source.exception() is not None:
            target.set_exception(source.exception())
        else:
            target.set_result(source.result())
    except (concurrent.futures.InvalidStateError, asyncio.InvalidStateError):
        pass  # the waiter gave up (cancelled its proxy) first


def _hand_over(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any],
               source: concurrent.futures.Future[Any]) -> None:
    """From the thread that ended the flight: settle a follower's future on its own loop."""
    try:
        loop.call_soon_threadsafe(_copy, source, waiter)
    except RuntimeError:
        pass  # the follower's loop is closed: nobody is left to tell


def _expire(waiter: asyncio.Future[Any], expired: Callable[[], BaseException]) -> None:
    if not waiter.done():
        waiter.set_exception(expired())
