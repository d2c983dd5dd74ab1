"""herdcache as a Django cache backend.

    CACHES = {
        "default": {
            "BACKEND": "herdcache.django.HerdCache",
            "LOCATION": "redis://localhost:6379/0",   # or "" for the memory tier alone
            "TIMEOUT": 300,
            "OPTIONS": {"namespace": "shop", "memory_max_bytes": 64 * 2**20},
        }
    }

Django's semantics throughout, as its own locmem and Redis backends have them: TIMEOUT is
the default, ``None`` keeps a value forever, ``0`` or less expires it at once (deletes);
KEY_PREFIX, VERSION and KEY_FUNCTION build keys through ``make_and_validate_key`` (so
memcached-unsafe keys warn with CacheKeyWarning); every ``get`` returns a fresh copy.

Values are serialized by the backend (``OPTIONS["serializer"]``, pickle by default, as in
Django's own backends: whoever configures ``CACHES`` trusts what the cache holds; set
``signing_key`` if others can write to the Redis) and stored through the manager as bytes,
with their absolute expiry in front, so ``touch`` can keep or move it. Integers (within
+-(2**53 - 1)) are stored as themselves instead, their decimal digits, with the entry's
own lifetime as their expiry: what the manager's atomic ``incr`` (Redis' INCRBY in a
script that keeps the lifetime) adds to.

``caches["default"].herd`` is the CacheManager behind it: coalesced loads, tags,
``@herd.cached`` (its values use the same serializer for Redis). ``get_or_set`` with a
callable is coalesced: one caller runs it, concurrent callers wait for its value.

With LOCATION empty, Django's keys live in the memory tier (one process). With a Redis
URL they live in Redis only, read on every ``get`` as with Django's own Redis backend:
a value set by one process must be what the very next request reads in any other
(sessions), and the broadcast that drops other instances' memory copies after a write
arrives a moment later. Resources of ``.herd`` keep both tiers.

Every backend instance with the same LOCATION and OPTIONS shares one manager (Django
makes an instance per thread and calls ``close()`` after every request): ``close()``
leaves it running. MAX_ENTRIES / CULL_FREQUENCY do not apply: the memory tier is bounded
in bytes (``memory_max_bytes``).

``add``, ``incr``, ``decr`` and ``touch`` are atomic across threads and (with Redis)
processes, sync and async:
``add`` is the manager's set-if-absent (SET NX semantics in Redis), ``incr`` of an integer
is the manager's ``incr``, and ``touch`` (and ``incr`` of another number, a float or an
integer beyond the counters' range stored pickled) retry a compare-and-set of the stored
bytes until it lands. As in Django's Redis backend, ``incr`` checks that the key exists,
then increments: a key deleted in between comes back holding ``delta``.
"""

from __future__ import annotations

import asyncio
import math
import struct
import threading
import time
from typing import Any, Callable

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import CacheError, CacheManager, Key, Policy
from ._validate import MAX_COUNTER
from .serializers import Serializer, resolve

RESOURCE = "django"  # the manager resource Django's keys live under
FOREVER = 100 * 365 * 86400.0  # timeout=None: the longest TTL the engine is given
MANAGER_OPTIONS = frozenset(
    {"namespace", "policies", "default_policy", "memory_max_bytes", "signing_key", "lock_timeout",
     "max_concurrent_loads", "clock"}
)
_EXPIRY = struct.Struct("!d")  # absolute wall-clock expiry in seconds; inf = never

_managers: dict[tuple[str, str], CacheManager] = {}
CAS_ATTEMPTS = 1000  # compare-and-set rounds before touch/incr give up under contention
_managers_lock = threading.Lock()


class HerdCache(BaseCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = dict(params.get("OPTIONS") or {})
        for name in ("MAX_ENTRIES", "CULL_FREQUENCY"):
            if name in options:
                raise ImproperlyConfigured(f"herdcache: OPTIONS[{name!r}] does not apply; the memory tier is bounded "
                                           "in bytes: set OPTIONS['memory_max_bytes']")
        unknown = set(options) - MANAGER_OPTIONS - {"serializer"}
        if unknown:
            raise ImproperlyConfigured(f"herdcache: unknown OPTIONS {sorted(unknown)}; "
                                       f"known: {sorted(MANAGER_OPTIONS | {'serializer'})}")
        self._serializer = _serializer(options.get("serializer", "pickle"))
        clock = options.get("clock")
        self._now: Callable[[], float] = clock.time if clock is not None else time.time
        self.herd = _shared_manager(server or "", options, self._serializer)
        self._sync = self.herd.sync

    # --- encoding -----------------------------------------------------------------------

    def _key(self, key: Any, version: int | None) -> Key:
        return self.herd.key(RESOURCE, self.make_and_validate_key(key, version=version))

    def _ttl(self, timeout: Any) -> float | None:
        """Seconds to live, or None for forever; <= 0 means expire now."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else float(timeout)

    def _stored(self, value: Any, ttl: float | None) -> bytes | int:
        """What the manager stores for `value`: a counter as itself, anything else packed."""
        return value if _is_counter(value) else self._pack(value, ttl)

    def _value(self, stored: bytes | int) -> Any:
        return self._unpack(stored) if isinstance(stored, bytes) else stored

    def _pack(self, value: Any, ttl: float | None) -> bytes:
        expires = math.inf if ttl is None else self._now() + ttl
        return _EXPIRY.pack(expires) + self._serializer.dumps(value)

    def _repack(self, blob: bytes, ttl: float | None) -> bytes:
        return _EXPIRY.pack(math.inf if ttl is None else self._now() + ttl) + blob[_EXPIRY.size :]

    def _unpack(self, blob: bytes) -> Any:
        return self._serializer.loads(blob[_EXPIRY.size :])

    def _remaining(self, blob: bytes) -> float | None:
        (expires,) = _EXPIRY.unpack_from(blob)
        return None if math.isinf(expires) else expires - self._now()

    def _restamped(self, stored: bytes | int, ttl: float | None) -> bytes | int:
        """`stored` with a new expiry (a counter's is its entry's lifetime, given as ttl)."""
        return self._repack(stored, ttl) if isinstance(stored, bytes) else stored

    # --- sync API -----------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        stored = self._sync.get(self._key(key, version))
        return default if stored is None else self._value(stored)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        k, ttl = self._key(key, version), self._ttl(timeout)
        self._write(k, self._stored(value, ttl), ttl)

    def _write(self, k: Key, blob: bytes | int, ttl: float | None) -> None:
        if ttl is not None and ttl <= 0:
            self._sync.delete(k)
        else:
            self._sync.set(k, blob, ttl=FOREVER if ttl is None else ttl)

    # add, touch and incr are atomic across processes: add is the manager's set-if-absent,
    # incr of a counter the manager's incr, touch (and incr of other numbers) compare-and-set
    # loops on the stored bytes.
    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k, ttl = self._key(key, version), self._ttl(timeout)
        if ttl is not None and ttl <= 0:  # stored and expired at once: only "was it absent?"
            return self._sync.get(k) is None
        return self._sync.add(k, self._stored(value, ttl), ttl=FOREVER if ttl is None else ttl)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k, ttl = self._key(key, version), self._ttl(timeout)
        for _ in range(CAS_ATTEMPTS):
            blob = self._sync.get(k)
            if blob is None:
                return False
            if ttl is not None and ttl <= 0:
                return self._sync.delete(k)
            if self._sync.compare_and_set(k, blob, self._restamped(blob, ttl), ttl=FOREVER if ttl is None else ttl):
                return True
        raise _contended(key)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        k = self._key(key, version)
        for _ in range(CAS_ATTEMPTS):
            stored = self._sync.get(k)
            if type(stored) is int and _is_counter(delta):
                try:
                    return self._sync.incr(k, delta)  # atomic; the entry keeps its lifetime
                except TypeError:
                    if type(self._sync.get(k)) is int:
                        raise  # the sum leaves the counters' range: nothing changed
                    continue  # replaced by a value of another type meanwhile
            blob, value, remaining = self._incremented(key, stored, delta)
            ttl = FOREVER if remaining is None else remaining
            if self._sync.compare_and_set(k, blob, self._pack(value, remaining), ttl=ttl):  # keeps the expiry
                return value
        raise _contended(key)

    def _incremented(self, key: Any, stored: bytes | int | None, delta: int) -> tuple[bytes, Any, float | None]:
        """incr of a value stored packed: (what is stored, the sum, the seconds it has left)."""
        if stored is not None and not isinstance(stored, bytes):  # a counter, and a delta incr does not take
            raise TypeError(f"incr of key {key!r}: a counter takes an integer delta within +-(2**53 - 1), "
                            f"got {delta!r}; nothing changed")
        remaining = None if stored is None else self._remaining(stored)
        if stored is None or (remaining is not None and remaining <= 0):
            raise ValueError(f"Key '{key}' not found")
        return stored, self._unpack(stored) + delta, remaining

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._sync.delete(self._key(key, version))

    # The batch methods: the keys memory does not hold go to Redis in one round trip.
    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        keys = list(keys)
        blobs = self._sync.get_many([self._key(key, version) for key in keys])
        return {key: self._value(blob) for key, blob in zip(keys, blobs) if blob is not None}

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        ttl = self._ttl(timeout)
        items = {self._key(key, version): self._stored(value, ttl) for key, value in data.items()}
        if ttl is not None and ttl <= 0:
            self._sync.delete_many(items)
        else:
            self._sync.set_many(items, ttl=FOREVER if ttl is None else ttl)
        return []

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._sync.delete_many([self._key(key, version) for key in keys])

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._sync.get(self._key(key, version)) is not None

    def get_or_set(self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> Any:
        k, ttl = self._key(key, version), self._ttl(timeout)
        if ttl is not None and ttl <= 0:  # nothing is stored; Django returns the default
            blob = self._sync.get(k)
            return self._value(blob) if blob is not None else (default() if callable(default) else default)
        loader = self._loader(default, ttl)
        return self._value(self._sync.get_or_load(k, loader, ttl=FOREVER if ttl is None else ttl))

    def _loader(self, default: Any, ttl: float | None) -> Callable[[], bytes | int]:
        return lambda: self._stored(default() if callable(default) else default, ttl)

    def clear(self) -> None:
        self._sync.clear()  # the whole namespace: what Django's clear() means

    def close(self, **kwargs: Any) -> None:
        """Django calls this after every request; the shared manager keeps running."""

    # --- async API: the manager's own coroutines, no thread hop ------------------------

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        stored = await self.herd.get(self._key(key, version))
        return default if stored is None else self._value(stored)

    async def aset(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        k, ttl = self._key(key, version), self._ttl(timeout)
        await self._awrite(k, self._stored(value, ttl), ttl)

    async def _awrite(self, k: Key, blob: bytes | int, ttl: float | None) -> None:
        if ttl is not None and ttl <= 0:
            await self.herd.delete(k)
        else:
            await self.herd.set(k, blob, ttl=FOREVER if ttl is None else ttl)

    async def aadd(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k, ttl = self._key(key, version), self._ttl(timeout)
        if ttl is not None and ttl <= 0:
            return await self.herd.get(k) is None
        return await self.herd.add(k, self._stored(value, ttl), ttl=FOREVER if ttl is None else ttl)

    async def atouch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k, ttl = self._key(key, version), self._ttl(timeout)
        for _ in range(CAS_ATTEMPTS):
            blob = await self.herd.get(k)
            if blob is None:
                return False
            if ttl is not None and ttl <= 0:
                return await self.herd.delete(k)
            if await self.herd.compare_and_set(k, blob, self._restamped(blob, ttl), ttl=FOREVER if ttl is None else ttl):
                return True
        raise _contended(key)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        k = self._key(key, version)
        for _ in range(CAS_ATTEMPTS):
            stored = await self.herd.get(k)
            if type(stored) is int and _is_counter(delta):
                try:
                    return await self.herd.incr(k, delta)
                except TypeError:
                    if type(await self.herd.get(k)) is int:
                        raise
                    continue
            blob, value, remaining = self._incremented(key, stored, delta)
            ttl = FOREVER if remaining is None else remaining
            if await self.herd.compare_and_set(k, blob, self._pack(value, remaining), ttl=ttl):
                return value
        raise _contended(key)

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        return await self.herd.delete(self._key(key, version))

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return await self.herd.get(self._key(key, version)) is not None

    async def aget_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        keys = list(keys)
        blobs = await self.herd.get_many([self._key(key, version) for key in keys])
        return {key: self._value(blob) for key, blob in zip(keys, blobs) if blob is not None}

    async def aset_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        ttl = self._ttl(timeout)
        items = {self._key(key, version): self._stored(value, ttl) for key, value in data.items()}
        if ttl is not None and ttl <= 0:
            await self.herd.delete_many(items)
        else:
            await self.herd.set_many(items, ttl=FOREVER if ttl is None else ttl)
        return []

    async def adelete_many(self, keys: Any, version: int | None = None) -> None:
        await self.herd.delete_many([self._key(key, version) for key in keys])

    async def aget_or_set(self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> Any:
        k, ttl = self._key(key, version), self._ttl(timeout)
        if ttl is not None and ttl <= 0:
            blob = await self.herd.get(k)
            return self._value(blob) if blob is not None else (default() if callable(default) else default)
        blob = await self.herd.get_or_load(k, self._loader(default, ttl), ttl=FOREVER if ttl is None else ttl)
        return self._value(blob)

    async def aclear(self) -> None:
        await self.herd.clear()

    async def aclose(self, **kwargs: Any) -> None:
        """See close()."""


class _Stored:
    """The manager's serializer: the backend's values arrive as bytes already (kept as
    they are) or as counters (their decimal digits, which Redis increments itself);
    anything else (``@herd.cached`` results) uses the backend's serializer."""

    name = "django"
    counts_in_redis = True  # a counter's payload is its digits

    def __init__(self, values: Serializer) -> None:
        self._values = values

    def dumps(self, value: Any) -> bytes:
        if type(value) is bytes:
            return b"b" + value
        if _is_counter(value):
            return b"%d" % value
        return b"v" + self._values.dumps(value)

    def loads(self, data: bytes) -> Any:
        tag, body = data[:1], data[1:]
        if tag == b"b":
            return bytes(body)
        if tag == b"v":
            return self._values.loads(body)
        if tag and tag in b"-0123456789":
            return int(data)
        raise ValueError("not a herdcache.django payload")


def _is_counter(value: Any) -> bool:
    """An int the manager's incr can add to (bool is not one: it is stored pickled)."""
    return type(value) is int and abs(value) <= MAX_COUNTER


def _serializer(option: Any) -> Serializer:
    """"pickle" | "json" | "msgpack", a dotted path to a class (Django's style), a class or an instance."""
    if isinstance(option, str) and "." in option:
        option = import_string(option)
    if isinstance(option, type):
        option = option()
    try:
        return resolve(option)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"herdcache: OPTIONS['serializer']: {exc}") from None


def _contended(key: Any) -> CacheError:
    return CacheError(f"key {key!r} changed {CAS_ATTEMPTS} times while being updated; giving up")


def _shared_manager(location: str, options: dict[str, Any], values: Serializer) -> CacheManager:
    # Policies, clocks and serializers have stable reprs for the life of the settings.
    identity = (location, repr(sorted(options.items())))
    with _managers_lock:
        shared = _managers.get(identity)
        if shared is None:
            kwargs = {k: v for k, v in options.items() if k in MANAGER_OPTIONS}
            policies = dict(kwargs.pop("policies", None) or {})
            if RESOURCE in policies:
                raise ImproperlyConfigured(f"herdcache: the resource {RESOURCE!r} is the backend's own; "
                                           "its TTLs come from TIMEOUT and each call's timeout")
            # Every write passes its exact ttl; with Redis, Django's keys skip the memory
            # tier (see the module docstring).
            policies[RESOURCE] = Policy(ttl=300, stale=0, jitter=0, memory=not location)
            kwargs.setdefault("namespace", "django")
            try:
                manager = CacheManager(redis_url=location or None, policies=policies, serializer=_Stored(values), **kwargs)
            except (TypeError, ValueError) as exc:
                raise ImproperlyConfigured(f"herdcache: {exc}") from exc
            shared = _managers[identity] = manager
        return shared
