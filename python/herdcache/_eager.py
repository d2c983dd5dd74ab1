"""Eager tasks for Python 3.11: a coroutine's first step runs at once, then a task carries
on (what Python 3.12's eager task factory does for every task). A leader's load uses it
so its first round trip is not queued behind the followers that arrived with it."""

from __future__ import annotations

import asyncio
from typing import Any


def eager_task(coro: Any) -> asyncio.Future:
    """Runs the coroutine's first step now, then carries on as a task (what Python 3.12's
    eager task factory does): a task created in a burst of callers otherwise starts only
    after every one of them has run its first step."""
    loop = asyncio.get_running_loop()
    try:
        suspended_on = coro.send(None)
    except StopIteration as done:
        future = loop.create_future()
        future.set_result(done.value)
        return future
    except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller as is
        future = loop.create_future()
        future.set_exception(exc)
        return future
    return loop.create_task(_carry_on(coro, suspended_on))


async def _carry_on(coro: Any, suspended_on: Any) -> Any:
    return await _Resumed(coro, suspended_on)


class _Resumed:
    """Lets a task drive a coroutine that already ran its first step: what the coroutine
    yields goes to the task, what the task sends or throws goes back to the coroutine."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Any, yielded: Any) -> None:
        self.coro, self.yielded = coro, yielded

    def __await__(self):
        coro, yielded = self.coro, self.yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - cancellation and the like go to the coroutine
                try:
                    yielded = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as done:
                    return done.value
