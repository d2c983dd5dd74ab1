"""PostgresInvalidator: the pure pieces with strings and bytes, then a real PostgreSQL
(started by the fixtures on a free port) changed by psycopg, not by the app."""

import asyncio
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herdcache import CacheManager
from herdcache.postgres import (
    Change,
    PayloadError,
    PostgresInvalidator,
    install_sql,
    parse_payload,
    table_maps,
    template_columns,
)

from background import eventually

TABLES = {"rooms": ["rooms", "org:{org_id}", "room:{id}"]}


# --- pure: templates, payloads, SQL ----------------------------------------------------

def test_template_columns():
    assert template_columns("rooms") == []
    assert template_columns("org:{org_id}:{kind}:{org_id}") == ["org_id", "kind"]
    for bad in ("org:{}", "org:{0}", "org:{a.b}", "org:{a[0]}", "org:{", ""):
        with pytest.raises(ValueError):
            template_columns(bad)


def test_table_maps_reject_bad_input():
    with pytest.raises(ValueError):
        table_maps({})
    with pytest.raises(ValueError):
        table_maps({"rooms": "org:{org_id}"})  # a str, not a list
    with pytest.raises(ValueError):
        table_maps({"rooms; drop": ["x"]})
    with pytest.raises(ValueError):
        table_maps({"rooms": []})
    m = table_maps({"public.rooms": ["rooms", "org:{org_id}", "b:{org_id}:{id}"]})["public.rooms"]
    assert m.columns == ("org_id", "id") and m.plain == ("rooms",) and m.has_placeholders


def test_tags_from_old_and_new_rows():
    m = table_maps(TABLES)["rooms"]
    change = parse_payload(b'{"t": "rooms", "op": "UPDATE", "new": {"org_id": 2, "id": 7},'
                           b' "old": {"org_id": 1, "id": 7}}')
    assert change == Change("rooms", "UPDATE", {"org_id": 2, "id": 7}, {"org_id": 1, "id": 7})
    assert m.tags(change) == ["rooms", "org:1", "room:7", "org:2"]
    insert = parse_payload('{"t": "rooms", "op": "INSERT", "new": {"org_id": "a", "id": 1}, "old": null}')
    assert m.tags(insert) == ["rooms", "org:a", "room:1"]


def test_parse_payload_rejects_what_the_trigger_never_sends():
    for bad in (b"rooms", b"[]", b'{"op": "INSERT"}', b'{"t": "rooms", "new": [1]}', b"\xff"):
        with pytest.raises(PayloadError):
            parse_payload(bad)
    assert parse_payload(b'{"t": "rooms", "op": "UPDATE", "all": true}').all


# Anyone who can NOTIFY on the database can send the listener any payload up to 8000 bytes.
NOTIFY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["t", "op", "new", "old", "all",
                                                                                 "org_id", "id"]) | st.text(max_size=5),
                                                                inner, max_size=5),
    max_leaves=15,
)
NOTIFY_PAYLOADS = st.one_of(
    st.binary(max_size=200),
    NOTIFY_JSON.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.fixed_dictionaries({"t": st.sampled_from(["rooms", "x"]), "op": st.text(max_size=6)},
                          optional={"new": NOTIFY_JSON, "old": NOTIFY_JSON, "all": NOTIFY_JSON})
      .map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.integers(1, 7999).map(lambda n: b"[" * n + b"]" * n),  # nested past the recursion limit
)


@settings(max_examples=300, deadline=None)
@given(payload=NOTIFY_PAYLOADS)
def test_a_notify_payload_is_a_change_or_a_payload_error_whatever_its_bytes(payload):
    """Anything else escapes the listener's malformed-payload path, which invalidates every
    mapped tag: the change would be lost instead."""
    m = table_maps(TABLES)["rooms"]
    try:
        change = parse_payload(payload)
        tags = m.tags(change)
    except PayloadError:
        return
    assert isinstance(change.table, str) and all(isinstance(t, str) for t in tags)


def test_a_payload_nested_past_the_recursion_limit_is_a_payload_error():
    with pytest.raises(PayloadError, match="nested too deeply"):
        parse_payload(b'{"t": "rooms", "new": ' + b"[" * 5000 + b"]" * 5000 + b"}")


def test_tags_missing_column_is_a_payload_error():
    m = table_maps(TABLES)["rooms"]
    with pytest.raises(PayloadError):
        m.tags(Change("rooms", "INSERT", new={"org_id": 1}))


def test_install_sql_quotes_names_and_arguments():
    sql = install_sql("herdcache_app", table_maps({"public.rooms": ["org:{org_id}"]}))
    assert 'ON "public"."rooms"' in sql
    assert "herdcache_notify('herdcache_app', 'public.rooms', 'org_id')" in sql
    assert sql.startswith("BEGIN;") and sql.rstrip().endswith("COMMIT;")


def test_construction_validates():
    cache = CacheManager()
    with pytest.raises(ValueError):
        PostgresInvalidator(cache, "host=x port", TABLES)
    with pytest.raises(ValueError):
        PostgresInvalidator(cache, "postgresql://x/db", {"rooms": ["org:{org.id}"]})
    with pytest.raises(ValueError):
        PostgresInvalidator(cache, "postgresql://x/db", TABLES, resources={"other": ["r"]})
    inv = PostgresInvalidator(cache, "postgresql://x/db", TABLES)
    assert inv.channel == "herdcache_app" and inv.health["connected"] is False


# --- against a real server ---------------------------------------------------------------



def sql(dsn, statement, *params):
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement, params or None)


@pytest.fixture
def rooms_db(postgres_dsn):
    sql(postgres_dsn, "CREATE TABLE rooms (id int PRIMARY KEY, org_id int, name text)")
    sql(postgres_dsn, "INSERT INTO rooms VALUES (1, 10, 'a'), (2, 20, 'b')")
    return postgres_dsn


@pytest.fixture
async def cache():
    async with CacheManager(namespace="pgtest") as c:
        yield c


async def fill(cache):
    """One cached entry per tag; returns the keys by tag."""
    keys = {}
    for tag in ("rooms", "org:10", "org:20", "org:30", "room:1", "room:2", "other"):
        key = cache.key("r", tag)
        await cache.set(key, tag, tags=[tag])
        keys[tag] = key
    return keys


async def present(cache, keys):
    return {tag for tag, key in keys.items() if await cache.get(key) is not None}


async def wait_present(cache, keys, expected, timeout=10.0):
    deadline = time.monotonic() + timeout
    while (got := await present(cache, keys)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"present {got}, expected {expected}")
        await asyncio.sleep(0.01)


async def test_install_twice_and_changes_invalidate_the_right_tags(rooms_db, cache):
    inv = PostgresInvalidator(cache, rooms_db, TABLES)
    await inv.install()
    await inv.install()  # idempotent
    await inv.start()
    try:
        assert inv.health["connected"]
        keys = await fill(cache)
        all_tags = set(keys)

        sql(rooms_db, "INSERT INTO rooms VALUES (3, 30, 'c')")
        await wait_present(cache, keys, all_tags - {"rooms", "org:30"})

        keys = await fill(cache)
        sql(rooms_db, "UPDATE rooms SET org_id = 20 WHERE id = 1")  # old and new org
        await wait_present(cache, keys, all_tags - {"rooms", "org:10", "org:20", "room:1"})

        keys = await fill(cache)
        sql(rooms_db, "DELETE FROM rooms WHERE id = 2")
        await wait_present(cache, keys, all_tags - {"rooms", "org:20", "room:2"})
        assert inv.health["notifications"] == 3 and inv.health["malformed"] == 0
        assert await admin_health(cache, inv) == (200, True)
    finally:
        await inv.stop()
    assert not inv.health["running"] and not inv.health["connected"]
    assert await admin_health(cache, inv) == (503, False)


async def admin_health(cache, inv):
    """The listener's state through the admin router's /health, as the README shows it."""
    import httpx
    from fastapi import FastAPI

    from herdcache.fastapi import admin_router

    app = FastAPI()
    app.include_router(admin_router(cache, allow_unauthenticated=True, health_checks={"postgres": lambda: inv.health}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.get("/health")
    return response.status_code, response.json()["checks"]["postgres"]["ok"]


async def test_oversized_row_payload_invalidates_the_whole_table(rooms_db, cache):
    sql(rooms_db, "ALTER TABLE rooms ADD COLUMN big text")
    inv = PostgresInvalidator(cache, rooms_db, {"rooms": ["rooms", "big:{big}"]}, resources={"rooms": ["r"]})
    await inv.install()
    await inv.start()
    try:
        keys = await fill(cache)
        other = cache.key("elsewhere", 1)
        await cache.set(other, "x")
        sql(rooms_db, "UPDATE rooms SET big = repeat('x', 9000) WHERE id = 1")
        await wait_present(cache, keys, set())  # every key of resource "r"
        assert await cache.get(other) == "x"  # other resources are untouched
        assert inv.health["overflows"] == 1
    finally:
        await inv.stop()


async def test_killed_server_reconnects_and_invalidates_every_mapped_tag(postgres_server, rooms_db, cache):
    inv = PostgresInvalidator(cache, rooms_db, {"rooms": ["rooms"]}, connect_timeout=2.0, backoff_max=0.5)
    await inv.install()
    await inv.start()
    try:
        keys = await fill(cache)
        sql(rooms_db, "CHECKPOINT")  # the cluster runs without fsync: keep the table across the crash
        postgres_server.kill()
        await eventually(lambda: not inv.health["connected"], timeout=10)
        postgres_server.start()  # same port
        await eventually(lambda: inv.health["gaps"] == 1, timeout=10)
        await wait_present(cache, keys, set(keys) - {"rooms"})
        assert inv.health["connected"]
        # and it still listens after the reconnect
        keys = await fill(cache)
        sql(rooms_db, "UPDATE rooms SET name = 'z' WHERE id = 1")
        await wait_present(cache, keys, set(keys) - {"rooms"})
    finally:
        await inv.stop()


async def test_templates_without_resources_clear_the_namespace_after_a_gap(postgres_server, rooms_db, cache):
    inv = PostgresInvalidator(cache, rooms_db, TABLES, connect_timeout=2.0, backoff_max=0.5)
    await inv.install()
    await inv.start()
    try:
        keys = await fill(cache)
        sql(rooms_db, "CHECKPOINT")  # the cluster runs without fsync: keep the table across the crash
        postgres_server.kill()
        postgres_server.start()
        await wait_present(cache, keys, set())
    finally:
        await inv.stop()


async def test_unknown_column_in_a_template_is_an_error_at_install(rooms_db, cache):
    inv = PostgresInvalidator(cache, rooms_db, {"rooms": ["org:{organisation}"]})
    with pytest.raises(ValueError, match="organisation"):
        await inv.install()
    inv = PostgresInvalidator(cache, rooms_db, {"nosuchtable": ["x"]})
    with pytest.raises(ValueError, match="nosuchtable"):
        await inv.install()


async def test_start_against_an_unreachable_server_keeps_trying_and_stop_is_clean(cache):
    inv = PostgresInvalidator(cache, "postgresql://postgres@127.0.0.1:1/none", TABLES, connect_timeout=0.3)
    await inv.start()  # returns after connect_timeout with a warning
    assert inv.health["running"] and not inv.health["connected"]
    assert inv.health["last_error"]
    await inv.stop()
    assert not inv.health["running"]


async def test_health_probes_keep_the_connection_and_notifications_flowing(rooms_db, cache):
    inv = PostgresInvalidator(cache, rooms_db, TABLES, health_interval=0.02)
    await inv.install()
    await inv.start()
    try:
        for n in range(3):
            keys = await fill(cache)
            sql(rooms_db, "UPDATE rooms SET name = %s WHERE id = 1", f"n{n}")
            await wait_present(cache, keys, set(keys) - {"rooms", "org:10", "room:1"})
            await asyncio.sleep(0.05)  # several idle probe intervals, on purpose
        assert inv.health["connected"] and inv.health["gaps"] == 0 and inv.health["errors"] == 0
    finally:
        await inv.stop()
