"""@cache.cached(resource, tags=...): cache a function's results under a resource.

The key is ``cache.key(resource, <bound arguments in signature order, defaults applied>)``,
so ``f("o1")``, ``f("o1", 1)`` and ``f(org_id="o1", semester=1)`` share one entry. The
signature is compiled once, here, into a native call site; each call then costs one
native lookup when the value is in the memory tier. ``self`` / ``cls`` (a method's first
parameter) and names in ``ignore`` are left out of the key.

Cached values are shared, not copied: treat what a cached function returns as read-only.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Callable, Iterable

from . import _native, _ops
from ._ops import ASYNC, SYNC, drive
from .manager import _tag_list

if TYPE_CHECKING:
    from .manager import CacheManager

MISS = _native.MISS


def cached(m: CacheManager, resource: str, *, tags: Any = None, ttl: float | None = None, ignore: Iterable[str] = ()) -> Callable:
    ignore = frozenset([ignore] if isinstance(ignore, str) else ignore)
    if ttl is not None:
        _native.Policy(ttl=ttl)  # validates: ValueError naming the field
    if tags is not None and not callable(tags):
        static_tags = _tag_list(tags)
        tags = None
    else:
        static_tags = []

    def decorate(fn: Callable) -> Callable:
        if resource in m._registry:
            raise ValueError(f"resource {resource!r} is already cached by {m._registry[resource].__qualname__}")
        signature = inspect.signature(fn)
        names = list(signature.parameters)
        params = [
            (
                p.name,
                int(p.kind),
                p.default is not inspect.Parameter.empty,
                None if p.default is inspect.Parameter.empty else p.default,
                p.name not in ignore and not (i == 0 and p.name in ("self", "cls")),
            )
            for i, p in enumerate(signature.parameters.values())
        ]
        unknown = ignore - set(names)
        if unknown:
            raise ValueError(f"ignore names parameters {sorted(unknown)} that {fn.__qualname__} does not have")
        lookup, make_key = _native.callsite(m._engine, resource, params)

        def tags_for(args: tuple, kwargs: dict) -> list[str]:
            return static_tags + _tag_list(tags(*args, **kwargs)) if tags is not None else static_tags

        def prefix_of(args: tuple, kwargs: dict) -> tuple:
            """A leading run of bound arguments, for invalidate(): f.invalidate(org_id)."""
            bound = signature.bind_partial(*args, **kwargs).arguments
            prefix = []
            for i, name in enumerate(names):
                if name not in bound:
                    break
                if params[i][4]:
                    prefix.append(bound[name])
            if len(prefix) < len([n for n in bound if params[names.index(n)][4]]):
                raise TypeError("invalidate() takes a leading run of the key's arguments")
            return tuple(prefix)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                value = lookup(args, kwargs)
                if value is not MISS:
                    return value
                m._ready()
                key = make_key(args, kwargs)
                return await _ops.get_or_load(
                    m, ASYNC, key, lambda: fn(*args, **kwargs), tags_for(args, kwargs), ttl, counted=False
                )

            async def invalidate(*args: Any, **kwargs: Any) -> int:
                return await m.invalidate(resource, *prefix_of(args, kwargs))

            async def warm(*args: Any, **kwargs: Any) -> Any:
                m._ready()
                key = make_key(args, kwargs)
                return await _ops.load(m, ASYNC, key, lambda: fn(*args, **kwargs), tags_for(args, kwargs), ttl, refresh=True)

        else:

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                value = lookup(args, kwargs)
                if value is not MISS:
                    return value
                m._ready()
                key = make_key(args, kwargs)
                return drive(_ops.get_or_load(
                    m, SYNC, key, lambda: fn(*args, **kwargs), tags_for(args, kwargs), ttl, counted=False
                ))

            def invalidate(*args: Any, **kwargs: Any) -> int:
                return m.sync.invalidate(resource, *prefix_of(args, kwargs))

            def warm(*args: Any, **kwargs: Any) -> Any:
                m._ready()
                key = make_key(args, kwargs)
                return drive(_ops.load(m, SYNC, key, lambda: fn(*args, **kwargs), tags_for(args, kwargs), ttl, refresh=True))

        wrapper.key = lambda *args, **kwargs: make_key(args, kwargs)  # type: ignore[attr-defined]
        wrapper.invalidate = invalidate  # type: ignore[attr-defined]
        wrapper.warm = warm  # type: ignore[attr-defined]
        wrapper.uncached = fn  # type: ignore[attr-defined]
        wrapper.resource = resource  # type: ignore[attr-defined]
        wrapper.signature = signature  # type: ignore[attr-defined]
        m._registry[resource] = wrapper
        return wrapper

    return decorate
