"""CacheManager: the async-first public API (see DESIGN.md, "Public Python API").

The manager is a thin shell around the native engine: it validates arguments, owns the
serializer, the decorated-function registry and the background tasks, and runs Python
loaders. Every cache decision is the engine's.
"""

from __future__ import annotations

import asyncio
import collections.abc
import difflib
import warnings
import concurrent.futures
import math
import threading
import uuid
import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Callable

from . import _native, _ops, _otel
from ._ops import ASYNC
from ._native import Key, Policy
from ._bulkhead import Bulkhead
from ._warming import Warming, WarmHandle
from ._workers import announce_memory_only
from ._validate import (check_delta, check_items, check_key, check_keys, check_loader, check_pattern, check_resource, check_ttl,
                        tag_list)
from .serializers import Codec, Serializer

if TYPE_CHECKING:
    from .decorators import CachedDecorator, Tags

_NEW, _STARTED, _CLOSED = "new", "started", "closed"
WRITE_DRAIN_S = 5.0  # how long close() waits for background writes (each ends by its command timeout)
log = logging.getLogger("herdcache")
collections.abc.Coroutine.register(_native.GetCall)  # what create_task and asyncio.run accept


class UnknownResource(_native.CacheError, LookupError):
    """No decorated function is registered for the resource (warm needs one)."""


class CacheManager:
    def __init__(
        self,
        redis_url: str | None = None,
        namespace: str = "app",
        policies: Mapping[str, Policy] | None = None,
        default_policy: Policy | None = None,
        memory_max_bytes: int = 64 * 2**20,
        serializer: str | Serializer = "json",
        signing_key: bytes | None = None,
        lock_timeout: float = 10.0,
        max_concurrent_loads: int | None = None,
        *,
        slow_load_threshold: float = 1.0,
        clock: _native.ManualClock | None = None,
    ) -> None:
        if redis_url is not None and not isinstance(redis_url, str):
            raise TypeError(f"redis_url must be a str or None, got {type(redis_url).__name__}")
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str, got {type(namespace).__name__}")
        if isinstance(memory_max_bytes, bool) or not isinstance(memory_max_bytes, int) or memory_max_bytes <= 0:
            raise ValueError(f"memory_max_bytes must be a positive int, got {memory_max_bytes!r}")
        if default_policy is None:
            default_policy = Policy(ttl=300)
        if not isinstance(default_policy, Policy):
            raise TypeError(f"default_policy must be a Policy, got {type(default_policy).__name__}")
        policies = dict(policies or {})
        for name, policy in policies.items():
            if not isinstance(name, str) or not isinstance(policy, Policy):
                raise TypeError(f"policies must map resource names to Policy objects, got {name!r}: {policy!r}")
        if not isinstance(lock_timeout, (int, float)) or not math.isfinite(lock_timeout) or lock_timeout <= 0:
            raise ValueError(f"lock_timeout must be a finite number of seconds > 0, got {lock_timeout!r}")
        if max_concurrent_loads is not None and (
            isinstance(max_concurrent_loads, bool) or not isinstance(max_concurrent_loads, int) or max_concurrent_loads < 1
        ):
            raise ValueError(f"max_concurrent_loads must be None or an int >= 1, got {max_concurrent_loads!r}")

        if not isinstance(slow_load_threshold, (int, float)) or not slow_load_threshold > 0:
            raise ValueError(f"slow_load_threshold must be a number of seconds > 0, got {slow_load_threshold!r}")

        if signing_key is not None and (not isinstance(signing_key, (bytes, bytearray)) or len(signing_key) < 16):
            raise ValueError("signing_key must be bytes of at least 16 bytes")
        self._signing_key = bytes(signing_key or b"")
        self._codec = Codec(serializer)
        self._serializer = serializer
        self._codecs: dict[str, Codec] = {}  # a cached function's resource -> its codec, where it has its own
        self._engine = _native.Engine(namespace, memory_max_bytes, default_policy, clock)
        self._engine.set_plain_loads(self._codec.plain_loads)
        for name, policy in policies.items():
            self._engine.set_policy(name, policy)
        self._policy_names = frozenset(policies)
        self._typo_warned = False
        self.namespace = namespace
        self.redis_url = redis_url or None
        self.lock_timeout = float(lock_timeout)
        self.max_concurrent_loads = max_concurrent_loads
        self._bulkhead = Bulkhead(max_concurrent_loads, self.lock_timeout) if max_concurrent_loads else None
        self.slow_load_threshold = float(slow_load_threshold)
        self._state = _NEW
        self._instance_id = uuid.uuid4().hex
        self._bridges: dict[asyncio.AbstractEventLoop, _native.Bridge] = {}
        self._has_redis = False
        self._registry: dict[str, Any] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        # Redis writes of loaded values, answered in the background (bridge futures, or
        # executor futures for blocking callers): close() lets them finish.
        self._writes: set[asyncio.Future[Any] | concurrent.futures.Future[Any]] = set()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._counter_lock = threading.Lock()  # memory-only increments
        self._warming = Warming(self)
        from .sync import SyncCache

        self.sync = SyncCache(self)
        _otel.register(self)  # its counters in the OTel metrics, with the `otel` extra
        if type(self).get is CacheManager.get:  # a subclass's own get() stays in charge
            # get() without Python frames: the same steps as the method, in the engine
            # (cpp/bindings/register_get.cpp); anything but a Key goes to the method.
            # (The type checker sees the method: the native get takes the same arguments.)
            self.get = _native.getter(self, self._engine, CacheManager.get.__get__(self), _ops.finish_read,  # type: ignore[method-assign]
                                      self._bridges, self._bridge, _STARTED)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._start()

    async def close(self) -> None:
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._warming.close()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # Each write is answered within the command timeout; the bound is a backstop.
        writes = [w for w in self._writes if isinstance(w, asyncio.Future) and not w.done()]
        if writes:
            await asyncio.wait(writes, timeout=WRITE_DRAIN_S)
        self._close()

    async def __aenter__(self) -> CacheManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._state == _CLOSED

    def _start(self) -> None:
        if self._state == _CLOSED:
            raise RuntimeError("the cache manager is closed")
        if self._state == _NEW and self.redis_url:
            # Connecting happens on the engine's I/O thread; nothing here waits for it.
            self._engine.connect_redis(self.redis_url, self._instance_id, signing_key=self._signing_key)
            self._has_redis = True
        elif self._state == _NEW:
            announce_memory_only(self.namespace)  # warns when other processes share it
        self._state = _STARTED

    def _close(self) -> None:
        self._state = _CLOSED
        self._warming.close()  # (close() did already; cache.sync.close() did not)
        for loop, bridge in list(self._bridges.items()):
            if not loop.is_closed():
                try:
                    running = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if running is loop:
                    loop.remove_reader(bridge.fd)
                else:
                    loop.call_soon_threadsafe(loop.remove_reader, bridge.fd)
        pending = [w for w in self._writes if isinstance(w, concurrent.futures.Future)]
        if pending:
            concurrent.futures.wait(pending, timeout=WRITE_DRAIN_S)
        self._bridges.clear()
        self._engine.close()
        self._flush_logs()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _ready(self) -> None:
        if self._state != _STARTED:
            self._start()

    # --- keys --------------------------------------------------------------------------

    def key(self, resource: str, *args: Any, **params: Any) -> Key:
        self._ready()
        return self._engine.key(check_resource(resource), args, params)

    # --- reads and writes ---------------------------------------------------------------

    async def get(self, key: Key) -> Any:
        if self._state != _STARTED:
            self._start()
        return await _ops.get(self, ASYNC, key if type(key) is Key else check_key(key))

    async def set(self, key: Key, value: Any, ttl: float | None = None, tags: Iterable[str] = ()) -> None:
        self._ready()
        await _ops.store(self, ASYNC, check_key(key), value, tag_list(tags), check_ttl(ttl))

    async def get_many(self, keys: Iterable[Key]) -> list[Any]:
        """Each key's value or None, in order; the keys memory does not hold are read from
        Redis in one round trip."""
        self._ready()
        return await _ops.get_many(self, ASYNC, check_keys(keys))

    async def set_many(self, items: Mapping[Key, Any], ttl: float | None = None, tags: Iterable[str] = ()) -> None:
        """set() of every item, written to Redis in one round trip. Nothing is stored when
        a value cannot be serialized."""
        self._ready()
        await _ops.store_many(self, ASYNC, check_items(items), tag_list(tags), check_ttl(ttl))

    async def delete_many(self, keys: Iterable[Key]) -> int:
        """Deletes every key (in one round trip to Redis); how many of them existed."""
        self._ready()
        return sum(n > 0 for n in await _ops.invalidate_many(self, ASYNC, self._deletes_local(keys)))

    async def incr(self, key: Key, delta: int = 1, ttl: float | None = None, tags: Iterable[str] = ()) -> int:
        """Adds `delta` to the integer `key` holds (absent: 0); the new value. Atomic across
        processes with Redis, where the entry keeps its lifetime unless `ttl` is given. A
        value that is not an integer is a TypeError and stays as it is."""
        self._ready()
        return await _ops.incr(self, ASYNC, check_key(key), check_delta(delta), tag_list(tags), check_ttl(ttl))

    async def decr(self, key: Key, delta: int = 1, ttl: float | None = None, tags: Iterable[str] = ()) -> int:
        self._ready()
        return await _ops.incr(self, ASYNC, check_key(key), -check_delta(delta), tag_list(tags), check_ttl(ttl))

    async def add(self, key: Key, value: Any, ttl: float | None = None, tags: Iterable[str] = ()) -> bool:
        """Stores `value` only if `key` holds nothing; atomic across processes with Redis."""
        self._ready()
        return await _ops.add(self, ASYNC, check_key(key), value, tag_list(tags), check_ttl(ttl))

    async def compare_and_set(self, key: Key, expected: Any, value: Any, ttl: float | None = None,
                              tags: Iterable[str] = ()) -> bool:
        """Replaces the value of `key` only if it is `expected` (compared serialized);
        atomic across processes with Redis. The building block of counters (Django's incr)."""
        self._ready()
        return await _ops.compare_and_set(self, ASYNC, check_key(key), expected, value, tag_list(tags), check_ttl(ttl))

    async def get_or_load(self, key: Key, loader: Callable[[], Any], tags: Iterable[str] = (), ttl: float | None = None,
                          depends_on: Iterable[Key] = ()) -> Any:
        """The cached value, or the loader's, stored. The entry depends on each key of
        `depends_on`, and on every key read through the cache while the loader runs:
        invalidating one of those invalidates it too, in every instance."""
        self._ready()
        check_loader(loader)
        tags = _ops.with_dependencies(self, tag_list(tags), check_keys(depends_on)) if depends_on else tag_list(tags)
        return await _ops.get_or_load(self, ASYNC, check_key(key), loader, tags, check_ttl(ttl))

    async def delete(self, key: Key) -> bool:
        self._ready()
        return await self._invalidate(ASYNC, *self._delete_local(key)) > 0

    async def invalidate(self, resource: str, *prefix: Any, rewarm: bool = False) -> int:
        """Every key of the resource with that prefix of args. rewarm=True then reloads
        what it removed that this instance held (herdcache._warming)."""
        self._ready()
        return await self._invalidating(ASYNC, lambda: self._invalidate_local(resource, prefix), rewarm,
                                        (resource, prefix))

    async def invalidate_tags(self, *tags: str, rewarm: bool = False) -> int:
        self._ready()
        return await self._invalidating(ASYNC, lambda: self._tags_local(tags), rewarm)

    def schedule_warm(self, resource: str, *args: Any, every: float, **params: Any) -> WarmHandle:
        """Re-runs the loader registered for `resource` with these arguments every `every`
        seconds, once per period across instances, until handle.cancel() or close().
        Needs a running event loop."""
        fn = self._warm_target(resource, every)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("schedule_warm needs a running event loop (call it from async code, "
                               "or use cache.sync.schedule_warm)") from None
        handle = WarmHandle(self, fn, args, params, float(every))
        handle.start()
        return handle

    def _warm_target(self, resource: str, every: float) -> Any:
        """schedule_warm's checks (both facades): the registered cached function."""
        self._ready()
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not math.isfinite(every) or every <= 0:
            raise ValueError(f"every must be a finite number of seconds > 0, got {every!r}")
        return self.registered(resource)

    async def invalidate_pattern(self, pattern: str) -> int:
        self._ready()
        return await self._invalidate(ASYNC, *self._pattern_local(pattern))

    async def clear(self) -> int:
        self._ready()
        return await self._invalidate(ASYNC, *self._clear_local())

    async def warm(self, resource: str, *args: Any, **params: Any) -> Any:
        self._ready()
        fn = self.registered(resource)
        result = fn.warm(*args, **params)
        return await result if asyncio.iscoroutine(result) else result

    def stats(self) -> dict[str, Any]:
        self._ready()
        stats = self._engine.stats()
        self._flush_logs()
        stats["redis"] = self._engine.redis_stats() or {
            "configured": False, "connected": False, "latency_ms": None, "circuit": "disabled", "errors": 0}
        stats["background_tasks"] = len(self._tasks)
        stats["warming"] = self._warming.stats()
        return stats

    # --- decorators --------------------------------------------------------------------

    def cached(self, resource: str, *, tags: Tags = None, ttl: float | None = None,
               ignore: Iterable[str] = ()) -> CachedDecorator:
        """Caches a function's results under `resource`; see herdcache.decorators."""
        from .decorators import cached

        return cached(self, resource, tags=tags, ttl=ttl, ignore=ignore)

    def _codec_of(self, resource: str) -> Codec:
        return self._codecs.get(resource, self._codec)

    def _where(self, resource: str) -> str:
        """How errors name a resource: by its cached function, where it has one."""
        fn = self._registry.get(resource)
        return f"{fn.__qualname__} (resource {resource!r})" if fn is not None else f"resource {resource!r}"

    def _registering(self, resource: str) -> None:
        """Warns once when a cached function's resource has no policy while a policy's
        name, used by no cached function, is close to it: a typo ("room" for "rooms")
        silently gives the function the default policy."""
        if self._typo_warned or resource in self._policy_names:
            return
        unused = sorted(self._policy_names - set(self._registry))
        close = difflib.get_close_matches(resource, unused, n=3, cutoff=0.75)
        if close:
            self._typo_warned = True
            warnings.warn(
                f"cached function {resource!r} has no policy and takes the default one, while policies "
                f"{close} name no cached function: a typo? (policies without a function: {unused})",
                UserWarning, stacklevel=4,
            )

    def registered(self, resource: str) -> Any:
        """The decorated function registered for `resource` (UnknownResource if none)."""
        try:
            return self._registry[resource]
        except KeyError:
            raise UnknownResource(f"no cached function is registered for resource {resource!r}") from None

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self._registry)

    def known_resources(self) -> frozenset[str]:
        """Every resource this manager knows of: its cached functions', its policies', and
        any it has stored or read entries of (admin and CLI invalidations refuse others)."""
        return frozenset(self._registry) | self._policy_names | frozenset(self._engine.stats()["resources"])

    # --- internals shared with the sync facade, the decorators and _ops ------------------

    # Invalidations apply to this instance's memory at once, then go to Redis (which
    # broadcasts them). Each *_local returns (the Invalidation for Redis, entries removed here).
    def _delete_local(self, key: Any) -> tuple[_native.Invalidation, int]:
        key = check_key(key)
        return _native.Invalidation.key(str(key)), self._engine.invalidate_key(key)

    def _deletes_local(self, keys: Iterable[Key]) -> list[tuple[_native.Invalidation, int]]:
        keys = check_keys(keys)  # every key checked before any is deleted
        return [self._delete_local(key) for key in keys]

    def _invalidate_local(self, resource: str, prefix: tuple[Any, ...]) -> tuple[_native.Invalidation, int]:
        canonical = self._engine.canonical_prefix(check_resource(resource), prefix)
        return _native.Invalidation.prefix(resource, canonical), self._engine.invalidate(resource, prefix)

    def _tags_local(self, tags: Any) -> tuple[_native.Invalidation, int]:
        tags = tag_list(tags)
        if not tags:
            raise ValueError("invalidate_tags needs at least one tag")
        return _native.Invalidation.tags(tags), self._engine.invalidate_tags(tags)

    def _pattern_local(self, pattern: Any) -> tuple[_native.Invalidation, int]:
        pattern = check_pattern(pattern)
        return _native.Invalidation.pattern(pattern), self._engine.invalidate_pattern(pattern)

    def _clear_local(self) -> tuple[_native.Invalidation, int]:
        return _native.Invalidation.clear(), self._engine.clear()

    def _invalidate(self, mode: Any, invalidation: _native.Invalidation, removed: int) -> Coroutine[Any, Any, int]:
        return _ops.invalidate(self, mode, invalidation, removed)

    async def _invalidating(self, mode: Any, local: Callable[[], tuple[_native.Invalidation, int]], rewarm: bool,
                            named: tuple[str, tuple[Any, ...]] | None = None) -> int:
        """An invalidation (`local` applies it here), then with `rewarm` the reload of what
        it removed (and of the key `named` names, if it is one). Both modes: in sync mode
        it never suspends."""
        present = self._warming.present() if rewarm else []
        count = await _ops.invalidate(self, mode, *local())
        if rewarm:
            await self._warming.rewarm(mode, present, named)
        return count

    def _bridge(self) -> _native.Bridge:
        loop = asyncio.get_running_loop()
        bridge = self._bridges.get(loop)
        if bridge is None:
            bridge = _native.Bridge(loop, self._engine)

            def on_ready() -> None:
                bridge.drain()
                self._flush_logs()

            loop.add_reader(bridge.fd, on_ready)
            self._bridges[loop] = bridge
        return bridge

    def _shared_fault(self, key: Key | None, error: str) -> None:
        """Redis could not answer: counted, served from memory, never raised."""
        if key is not None:
            self._engine.count(key.resource, "errors")
        self._flush_logs()

    def _flush_logs(self) -> None:
        for level, line in self._engine.drain_logs() if self.redis_url else ():
            log.log(level, line)

    def _track(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._tasks.add(task)
        task.add_done_callback(self._untrack)
        return task

    def _untrack(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # its flight's callers got it; the task's own copy is not an error

    def _lease_token(self, flight_id: int) -> str:
        """The lease token of a flight: unique across processes (the instance id) and
        flights (the engine's flight id), and the same each time its load starts over."""
        return f"{self._instance_id[:12]}.{flight_id}"

    def _track_write(self, write: Any) -> None:
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="herdcache-refresh")
            return self._pool

    def _run_coroutine(self, coro: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_await(coro))
        coro.close()
        raise RuntimeError("an async loader cannot run from cache.sync inside a running event loop; await the async API")


async def _await(awaitable: Any) -> Any:
    return await awaitable

