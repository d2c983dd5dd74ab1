"""Waiting for a manager's background work (refreshes, Redis writes of loaded values)."""

from __future__ import annotations

import asyncio


async def settled(*managers) -> None:
    """Returns once every background task of `managers` is done (each is bounded by the
    command timeout, so this is too)."""
    for m in managers:
        while True:
            pending = [t for t in (*m._tasks, *m._writes) if isinstance(t, asyncio.Future) and not t.done()]
            if not pending:
                break
            await asyncio.gather(*pending, return_exceptions=True)
