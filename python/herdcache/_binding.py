"""Arguments from outside Python (a JSON body, a command line) bound to a cached function,
and the two things the admin router and the CLI do with them: invalidate and warm.

A key is built from Python values, so ``"42"`` and ``42`` are different keys. The admin
router and the CLI receive JSON or strings; before building a key they bind the values to
the registered function's signature (``inspect.Signature.bind``) and, when pydantic is
installed, convert each one to its parameter's annotation in pydantic's lax mode (``"42"``
→ ``42`` for an ``int`` parameter; ``42`` stays an error for a ``str`` one). Parameters
without an annotation keep the value as given.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Callable


class BadArguments(ValueError):
    """The arguments do not fit the registered function's signature or annotations."""


def bind(fn: Any, args: Sequence[Any], params: Mapping[str, Any], *, partial: bool = False) -> inspect.BoundArguments:
    """Binds to ``fn.signature`` (a decorated function) and converts to the annotations.

    ``partial=True`` accepts a leading subset (an invalidation prefix)."""
    signature: inspect.Signature = fn.signature
    try:
        bound = signature.bind_partial(*args, **params) if partial else signature.bind(*args, **params)
    except TypeError as exc:
        raise BadArguments(f"{fn.resource}: {exc}") from None
    if partial and list(bound.arguments) != list(signature.parameters)[: len(bound.arguments)]:
        raise BadArguments(f"{fn.resource}: an invalidation prefix is a leading run of the key's arguments, "
                           f"got {list(bound.arguments)}")
    hints = _hints(fn.uncached)
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if name in hints and kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            bound.arguments[name] = _convert(fn.resource, name, hints[name], value)
    return bound


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: keep values as given
        return {}
    hints.pop("return", None)
    return hints


def _convert(resource: str, name: str, hint: Any, value: Any) -> Any:
    try:
        from pydantic import TypeAdapter, ValidationError
    except ImportError:  # pragma: no cover - pydantic comes with the fastapi extra
        return value
    try:
        adapter = TypeAdapter(hint)
    except Exception:  # an annotation pydantic cannot validate: keep the value as given
        return value
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        reasons = "; ".join(e["msg"] for e in exc.errors())
        raise BadArguments(f"{resource}: argument {name!r}: {reasons}") from None


class RewarmFailed(Exception):
    """The invalidation happened; reloading what it removed raised (the cause)."""


async def invalidate(fn: Any, bound: inspect.BoundArguments, cache: Any = None, *, rewarm: bool = False) -> int:
    """``fn.invalidate`` with bound arguments (the function knows which of its arguments
    make up the key: not ``self``, not ``ignore=``). TypeError: not a leading run.
    ``rewarm=True``: ``cache.invalidate(resource, *prefix, rewarm=True)``, which reloads
    what it removed and the key the arguments name; RewarmFailed if a reload raised."""
    if rewarm:
        prefix = fn.key_prefix(*bound.args, **bound.kwargs)
        try:
            if inspect.iscoroutinefunction(fn.uncached):
                count: int = await cache.invalidate(fn.resource, *prefix, rewarm=True)
            else:
                count = await asyncio.to_thread(cache.sync.invalidate, fn.resource, *prefix, rewarm=True)
        except Exception as exc:
            raise RewarmFailed(f"the loader for {fn.resource!r} raised {type(exc).__name__}: {exc}") from exc
        return count
    if inspect.iscoroutinefunction(fn.uncached):
        removed: int = await fn.invalidate(*bound.args, **bound.kwargs)
    else:
        removed = await asyncio.to_thread(fn.invalidate, *bound.args, **bound.kwargs)
    return removed


async def warm(cache: Any, fn: Any, bound: inspect.BoundArguments) -> str:
    """Runs the registered loader now; returns the key it filled. A blocking loader runs
    in a worker thread, off the event loop."""
    key = str(fn.key(*bound.args, **bound.kwargs))
    if inspect.iscoroutinefunction(fn.uncached):
        await cache.warm(fn.resource, *bound.args, **bound.kwargs)
    else:
        await asyncio.to_thread(cache.sync.warm, fn.resource, *bound.args, **bound.kwargs)
    return key
