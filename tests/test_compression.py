"""Policy(compress_min_bytes=N): payloads of at least N bytes are stored zstd-compressed in
Redis (flags byte 2 of the payload header) and every read path of another manager
decompresses them; small ones stay as they are; signed entries sign the compressed
bytes; a compressed payload that does not decompress is a counted miss, never an error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct

import pytest
import redis as redis_py

from herdcache import Policy

from background import eventually
from tiers import Tier

KEY = b"super secret signing key"
POLICIES = {"reports": Policy(ttl=60, compress_min_bytes=1024)}


def report(rows: int = 2000) -> list[dict]:
    return [{"id": i, "room": f"B{i % 40}", "capacity": 20 + i % 7, "building": "north"} for i in range(rows)]


def raw_payload(redis_url: str, key) -> bytes:
    """The entry's v as Redis holds it, read by a plain client."""
    with redis_py.Redis.from_url(redis_url) as r:
        value = r.hget(str(key), "v")
    assert value is not None, f"{key} is not in redis"
    return value


def overwrite_payload(redis_url: str, key, v: bytes) -> None:
    with redis_py.Redis.from_url(redis_url) as r:
        r.hset(str(key), "v", v)


async def written(m) -> None:
    pending = [w for w in m._writes if not w.done()]
    if pending:
        await asyncio.wait(pending, timeout=5)


def errors(m, resource: str = "reports") -> int:
    return m.stats()["resources"][resource]["errors"]


def test_policy_compress_min_bytes_is_validated_and_shown():
    assert Policy(ttl=1).compress_min_bytes is None
    assert Policy(ttl=1, compress_min_bytes=0).compress_min_bytes == 0
    assert "compress_min_bytes=4096" in repr(Policy(ttl=1, compress_min_bytes=4096))
    assert Policy(ttl=1, compress_min_bytes=10) != Policy(ttl=1)
    with pytest.raises(ValueError, match="compress_min_bytes must be an integer >= 0 or None, got -1"):
        Policy(ttl=1, compress_min_bytes=-1)
    with pytest.raises(TypeError):
        Policy(ttl=1, compress_min_bytes="big")  # type: ignore[arg-type]


async def test_a_large_value_is_stored_compressed_and_every_read_path_of_another_manager_decompresses(redis_url):
    value = report()
    body = json.dumps(value, separators=(",", ":")).encode()
    async with tier_pair(redis_url) as (a, b):
        key = a.key("reports", 1)
        await a.set(key, value)
        stored = raw_payload(redis_url, key)
        assert stored[:3] == b"HC\x02"
        assert len(stored) * 4 < len(body)  # the rows compress several times over
        # b's memory tier is empty: each read below goes to Redis.
        assert await b.get(b.key("reports", 1)) == value              # the engine's get
        b._engine.invalidate_key(b.key("reports", 1))
        assert await b.get_many([b.key("reports", 1)]) == [value]    # one pipelined read
        b._engine.invalidate_key(b.key("reports", 1))

        def loader():
            raise AssertionError("the value is in redis: nothing loads")

        assert await b.get_or_load(b.key("reports", 1), loader) == value  # the lease read
        b._engine.invalidate_key(b.key("reports", 1))
        assert await asyncio.to_thread(b.sync.get, b.key("reports", 1)) == value  # blocking
        assert errors(b) == 0
        assert b.stats()["resources"]["reports"]["redis"]["redis_hits"] == 4


def test_blocking_writes_compress_and_blocking_reads_decompress(redis_url):
    value = report()
    options = {"namespace": "compress", "policies": POLICIES}
    tier = Tier("redis", redis_url)
    with tier.open_sync(**options) as a, tier.open_sync(**options) as b:
        key = a.key("reports", 1)
        a.sync.set(key, value)  # compressed with the GIL released (over 64 KiB)
        assert raw_payload(redis_url, key)[:3] == b"HC\x02"
        a.sync.set_many({a.key("reports", 2): value})
        assert raw_payload(redis_url, a.key("reports", 2))[:3] == b"HC\x02"
        assert b.sync.get_many([b.key("reports", 1), b.key("reports", 2)]) == [value, value]
        assert errors(b) == 0


async def test_small_values_and_other_resources_stay_uncompressed(redis_url):
    async with tier_pair(redis_url) as (a, b):
        await a.set(a.key("reports", "small"), {"n": 1})
        assert raw_payload(redis_url, a.key("reports", "small")) == b'HC\x00{"n":1}'
        await a.set(a.key("rooms", 1), report())  # no compress_min_bytes: never compressed
        assert raw_payload(redis_url, a.key("rooms", 1))[:3] == b"HC\x00"
        assert await b.get(b.key("rooms", 1)) == report()


async def test_a_signed_entry_signs_the_compressed_bytes(redis_url):
    value = report()
    async with tier_pair(redis_url, signing_key=KEY) as (a, b):
        key = a.key("reports", 1)
        await a.set(key, value)
        stored = raw_payload(redis_url, key)
        assert stored[:3] == b"HC\x03"  # signed and compressed
        assert len(stored) < len(json.dumps(value)) // 4
        assert await b.get(b.key("reports", 1)) == value
        # The flags byte is under the MAC: calling the compressed body plain is a forgery.
        overwrite_payload(redis_url, key, b"HC\x01" + stored[3:])
        b._engine.invalidate_key(b.key("reports", 1))
        assert await b.get(b.key("reports", 1)) is None
        assert b.stats()["redis"]["entries_forged"] == 1


@pytest.mark.parametrize("corrupt", [
    pytest.param(lambda v: v[:len(v) // 2] + bytes([v[len(v) // 2] ^ 0x20]) + v[len(v) // 2 + 1:], id="changed-byte"),
    pytest.param(lambda v: v[:-9], id="truncated"),
    pytest.param(lambda v: b"HC\x02" + b"\x28\xb5\x2f\xfd\xe0" + struct.pack("<Q", 1 << 40)
                 + (1 | 2 | 1000 << 3).to_bytes(3, "little") + b"a", id="bomb-declaring-1TiB"),
])
async def test_a_compressed_payload_that_does_not_decompress_is_a_counted_miss(redis_url, corrupt, caplog):
    async with tier_pair(redis_url) as (a, b):
        key = a.key("reports", 1)
        await a.set(key, report())
        overwrite_payload(redis_url, key, corrupt(raw_payload(redis_url, key)))
        assert await b.get(b.key("reports", 1)) is None
        assert errors(b) == 1
        assert b.stats()["resources"]["reports"]["misses"] == 1
        assert "compressed payload that does not decompress" in caplog.text
        # A load replaces it, and the next reader decompresses what the load wrote.
        assert await b.get_or_load(b.key("reports", 1), lambda: report(10)) == report(10)
        await written(b)
        async with tier_pair(redis_url) as (c, _):
            assert await c.get(c.key("reports", 1)) == report(10)


async def test_counters_of_a_compressing_resource_stay_plain_and_atomic_across_managers(redis_url):
    # No integer a counter holds gets smaller as a zstd frame: counters stay plain digits,
    # which the increment script adds to in Redis.
    policies = {"hits": Policy(ttl=60, compress_min_bytes=0)}
    async with tier_pair(redis_url, policies=policies) as (a, b):
        key = a.key("hits", 1)
        assert await a.incr(key, 1111111111111111) == 1111111111111111
        assert raw_payload(redis_url, key) == b"HC\x001111111111111111"
        assert await b.incr(b.key("hits", 1), 1) == 1111111111111112
        assert await a.incr(key, 2) == 1111111111111114

        async def a_sees_it() -> bool:
            return await a.get(key) == 1111111111111114

        await eventually(a_sees_it)


@contextlib.asynccontextmanager
async def tier_pair(redis_url: str, policies=None, **kwargs):
    """Two started managers on one Redis namespace (the second one's memory tier empty)."""
    tier = Tier("redis", redis_url)
    options = {"namespace": "compress", "policies": policies or POLICIES, **kwargs}
    async with tier.open(**options) as a, tier.open(**options) as b:
        yield a, b
