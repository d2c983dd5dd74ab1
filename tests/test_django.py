"""herdcache.django.HerdCache, tested the way Django tests its own backends.

One spec (``HerdCacheSpec``, adapted from Django's tests/cache/tests.py BaseCacheTests) runs
against every tier: the memory tier with a manual clock, and (marked redis) a real
redis-server. Each test class swaps CACHES with override_settings, as Django's do.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import threading
import time
from unittest import mock

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")  # tests/django_settings.py
django.setup()

from django.core.cache import CacheKeyWarning, cache, caches  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.test import SimpleTestCase, override_settings  # noqa: E402

from herdcache import CacheManager, ManualClock, Policy  # noqa: E402
from herdcache.django import HerdCache  # noqa: E402

CLOCK = ManualClock()
REDIS_CLOCK = ManualClock()  # the Redis suite's: entries written under it stay in Redis meanwhile
BACKEND = "herdcache.django.HerdCache"


def custom_key_func(key, key_prefix, version):
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])


def caches_setting(location: str = "", **options) -> dict:
    """Aliases over one store, as Django's caches_setting_for_tests builds them."""
    base = {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": options}
    return {
        "default": base,
        "prefix": {**base, "KEY_PREFIX": "cacheprefix"},
        "v2": {**base, "VERSION": 2},
        "custom_key": {**base, "KEY_FUNCTION": custom_key_func},
        "custom_key2": {**base, "KEY_FUNCTION": f"{__name__}.custom_key_func"},
        "zero": {**base, "TIMEOUT": 0},
        "forever": {**base, "TIMEOUT": None},
        "json": {**base, "OPTIONS": {**options, "serializer": "json"}},
    }


class Unpicklable:
    def __getstate__(self):
        raise pickle.PickleError()


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


class HerdCacheSpec:
    """What every tier must do. Subclasses set the CACHES and how time moves."""

    def advance(self, seconds: float) -> None:
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        cache.clear()
        # Async methods must run on the manager, never through sync_to_async.
        patcher = mock.patch("django.core.cache.backends.base.sync_to_async", side_effect=AssertionError)
        patcher.start()
        self.addCleanup(patcher.stop)

    # --- basics ----------------------------------------------------------------------

    def test_backend_and_manager(self):
        self.assertIsInstance(caches["default"], HerdCache)
        self.assertIsInstance(caches["default"].herd, CacheManager)
        self.assertIs(caches["default"].herd, caches["prefix"].herd)  # one store, like locmem's LOCATION

    def test_simple(self):
        cache.set("key", "value")
        self.assertEqual(cache.get("key"), "value")

    def test_default_used_when_none_is_set(self):
        cache.set("key_default_none", None)
        self.assertIsNone(cache.get("key_default_none", default="default"))

    def test_add(self):
        self.assertIs(cache.add("addkey1", "value"), True)
        self.assertIs(cache.add("addkey1", "newvalue"), False)
        self.assertEqual(cache.get("addkey1"), "value")

    def test_prefix(self):
        cache.set("somekey", "value")
        self.assertIs(caches["prefix"].has_key("somekey"), False)
        caches["prefix"].set("somekey", "value2")
        self.assertEqual(cache.get("somekey"), "value")
        self.assertEqual(caches["prefix"].get("somekey"), "value2")

    def test_non_existent(self):
        self.assertIsNone(cache.get("does_not_exist"))
        self.assertEqual(cache.get("does_not_exist", "bang!"), "bang!")

    def test_get_many(self):
        cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"})
        self.assertEqual(cache.get_many(["a", "c", "d"]), {"a": "a", "c": "c", "d": "d"})
        self.assertEqual(cache.get_many(["a", "b", "e"]), {"a": "a", "b": "b"})
        self.assertEqual(cache.get_many(iter(["a", "b", "e"])), {"a": "a", "b": "b"})
        cache.set_many({"x": None, "y": 1})
        self.assertEqual(cache.get_many(["x", "y"]), {"x": None, "y": 1})

    def test_delete(self):
        cache.set_many({"key1": "spam", "key2": "eggs"})
        self.assertIs(cache.delete("key1"), True)
        self.assertIsNone(cache.get("key1"))
        self.assertEqual(cache.get("key2"), "eggs")
        self.assertIs(cache.delete("key1"), False)

    def test_has_key(self):
        cache.set("hello1", "goodbye1")
        self.assertIs(cache.has_key("hello1"), True)
        self.assertIs(cache.has_key("goodbye1"), False)
        cache.set("no_expiry", "here", None)
        self.assertIs(cache.has_key("no_expiry"), True)
        cache.set("null", None)
        self.assertIs(cache.has_key("null"), True)
        self.assertIn("null", cache)
        self.assertNotIn("goodbye1", cache)

    def test_incr_decr(self):
        cache.set("answer", 41)
        self.assertEqual(cache.incr("answer"), 42)
        self.assertEqual(cache.get("answer"), 42)
        self.assertEqual(cache.incr("answer", 10), 52)
        self.assertEqual(cache.incr("answer", -10), 42)
        self.assertEqual(cache.decr("answer"), 41)
        self.assertEqual(cache.decr("answer", -10), 51)
        with self.assertRaises(ValueError):
            cache.incr("does_not_exist")
        with self.assertRaises(ValueError):
            cache.decr("does_not_exist")
        cache.set("text", "a")
        with self.assertRaises(TypeError):
            cache.incr("text")

    def test_incr_keeps_the_expiry(self):
        cache.set("n", 1, timeout=2)
        self.advance(1)
        self.assertEqual(cache.incr("n"), 2)
        self.advance(1.2)
        self.assertIsNone(cache.get("n"))

    def test_incr_of_an_integer_is_the_managers_atomic_incr(self):
        cache.set("n", 5)
        key = cache._key("n", None)
        self.assertEqual(cache.herd.sync.incr(key, 2), 7)  # the very counter Django's incr adds to
        self.assertEqual(cache.incr("n", -10), -3)
        self.assertIs(type(cache.get("n")), int)
        self.assertEqual(cache.herd.sync.get(key), -3)
        self.assertEqual(cache.decr("n", 4), -7)

    def test_incr_refusals_change_nothing(self):
        with self.assertRaisesMessage(ValueError, "Key 'absent' not found"):
            cache.incr("absent")
        self.assertIsNone(cache.get("absent"))  # not created
        cache.set("text", "a")
        with self.assertRaises(TypeError):
            cache.incr("text")
        self.assertEqual(cache.get("text"), "a")
        cache.set("n", 2**53 - 1)
        with self.assertRaises(TypeError):
            cache.incr("n")
        self.assertEqual(cache.get("n"), 2**53 - 1)

    def test_incr_of_other_numbers_keeps_djangos_semantics(self):
        cache.set("f", 1.5)
        self.assertEqual(cache.incr("f"), 2.5)
        cache.set("big", 2**60)  # beyond a counter's range: stored pickled, added by compare-and-set
        self.assertEqual(cache.incr("big", -1), 2**60 - 1)
        self.assertEqual(cache.get("big"), 2**60 - 1)
        cache.set("flag", True)
        self.assertIs(cache.get("flag"), True)

    def test_close(self):
        cache.set("key", "value")
        cache.close()
        self.assertEqual(cache.get("key"), "value")  # close() leaves the shared manager running

    def test_data_types(self):
        stuff = {
            "string": "this is a string",
            "int": 42,
            "bool": True,
            "list": [1, 2, 3, 4],
            "tuple": (1, 2, 3, 4),
            "dict": {"A": 1, "B": 2, 3: "three"},
            "set": {1, 2},
            "object": Point(1, 2),
            "bytes": b"\x00\xff",
        }
        cache.set("stuff", stuff)
        self.assertEqual(cache.get("stuff"), stuff)

    def test_binary_string(self):
        from zlib import compress, decompress

        value = "value_to_be_compressed"
        cache.set("binary1", compress(value.encode()))
        self.assertEqual(value, decompress(cache.get("binary1")).decode())
        self.assertIs(cache.add("binary1-add", compress(value.encode())), True)
        self.assertEqual(cache.get_many(["binary1-add"]), {"binary1-add": compress(value.encode())})

    def test_get_returns_a_copy(self):
        cache.set("list", [1, [2]])
        got = cache.get("list")
        got.append(3)
        got[1].append(4)
        self.assertEqual(cache.get("list"), [1, [2]])
        self.assertIsNot(cache.get("list"), cache.get("list"))

    def test_unicode(self):
        stuff = {"ascii": "ascii_value", "unicode_ascii": "Iñtërnâtiônàlizætiøn1", "Iñtërnâtiônàlizætiøn": "2"}
        for key, value in stuff.items():
            with self.subTest(key=key):
                cache.set(key, value)
                self.assertEqual(cache.get(key), value)
                cache.delete(key)
                cache.add(key, value)
                self.assertEqual(cache.get(key), value)
        cache.set_many(stuff)
        self.assertEqual(cache.get_many(list(stuff)), stuff)

    def test_set_fail_on_pickleerror(self):
        with self.assertRaises(pickle.PickleError):
            cache.set("unpicklable", Unpicklable())
        self.assertIsNone(cache.get("unpicklable"))

    # --- timeouts ----------------------------------------------------------------------

    def test_expiration(self):
        cache.set("expire1", "very quickly", 1)
        cache.set("expire2", "very quickly", 1)
        cache.set("expire3", "very quickly", 1)
        self.advance(1.2)
        self.assertIsNone(cache.get("expire1"))
        self.assertIs(cache.add("expire2", "newvalue"), True)
        self.assertEqual(cache.get("expire2"), "newvalue")
        self.assertIs(cache.has_key("expire3"), False)

    def test_touch(self):
        cache.set("expire1", "very quickly", timeout=1)
        cache.set("expire2", "very quickly", timeout=1)
        self.assertIs(cache.touch("expire1", timeout=2), True)
        self.assertIs(cache.touch("expire2", timeout=None), True)
        self.advance(1.2)
        self.assertIs(cache.has_key("expire1"), True)
        self.advance(1)
        self.assertIs(cache.has_key("expire1"), False)
        self.assertIs(cache.has_key("expire2"), True)
        self.assertIs(cache.touch("nonexistent"), False)
        self.assertIs(cache.touch("expire2", timeout=0), True)
        self.assertIs(cache.has_key("expire2"), False)

    def test_long_and_float_timeouts(self):
        cache.set("long", "value", 60 * 60 * 24 * 365 * 30)
        self.assertEqual(cache.get("long"), "value")
        cache.set("float", "value", 0.5)
        self.assertEqual(cache.get("float"), "value")
        self.advance(0.7)
        self.assertIsNone(cache.get("float"))

    def test_forever_timeout(self):
        cache.set("forever", "value", None)
        self.assertIs(cache.add("forever-add", "value", None), True)
        caches["forever"].set("default-forever", "value")
        self.advance(400)
        self.assertEqual(cache.get("forever"), "value")
        self.assertEqual(cache.get("forever-add"), "value")
        self.assertEqual(cache.get("default-forever"), "value")

    def test_zero_and_negative_timeouts_expire_at_once(self):
        cache.set("old", "old")
        cache.set("old", "value", 0)
        self.assertIsNone(cache.get("old"))
        self.assertIs(cache.add("zero-add", "value", 0), True)
        self.assertIsNone(cache.get("zero-add"))
        cache.set("neg", "value", -1)
        self.assertIsNone(cache.get("neg"))
        cache.set_many({"a": 1, "b": 2}, timeout=0)
        self.assertEqual(cache.get_many(["a", "b"]), {})
        caches["zero"].set("default-zero", "value")  # TIMEOUT: 0
        self.assertIsNone(cache.get("default-zero"))

    def test_default_timeout_from_settings(self):
        self.assertEqual(cache.default_timeout, 300)
        cache.set("k", "v")
        self.advance(299)
        self.assertEqual(cache.get("k"), "v")
        self.advance(2)
        self.assertIsNone(cache.get("k"))

    # --- many, clear, versions, keys -----------------------------------------------------

    def test_set_many(self):
        self.assertEqual(cache.set_many({"key1": "spam", "key2": "eggs"}), [])
        self.assertEqual(cache.get("key1"), "spam")
        cache.set_many({"key1": "spam", "key2": "eggs"}, 1)
        self.advance(1.2)
        self.assertIsNone(cache.get("key1"))

    def test_delete_many(self):
        cache.set_many({"key1": "spam", "key2": "eggs", "key3": "ham"})
        cache.delete_many(["key1", "key2"])
        self.assertEqual(cache.get_many(["key1", "key2", "key3"]), {"key3": "ham"})

    def test_clear(self):
        cache.set_many({"key1": "spam", "key2": "eggs"})
        cache.clear()
        self.assertIsNone(cache.get("key1"))
        self.assertIsNone(cache.get("key2"))

    def test_versions(self):
        cache.set("answer1", 42)
        self.assertEqual(cache.get("answer1"), 42)
        self.assertEqual(cache.get("answer1", version=1), 42)
        self.assertIsNone(cache.get("answer1", version=2))
        self.assertIsNone(caches["v2"].get("answer1"))
        self.assertEqual(caches["v2"].get("answer1", version=1), 42)
        caches["v2"].set("answer2", 42)
        self.assertEqual(cache.get("answer2", version=2), 42)
        self.assertIsNone(cache.get("answer2"))

    def test_incr_decr_version(self):
        cache.set("answer", 42, version=2)
        self.assertEqual(cache.incr_version("answer", version=2), 3)
        self.assertIsNone(cache.get("answer", version=2))
        self.assertEqual(cache.get("answer", version=3), 42)
        self.assertEqual(caches["v2"].decr_version("answer", version=3), 2)
        self.assertEqual(caches["v2"].get("answer"), 42)
        with self.assertRaises(ValueError):
            cache.incr_version("does_not_exist")
        with self.assertRaises(ValueError):
            cache.decr_version("does_not_exist", version=2)

    def test_custom_key_func(self):
        cache.set("answer1", 42)
        self.assertIsNone(caches["custom_key"].get("answer1"))
        caches["custom_key"].set("answer2", 42)
        self.assertIsNone(cache.get("answer2"))
        self.assertEqual(caches["custom_key2"].get("answer2"), 42)  # the dotted-path KEY_FUNCTION

    def test_invalid_keys_warn_like_djangos_backends(self):
        for key in ("key with spaces", "key\nnewline", "a" * 251):
            with self.subTest(key=key[:20]):
                with self.assertWarns(CacheKeyWarning):
                    cache.set(key, "value")
                with self.assertWarns(CacheKeyWarning):
                    self.assertEqual(cache.get(key), "value")  # still stored: a warning, not an error

    # --- get_or_set --------------------------------------------------------------------

    def test_get_or_set(self):
        self.assertIsNone(cache.get("projector"))
        self.assertEqual(cache.get_or_set("projector", 42), 42)
        self.assertEqual(cache.get("projector"), 42)
        self.assertIsNone(cache.get_or_set("null", None))
        self.assertIs(cache.has_key("null"), True)  # None is stored, as Django's backends do
        self.assertEqual(cache.get_or_set("brian", 1979, version=2), 1979)
        self.assertIsNone(cache.get("brian", version=1))

    def test_get_or_set_callable_and_timeouts(self):
        self.assertEqual(cache.get_or_set("mykey", lambda: "value"), "value")
        self.assertEqual(cache.get_or_set("mykey", lambda: "other"), "value")
        self.assertEqual(cache.get_or_set("zero", lambda: "value", timeout=0), "value")
        self.assertIsNone(cache.get("zero"))
        cache.get_or_set("short", "value", timeout=1)
        self.advance(1.2)
        self.assertEqual(cache.get_or_set("short", "new"), "new")

    def test_get_or_set_coalesces_concurrent_callers(self):
        gate, calls, results = threading.Event(), [], []

        def expensive():
            calls.append(1)
            gate.wait(5)
            return "computed"

        def worker():
            results.append(caches["default"].get_or_set("slow", expensive))  # each thread its own backend

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        herd = caches["default"].herd
        deadline = time.monotonic() + 5
        while herd.stats()["resources"]["django"]["coalesced"] < 7 and time.monotonic() < deadline:
            time.sleep(0.001)
        gate.set()
        for t in threads:
            t.join(5)
        self.assertEqual(calls, [1])
        self.assertEqual(results, ["computed"] * 8)

    # --- options and the manager ----------------------------------------------------------

    def test_json_serializer_option(self):
        caches["json"].set("k", {"a": (1, 2)})
        self.assertEqual(caches["json"].get("k"), {"a": [1, 2]})
        with self.assertRaises(TypeError):
            caches["json"].set("k", Point(1, 2))

    def test_threads_share_the_store(self):
        cache.set("shared", "from main")
        seen = []
        thread = threading.Thread(target=lambda: seen.append((caches["default"].get("shared"), caches["default"])))
        thread.start()
        thread.join()
        value, other = seen[0]
        self.assertEqual(value, "from main")
        self.assertIsNot(other, caches["default"])  # Django made a backend for that thread
        self.assertIs(other.herd, caches["default"].herd)

    def test_herd_serves_coalesced_loads_and_tags(self):
        herd = caches["default"].herd
        calls = []

        @herd.cached(f"rooms-{id(self)}", tags=lambda org: [f"org:{org}"])
        def rooms(org):
            calls.append(org)
            return [org, Point(0, 0)]

        self.assertEqual(rooms("o1"), ["o1", Point(0, 0)])
        self.assertEqual(rooms("o1"), ["o1", Point(0, 0)])
        self.assertEqual(calls, ["o1"])
        herd.sync.invalidate_tags("org:o1")
        rooms("o1")
        self.assertEqual(calls, ["o1", "o1"])

    def test_stats_count_django_reads(self):
        before = caches["default"].herd.stats()["resources"].get("django", {}).get("hits", 0)
        cache.set("k", 1)
        cache.get("k")
        cache.get("missing")
        after = caches["default"].herd.stats()["resources"]["django"]
        self.assertEqual(after["hits"], before + 1)

    # --- async ---------------------------------------------------------------------------

    async def test_async_basics(self):
        await cache.aset("key", "value")
        self.assertEqual(await cache.aget("key"), "value")
        self.assertEqual(await cache.aget("missing", "default"), "default")
        self.assertIs(await cache.aadd("key", "other"), False)
        self.assertIs(await cache.aadd("new", "value"), True)
        self.assertIs(await cache.ahas_key("new"), True)
        self.assertIs(await cache.adelete("new"), True)
        self.assertIs(await cache.adelete("new"), False)
        self.assertIs(await cache.ahas_key("new"), False)
        got = await cache.aget("key")
        self.assertEqual(cache.get("key"), got)  # the two APIs see one store

    async def test_async_returns_copies(self):
        await cache.aset("list", [1])
        (await cache.aget("list")).append(2)
        self.assertEqual(await cache.aget("list"), [1])

    async def test_async_many(self):
        self.assertEqual(await cache.aset_many({"a": 1, "b": 2, "c": None}), [])
        self.assertEqual(await cache.aget_many(["a", "b", "c", "d"]), {"a": 1, "b": 2, "c": None})
        await cache.adelete_many(["a", "c"])
        self.assertEqual(await cache.aget_many(["a", "b", "c"]), {"b": 2})
        await cache.aset_many({"x": 1}, timeout=0)
        self.assertIs(await cache.ahas_key("x"), False)

    async def test_async_incr_decr(self):
        await cache.aset("n", 1)
        self.assertEqual(await cache.aincr("n"), 2)
        self.assertEqual(await cache.adecr("n", 5), -3)
        with self.assertRaises(ValueError):
            await cache.aincr("missing")

    async def test_async_versions(self):
        await cache.aset("v", "value")
        self.assertEqual(await cache.aincr_version("v"), 2)
        self.assertEqual(await cache.aget("v", version=2), "value")
        self.assertEqual(await cache.adecr_version("v", version=2), 1)
        self.assertEqual(await cache.aget("v"), "value")
        with self.assertRaises(ValueError):
            await cache.aincr_version("missing")

    async def test_async_touch_and_timeouts(self):
        await cache.aset("t", "value", timeout=1)
        self.assertIs(await cache.atouch("t", timeout=None), True)
        self.advance(1.2)
        self.assertEqual(await cache.aget("t"), "value")
        self.assertIs(await cache.atouch("missing"), False)
        await cache.aset("t", "value", timeout=0)
        self.assertIs(await cache.ahas_key("t"), False)
        self.assertIs(await cache.aadd("zero", "value", timeout=0), True)
        self.assertIs(await cache.ahas_key("zero"), False)

    async def test_async_get_or_set_coalesces(self):
        calls = []

        def compute():
            calls.append(1)
            return "value"

        results = await asyncio.gather(*(cache.aget_or_set("k", compute) for _ in range(10)))
        self.assertEqual(results, ["value"] * 10)
        self.assertEqual(calls, [1])
        self.assertEqual(await cache.aget_or_set("zero", "v", timeout=0), "v")
        self.assertIs(await cache.ahas_key("zero"), False)

    async def test_async_clear_and_close(self):
        await cache.aset("k", 1)
        await cache.aclose()
        self.assertEqual(await cache.aget("k"), 1)
        await cache.aclear()
        self.assertIsNone(await cache.aget("k"))


@override_settings(CACHES=caches_setting(clock=CLOCK))
class MemoryTierTests(HerdCacheSpec, SimpleTestCase):
    def advance(self, seconds: float) -> None:
        CLOCK.advance(seconds)


class ConfigurationTests(SimpleTestCase):
    def make(self, location: str = "", **params) -> HerdCache:
        return HerdCache(location, params)

    def test_options_are_checked(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "unknown OPTIONS ['nope']"):
            self.make(OPTIONS={"nope": 1})
        with self.assertRaisesMessage(ImproperlyConfigured, "memory_max_bytes"):
            self.make(OPTIONS={"MAX_ENTRIES": 10})
        with self.assertRaisesMessage(ImproperlyConfigured, "serializer"):
            self.make(OPTIONS={"serializer": "marshal"})
        with self.assertRaisesMessage(ImproperlyConfigured, "memory_max_bytes"):
            self.make(OPTIONS={"memory_max_bytes": -1})
        with self.assertRaisesMessage(ImproperlyConfigured, "'django' is the backend's own"):
            self.make(OPTIONS={"policies": {"django": Policy(ttl=1)}})

    def test_options_reach_the_manager(self):
        backend = self.make(OPTIONS={"namespace": "shop", "policies": {"rooms": Policy(ttl=7)}})
        self.assertEqual(backend.herd.namespace, "shop")
        self.assertEqual(backend.herd.stats()["resources"]["rooms"]["policy"]["ttl"], 7)
        self.assertEqual(self.make().herd.namespace, "django")

    def test_serializer_by_dotted_path(self):
        backend = self.make(OPTIONS={"serializer": "herdcache.serializers.JsonSerializer", "namespace": "dotted"})
        backend.set("k", (1, 2))
        self.assertEqual(backend.get("k"), [1, 2])

    def test_same_settings_share_one_manager(self):
        self.assertIs(self.make(OPTIONS={"namespace": "a"}).herd, self.make(OPTIONS={"namespace": "a"}).herd)
        self.assertIsNot(self.make(OPTIONS={"namespace": "a"}).herd, self.make(OPTIONS={"namespace": "b"}).herd)


# --- against a real redis-server ---------------------------------------------------------


def skip_until_the_redis_tier_lands(location: str) -> None:
    try:
        HerdCache(location, {"OPTIONS": {"namespace": "probe"}})
    except ImproperlyConfigured as exc:
        if "not available" in str(exc):
            pytest.skip("the Redis tier is not in this build yet")
        raise


@pytest.mark.redis
class RedisTierTests(HerdCacheSpec, SimpleTestCase):
    location = ""

    @pytest.fixture(autouse=True)
    def _redis(self, redis_url):
        skip_until_the_redis_tier_lands(redis_url)
        type(self).location = redis_url

    def setUp(self):
        # Redis also expires keys by real time: never let this clock fall behind it.
        REDIS_CLOCK.advance(max(0.0, time.time() - REDIS_CLOCK.time()))
        override = override_settings(CACHES=caches_setting(self.location, namespace="djredis", clock=REDIS_CLOCK))
        override.enable()
        self.addCleanup(override.disable)
        super().setUp()

    def advance(self, seconds: float) -> None:
        # The engine judges expiry by its own clock, Redis' copies included.
        REDIS_CLOCK.advance(seconds)

    def clock_offset(self) -> float:
        """How far this suite's clock is ahead of real time: other processes run on it too."""
        return max(0.0, REDIS_CLOCK.time() - time.time())

    def test_add_incr_and_decr_are_atomic_across_processes(self):
        cache.set("hits", 0, None)
        script = (
            "import django; from django.conf import settings; from herdcache import ManualClock\n"
            f"clock = ManualClock(); clock.advance({self.clock_offset()!r})\n"
            f"settings.configure(CACHES={{'default': {{'BACKEND': '{BACKEND}', 'LOCATION': {self.location!r},"
            " 'OPTIONS': {'namespace': 'djredis', 'clock': clock}}})\n"
            "django.setup(); from django.core.cache import cache\n"
            "import asyncio\n"
            "won = cache.add('lock', 'mine')\n"
            "for _ in range(50): cache.incr('hits')\n"
            "for _ in range(25): cache.decr('hits')\n"
            "async def more():\n"
            "    for _ in range(10): await cache.aincr('hits')\n"
            "asyncio.run(more())\n"
            "print('won' if won else 'lost')\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
                 for _ in range(4)]
        outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
        self.assertEqual([p.returncode for p in procs], [0, 0, 0, 0])
        self.assertEqual(outputs, ["lost", "lost", "lost", "won"])
        self.assertEqual(cache.get("hits"), 4 * (50 - 25 + 10))
        self.assertFalse(cache.add("lock", "late"))

    def test_other_processes_see_writes_and_deletes(self):
        cache.set("shared", "parent")
        self.assertEqual(cache.get("shared"), "parent")  # now in this process's memory tier too
        script = (
            "import django; from django.conf import settings; from herdcache import ManualClock\n"
            f"clock = ManualClock(); clock.advance({self.clock_offset()!r})\n"
            f"settings.configure(CACHES={{'default': {{'BACKEND': '{BACKEND}', 'LOCATION': {self.location!r},"
            " 'OPTIONS': {'namespace': 'djredis', 'clock': clock}}})\n"
            "django.setup(); from django.core.cache import cache\n"
            "assert cache.get('shared') == 'parent'\n"
            "cache.set('shared', 'child'); cache.set('fresh', 1)\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=30)
        self.assertEqual(cache.get("fresh"), 1)
        deadline = time.monotonic() + 5  # the child's write reaches this memory tier over pub/sub
        while cache.get("shared") != "child" and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(cache.get("shared"), "child")

