"""cache.sync: the manager's methods, blocking, for threads, WSGI code and Django.

Each method runs the same code as its async twin (herdcache._ops) in blocking mode: a
Redis round trip blocks the calling thread with the GIL released.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Iterable

from . import _ops
from ._ops import SYNC, drive
from ._validate import check_delta, check_items, check_key, check_keys, check_loader, check_ttl, tag_list
from ._warming import SyncWarmHandle

if TYPE_CHECKING:
    from ._native import Key
    from .manager import CacheManager


class SyncCache:
    __slots__ = ("_m",)

    def __init__(self, manager: CacheManager) -> None:
        self._m = manager

    def start(self) -> None:
        self._m._start()

    def close(self) -> None:
        self._m._close()

    def key(self, resource: str, *args: Any, **params: Any) -> Key:
        return self._m.key(resource, *args, **params)

    def get(self, key: Key) -> Any:
        self._m._ready()
        return drive(_ops.get(self._m, SYNC, check_key(key)))

    def set(self, key: Key, value: Any, ttl: float | None = None, tags: Iterable[str] = ()) -> None:
        self._m._ready()
        drive(_ops.store(self._m, SYNC, check_key(key), value, tag_list(tags), check_ttl(ttl)))

    def get_many(self, keys: Iterable[Key]) -> list[Any]:
        self._m._ready()
        return drive(_ops.get_many(self._m, SYNC, check_keys(keys)))

    def set_many(self, items: Mapping[Key, Any], ttl: float | None = None, tags: Iterable[str] = ()) -> None:
        self._m._ready()
        drive(_ops.store_many(self._m, SYNC, check_items(items), tag_list(tags), check_ttl(ttl)))

    def delete_many(self, keys: Iterable[Key]) -> int:
        self._m._ready()
        return sum(n > 0 for n in drive(_ops.invalidate_many(self._m, SYNC, self._m._deletes_local(keys))))

    def incr(self, key: Key, delta: int = 1, ttl: float | None = None, tags: Iterable[str] = ()) -> int:
        self._m._ready()
        return drive(_ops.incr(self._m, SYNC, check_key(key), check_delta(delta), tag_list(tags), check_ttl(ttl)))

    def decr(self, key: Key, delta: int = 1, ttl: float | None = None, tags: Iterable[str] = ()) -> int:
        self._m._ready()
        return drive(_ops.incr(self._m, SYNC, check_key(key), -check_delta(delta), tag_list(tags), check_ttl(ttl)))

    def add(self, key: Key, value: Any, ttl: float | None = None, tags: Iterable[str] = ()) -> bool:
        self._m._ready()
        return drive(_ops.add(self._m, SYNC, check_key(key), value, tag_list(tags), check_ttl(ttl)))

    def compare_and_set(self, key: Key, expected: Any, value: Any, ttl: float | None = None,
                        tags: Iterable[str] = ()) -> bool:
        self._m._ready()
        return drive(_ops.compare_and_set(self._m, SYNC, check_key(key), expected, value, tag_list(tags), check_ttl(ttl)))

    def get_or_load(self, key: Key, loader: Callable[[], Any], tags: Iterable[str] = (), ttl: float | None = None,
                    depends_on: Iterable[Key] = ()) -> Any:
        self._m._ready()
        check_loader(loader)
        tags = _ops.with_dependencies(self._m, tag_list(tags), check_keys(depends_on)) if depends_on else tag_list(tags)
        return drive(_ops.get_or_load(self._m, SYNC, check_key(key), loader, tags, check_ttl(ttl)))

    def delete(self, key: Key) -> bool:
        self._m._ready()
        return drive(self._m._invalidate(SYNC, *self._m._delete_local(key))) > 0

    def invalidate(self, resource: str, *prefix: Any, rewarm: bool = False) -> int:
        self._m._ready()
        return drive(self._m._invalidating(SYNC, lambda: self._m._invalidate_local(resource, prefix), rewarm,
                                           (resource, prefix)))

    def invalidate_tags(self, *tags: str, rewarm: bool = False) -> int:
        self._m._ready()
        return drive(self._m._invalidating(SYNC, lambda: self._m._tags_local(tags), rewarm))

    def invalidate_pattern(self, pattern: str) -> int:
        self._m._ready()
        return drive(self._m._invalidate(SYNC, *self._m._pattern_local(pattern)))

    def clear(self) -> int:
        self._m._ready()
        return drive(self._m._invalidate(SYNC, *self._m._clear_local()))

    def warm(self, resource: str, *args: Any, **params: Any) -> Any:
        self._m._ready()
        fn = self._m.registered(resource)
        result = fn.warm(*args, **params)
        return self._m._run_coroutine(result) if hasattr(result, "__await__") else result

    def schedule_warm(self, resource: str, *args: Any, every: float, **params: Any) -> SyncWarmHandle:
        """CacheManager.schedule_warm without an event loop: a daemon thread re-runs the
        registered loader once per period across instances, until handle.cancel() or close()."""
        handle = SyncWarmHandle(self._m, self._m._warm_target(resource, every), args, params, float(every))
        handle.start()
        return handle

    def stats(self) -> dict[str, Any]:
        return self._m.stats()
