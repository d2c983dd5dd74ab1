"""@cache.cached(resource, tags=...): cache a function's results under a resource.

The key is ``cache.key(resource, <bound arguments in signature order, defaults applied>)``,
so ``f("o1")``, ``f("o1", 1)`` and ``f(org_id="o1", semester=1)`` share one entry. The
signature is compiled once, here, into a native call site; each call then costs one
native lookup when the value is in the memory tier. ``self`` / ``cls`` (a method's first
parameter) and names in ``ignore`` are left out of the key.

Cached values are shared, not copied: treat what a cached function returns as read-only.

For type checkers the decorated function keeps its parameters and return type (a
ParamSpec): ``CachedFunction[P, R]`` for a plain function, ``AsyncCachedFunction[P, R]``
for a coroutine function returning R. On an instance (a cached method) its parameters
are not checked, as they would have to lose ``self``; its return type still is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Callable, Iterable, ParamSpec, Protocol, TypeVar, cast, overload

from . import _native, _ops
from ._ops import ASYNC, SYNC, drive
from ._validate import check_resource, check_ttl, tag_list
from .serializers import codec_for

if TYPE_CHECKING:
    from ._native import Key
    from .manager import CacheManager

MISS = _native.MISS
P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class CachedFunction(Protocol[P, R_co]):
    """What ``@cache.cached(...)`` makes of a plain function: called like it, plus:"""

    resource: str
    signature: inspect.Signature

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    @property
    def uncached(self) -> Callable[P, R_co]:
        """The function itself: runs it, reads and writes no cache."""

    def key(self, *args: P.args, **kwargs: P.kwargs) -> Key:
        """The key a call with these arguments reads."""

    def warm(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Runs the function now and caches what it returns, fresh or not."""

    def invalidate(self, *args: Any, **kwargs: Any) -> int:
        """Invalidates every key whose leading arguments are these (none: the resource)."""

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> CachedFunction[P, R_co]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> CachedFunction[..., R_co]: ...


class AsyncCachedFunction(Protocol[P, R_co]):
    """What ``@cache.cached(...)`` makes of a coroutine function returning R_co."""

    resource: str
    signature: inspect.Signature

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...

    @property
    def uncached(self) -> Callable[P, Coroutine[Any, Any, R_co]]:
        """The function itself: runs it, reads and writes no cache."""

    def key(self, *args: P.args, **kwargs: P.kwargs) -> Key:
        """The key a call with these arguments reads."""

    def warm(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]:
        """Runs the function now and caches what it returns, fresh or not."""

    def invalidate(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, int]:
        """Invalidates every key whose leading arguments are these (none: the resource)."""

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> AsyncCachedFunction[P, R_co]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> AsyncCachedFunction[..., R_co]: ...


class CachedDecorator(Protocol):
    """``cache.cached(resource, ...)``: applied to a function, caches its results."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncCachedFunction[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[P, R], /) -> CachedFunction[P, R]: ...


# tags=: fixed tags, or a callable taking the function's own arguments that returns them.
Tags = Iterable[str] | Callable[..., Iterable[str]] | None


def cached(m: CacheManager, resource: str, *, tags: Tags = None, ttl: float | None = None,
           ignore: Iterable[str] = ()) -> CachedDecorator:
    ignore = frozenset([ignore] if isinstance(ignore, str) else ignore)
    ttl = check_ttl(ttl)
    check_resource(resource)
    if tags is not None and not callable(tags):
        static_tags = tag_list(tags)
        tags = None
    else:
        static_tags = []

    def decorate(fn: Callable[..., Any]) -> Any:
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
        lookup, make_key, lookup_values, key_values = _native.callsite(m._engine, resource, params)
        # The return annotation decides how values encode and decode (serializers.codec_for).
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None  # where it is decorated: names a string annotation may use
        codec = codec_for(m._serializer, fn, m._codec, lambda loads: m._engine.set_decoder(resource, loads),
                          dict(caller.f_locals) if caller is not None else None)
        if codec is not m._codec:
            m._codecs[resource] = codec

        def tags_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
            return static_tags + _call_tags(resource, tags, args, kwargs) if tags is not None else static_tags

        def prefix_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
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

        is_async = inspect.iscoroutinefunction(fn)

        # A miss remembers how to load its key again, for invalidate(..., rewarm=True).
        async def miss_async(key: Any, loader: Callable[[], Any], tag_list: list[str]) -> Any:
            m._ready()
            m._warming.remember(key, loader, tag_list, ttl)
            return await _ops.get_or_load(m, ASYNC, key, loader, tag_list, ttl, counted=False)

        def miss_sync(key: Any, loader: Callable[[], Any], tag_list: list[str]) -> Any:
            m._ready()
            m._warming.remember(key, loader, tag_list, ttl)
            return drive(_ops.get_or_load(m, SYNC, key, loader, tag_list, ttl, counted=False))

        wrapper: Any = _generated_wrapper(
            fn, signature, [p[4] for p in params], is_async,
            lookup_values, key_values, miss_async if is_async else miss_sync,
            (lambda *a, **k: static_tags + _call_tags(resource, tags, a, k)) if tags is not None else (lambda *a, **k: static_tags),
        )
        if wrapper is None and is_async:

            @functools.wraps(fn)
            async def generic_async(*args: Any, **kwargs: Any) -> Any:
                value = lookup(args, kwargs)
                if value is not MISS:
                    return value
                return await miss_async(make_key(args, kwargs), lambda: fn(*args, **kwargs), tags_for(args, kwargs))

            wrapper = generic_async

        elif wrapper is None:

            @functools.wraps(fn)
            def generic_sync(*args: Any, **kwargs: Any) -> Any:
                value = lookup(args, kwargs)
                if value is not MISS:
                    return value
                return miss_sync(make_key(args, kwargs), lambda: fn(*args, **kwargs), tags_for(args, kwargs))

            wrapper = generic_sync

        async def invalidate_async(*args: Any, **kwargs: Any) -> int:
            return await m.invalidate(resource, *prefix_of(args, kwargs))

        async def warm_async(*args: Any, **kwargs: Any) -> Any:
            m._ready()
            key, loader, tags = make_key(args, kwargs), lambda: fn(*args, **kwargs), tags_for(args, kwargs)
            m._warming.remember(key, loader, tags, ttl)
            return await _ops.load(m, ASYNC, key, loader, tags, ttl, refresh=True)

        def invalidate_sync(*args: Any, **kwargs: Any) -> int:
            return m.sync.invalidate(resource, *prefix_of(args, kwargs))

        def warm_sync(*args: Any, **kwargs: Any) -> Any:
            m._ready()
            key, loader, tags = make_key(args, kwargs), lambda: fn(*args, **kwargs), tags_for(args, kwargs)
            m._warming.remember(key, loader, tags, ttl)
            return drive(_ops.load(m, SYNC, key, loader, tags, ttl, refresh=True))

        wrapper.key = lambda *args, **kwargs: make_key(args, kwargs)
        wrapper.key_prefix = lambda *args, **kwargs: prefix_of(args, kwargs)  # what invalidate() passes on
        wrapper.invalidate = invalidate_async if is_async else invalidate_sync
        wrapper.warm = warm_async if is_async else warm_sync
        wrapper.uncached = fn
        wrapper.resource = resource
        wrapper.signature = signature
        m._registering(resource)
        m._registry[resource] = wrapper
        return wrapper

    return cast(CachedDecorator, decorate)


_SIMPLE_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _generated_wrapper(fn: Callable[..., Any], signature: inspect.Signature, in_key: list[bool], is_async: bool,
                       lookup_values: Callable[..., Any], key_values: Callable[..., Any], miss: Callable[..., Any],
                       tags_of: Callable[..., list[str]]) -> Callable[..., Any] | None:
    """A wrapper with `fn`'s own parameters, so CPython binds the call (defaults, keywords)
    and the key's values go to the native lookup as plain arguments: no *args tuple, no
    **kwargs dict, no binding work per call. None for signatures with *args/**kwargs,
    which take the generic path."""
    parameters = list(signature.parameters.values())
    if any(p.kind not in _SIMPLE_KINDS or p.name.startswith("_hc_") for p in parameters):
        return None
    namespace: dict[str, Any] = {
        "_hc_lookup": lookup_values, "_hc_key": key_values, "_hc_miss": miss, "_hc_fn": fn,
        "_hc_tags": tags_of, "_hc_MISS": MISS,
    }
    declared, call = [], []
    for i, p in enumerate(parameters):
        if p.kind == inspect.Parameter.KEYWORD_ONLY and "*" not in declared:
            declared.append("*")
        if p.default is not inspect.Parameter.empty:
            namespace[f"_hc_default{i}"] = p.default
            declared.append(f"{p.name}=_hc_default{i}")
        else:
            declared.append(p.name)
        call.append(f"{p.name}={p.name}" if p.kind == inspect.Parameter.KEYWORD_ONLY else p.name)
        if p.kind == inspect.Parameter.POSITIONAL_ONLY and (
            i + 1 == len(parameters) or parameters[i + 1].kind != inspect.Parameter.POSITIONAL_ONLY
        ):
            declared.append("/")
    values = ", ".join(p.name for p, keyed in zip(parameters, in_key) if keyed)
    args = ", ".join(call)
    source = (
        f"{'async ' if is_async else ''}def wrapper({', '.join(declared)}):\n"
        f"    value = _hc_lookup({values})\n"
        f"    if value is not _hc_MISS:\n"
        f"        return value\n"
        f"    return {'await ' if is_async else ''}_hc_miss(_hc_key({values}), lambda: _hc_fn({args}), _hc_tags({args}))\n"
    )
    exec(compile(source, f"<herdcache wrapper of {fn.__qualname__}>", "exec"), namespace)  # noqa: S102 - fixed template
    return functools.wraps(fn)(namespace["wrapper"])


def _call_tags(resource: str, tags: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    """A cached function's tags= callable, called with the call's arguments. What it
    raises says which cached function's tags failed (nothing is loaded or stored then)."""
    try:
        return tag_list(tags(*args, **kwargs))
    except Exception as exc:
        where = f"tags= of cached function {resource!r} failed: it is called with the function's own arguments"
        if hasattr(exc, "add_note"):  # Python 3.11+: the same exception, with where it came from
            exc.add_note(where)
            raise
        said = _same_type_saying(exc, f"{where}: {exc}")  # 3.10: no notes
        if said is None:
            raise
        raise said from exc


def _same_type_saying(exc: Exception, message: str) -> Exception | None:
    """An exception of `exc`'s type with `message`; None for a type that is not made from
    a message alone (UnicodeDecodeError, an exception class of the app's own)."""
    try:
        said = type(exc)(message)
    except Exception:
        return None
    return said if str(said) == message else None
