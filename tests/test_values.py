"""Values come back as they went in, from either tier and in every instance.

A cached function's return annotation decides how its values encode and decode, so a
Redis hit in another instance (or process) returns the same types as a memory hit.
Without one, both tiers return the serializer's own types. Each test runs on the memory
tier alone and on Redis; on Redis a second manager (its own memory tier, empty) reads
what the first one loaded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import json
import math
import subprocess
import sys
import textwrap
import uuid
from decimal import Decimal
from pathlib import Path

import pydantic
import pytest

from herdcache import CacheManager, SerializationError


class Kind(enum.Enum):
    LECTURE = "lecture"
    LAB = "lab"


class Room(pydantic.BaseModel):
    id: uuid.UUID
    name: str
    seats: int
    kind: Kind
    opened: dt.date
    price: Decimal


@dataclasses.dataclass
class Slot:
    starts: dt.datetime
    ends: dt.datetime
    rooms: tuple[str, ...]
    tags: set[str]


ROOM = Room(id=uuid.UUID(int=7), name="A1", seats=30, kind=Kind.LAB, opened=dt.date(2020, 1, 2), price=Decimal("12.50"))
AWARE = dt.datetime(2026, 12, 3, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
NAIVE = dt.datetime(2026, 12, 3, 9, 45, 10, 123456)
SLOT = Slot(starts=AWARE, ends=NAIVE, rooms=("A1", "B2"), tags={"x", "y"})


async def written(m: CacheManager) -> None:
    """Waits for the answers to m's background writes (a load's write is not waited for)."""
    pending = [w for w in m._writes if not w.done()]
    if pending:
        await asyncio.wait(pending, timeout=5)


async def both_instances(tier, define):
    """(value from the loading instance, value from its memory hit, value another instance
    reads): on the memory tier the other instance is the same manager."""
    async with tier.open(namespace="values") as a:
        fa = define(a)
        first = await fa("o1")
        hit = await fa("o1")
        if not tier.redis:
            yield first, hit, await a.get(fa.key("o1"))
            return
        await written(a)
        async with tier.open(namespace="values") as b:
            fb = define(b)
            got = await b.get(fb.key("o1"))  # the engine's Redis read, decoded by the resource's codec
            via_load = await fb("o1")  # memory hit after the get filled it
            yield first, hit, got
            assert via_load == got and type(via_load) is type(got)


def assert_same(expected, *values):
    for value in values:
        assert value == expected
        assert type(value) is type(expected)


@pytest.mark.parametrize(
    "annotation_case",
    ["model_list", "model_dict", "dataclass", "scalars", "nested_tuple_set", "enum_decimal"],
)
async def test_annotated_values_come_back_as_the_same_types(tier, annotation_case):
    cases = {
        "model_list": (list[Room], [ROOM, ROOM.model_copy(update={"name": "B2"})]),
        "model_dict": (dict[str, Room], {"a1": ROOM}),
        "dataclass": (Slot, SLOT),
        "scalars": (tuple[dt.datetime, dt.datetime, dt.date, uuid.UUID], (AWARE, NAIVE, dt.date(2026, 1, 1), uuid.UUID(int=3))),
        "nested_tuple_set": (dict[str, tuple[int, frozenset[str]]], {"k": (1, frozenset({"a"}))}),
        "enum_decimal": (list[tuple[Kind, Decimal]], [(Kind.LECTURE, Decimal("0.10")), (Kind.LAB, Decimal("-3"))]),
    }
    annotation, value = cases[annotation_case]
    loads = []

    def define(m):
        async def rooms(org_id: str):
            loads.append(org_id)
            return value

        rooms.__annotations__["return"] = annotation
        return m.cached("rooms")(rooms)

    async for first, hit, other in both_instances(tier, define):
        assert_same(value, first, hit, other)
        if isinstance(value, list) and value and isinstance(value[0], Room):
            assert all(type(r) is Room for r in other)
    assert loads == ["o1"]  # one load: the other instance's reads were hits


async def test_aware_datetimes_keep_their_offset(tier):
    def define(m):
        @m.cached("times")
        async def times(org_id: str) -> list[dt.datetime]:
            return [AWARE, NAIVE]

        return times

    async for _first, _hit, other in both_instances(tier, define):
        assert other[0].utcoffset() == dt.timedelta(hours=1)
        assert other[1].tzinfo is None


async def test_unannotated_values_are_the_serializers_types_on_every_tier(tier):
    def define(m):
        @m.cached("plain")
        async def plain(org_id: str):
            return {"pair": (1, 2), "n": 1.5, "none": None}

        return plain

    async for first, hit, other in both_instances(tier, define):
        assert_same({"pair": [1, 2], "n": 1.5, "none": None}, first, hit, other)


async def test_set_and_get_return_the_serializers_types_on_every_tier(tier):
    async with tier.open() as m:
        key = m.key("plain", 1)
        await m.set(key, (1, "a"))
        assert await m.get(key) == [1, "a"]
        assert await m.get_or_load(m.key("plain", 2), lambda: (3,)) == [3]
        assert await m.get_or_load(m.key("plain", 2), lambda: (4,)) == [3]


@pytest.mark.parametrize(
    "value, type_name",
    [({"a", "b"}, "set"), (Decimal("1.5"), "Decimal"), (ROOM, "Room"), ({1: "a"}, "dict")],
)
async def test_a_value_that_cannot_be_encoded_says_where_what_and_how(tier, value, type_name):
    async with tier.open() as m:
        calls = []

        @m.cached("rooms")
        async def fetch_rooms(org_id: str):
            calls.append(org_id)
            return value

        with pytest.raises(SerializationError) as raised:
            await fetch_rooms("o1")
        message = str(raised.value)
        assert "fetch_rooms" in message and "'rooms'" in message
        assert type_name in message
        assert "model_dump()" in message and "annotate" in message and 'serializer="pickle"' in message
        assert await m.get(fetch_rooms.key("o1")) is None  # nothing stored
        with pytest.raises(SerializationError, match="resource 'other'"):
            await m.set(m.key("other", 1), value)


async def test_non_finite_floats_are_the_same_on_both_tiers_or_refused(tier):
    def define_plain(m):
        @m.cached("plain_nan")
        async def plain_nan(org_id: str):
            return [math.nan, math.inf, 1.0]

        return plain_nan

    async for first, hit, other in both_instances(tier, define_plain):
        assert_same([None, None, 1.0], first, hit, other)  # plain JSON has no NaN: null on every tier

    def define_typed(m):
        @m.cached("typed_nan")
        async def typed_nan(org_id: str) -> list[float]:
            return [math.nan, -math.inf, 1.0]

        return typed_nan

    async for first, hit, other in both_instances(tier, define_typed):
        for value in (first, hit, other):
            assert math.isnan(value[0]) and value[1] == -math.inf and value[2] == 1.0

    class Reading(pydantic.BaseModel):
        value: float

    async with tier.open() as m:

        @m.cached("readings")
        async def readings(org_id: str) -> Reading:
            return Reading(value=math.nan)

        with pytest.raises(SerializationError, match="does not come back as it went in"):
            await readings("o1")
        assert await m.get(readings.key("o1")) is None


async def test_an_annotation_naming_a_class_defined_later_is_resolved_on_first_use(tier):
    async with tier.open() as m:

        @m.cached("later")
        async def later(org_id: str) -> "list[Later]":  # noqa: F821 - defined below
            return [Later(n=1)]

        global Later

        class Later(pydantic.BaseModel):
            n: int

        try:
            assert_same([Later(n=1)], await later("o1"), await later("o1"))
        finally:
            del Later


async def test_a_sync_cached_function_is_typed_too(tier):
    with tier.open_sync(namespace="values_sync") as a:

        @a.cached("slots")
        def slots(org_id: str) -> list[Slot]:
            return [SLOT]

        assert_same([SLOT], slots("o1"), slots("o1"))
        if tier.redis:
            import concurrent.futures

            concurrent.futures.wait(list(a._writes), timeout=5)
            with tier.open_sync(namespace="values_sync") as b:

                @b.cached("slots")
                def slots_b(org_id: str) -> list[Slot]:
                    raise AssertionError("must be a hit")

                assert_same([SLOT], slots_b("o1"), b.sync.get(slots_b.key("o1")))


SUBPROCESS_READER = """
import asyncio, json, sys
sys.path.insert(0, {tests!r})
from herdcache import CacheManager
import test_values as v

async def main():
    async with CacheManager(redis_url={url!r}, namespace="values_proc") as m:
        @m.cached("rooms")
        async def rooms(org_id: str) -> dict[str, v.Room]:
            raise AssertionError("must be a hit")
        got = await rooms("o1")
        print(json.dumps({{"types": sorted({{type(r).__name__ for r in got.values()}}), "equal": got == {{"a1": v.ROOM}},
                          "loads": m.stats()["loads"]}}))

asyncio.run(main())
"""


async def test_a_redis_hit_in_another_process_returns_the_models(redis_url):
    async with CacheManager(redis_url=redis_url, namespace="values_proc") as m:

        @m.cached("rooms")
        async def rooms(org_id: str) -> dict[str, Room]:
            return {"a1": ROOM}

        await rooms("o1")
        await written(m)
        code = textwrap.dedent(SUBPROCESS_READER).format(tests=str(Path(__file__).parent), url=redis_url)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, err.decode()
        assert json.loads(out) == {"types": ["Room"], "equal": True, "loads": 0}
