"""The example service (examples/timetable) through its real ASGI app, on the memory tier."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.timetable import POLICIES, Settings, create_app  # noqa: E402
from herdcache import CacheManager, ManualClock  # noqa: E402

TOKEN = "test-token"
ADMIN = {"X-Admin-Token": TOKEN}


@contextlib.asynccontextmanager
async def running(tmp_path, cache=None, warm_org=None):
    """The app with its lifespan run (ASGITransport does not send lifespan events)."""
    settings = Settings(db_path=str(tmp_path / "timetable.db"), admin_token=TOKEN, warm_org=warm_org)
    app = create_app(cache, settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://timetable") as client:
        yield client, app.state.db


async def test_endpoints_return_the_seeded_data(tmp_path):
    async with running(tmp_path) as (client, _):
        counts = {}
        for org in ("org-1", "org-2", "org-3"):
            for resource in ("departments", "rooms", "courses", "faculty", "students"):
                reply = await client.get(f"/api/{org}/{resource}")
                assert reply.status_code == 200, reply.text
                counts[resource] = counts.get(resource, 0) + len(reply.json())
        assert counts == {"departments": 120, "rooms": 999, "courses": 2490, "faculty": 645, "students": 6000}

        course = (await client.get("/api/org-1/courses", params={"semester": 2})).json()[0]
        assert set(course) == {"id", "code", "title", "credits", "department", "sections", "faculty"}
        config = (await client.get("/api/org-1/config")).json()
        assert config == {"working_days": 5, "slots_per_day": 8, "day_start": "08:00", "slot_minutes": 60}
        slots = (await client.get("/api/org-1/timeslots")).json()
        assert len(slots) == 40 * 5 * 8 and slots[0]["start"] == "08:00"
        assert (await client.get("/api/nowhere/config")).status_code == 404


async def test_seed_is_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with running(tmp_path / "a") as (a, _), running(tmp_path / "b") as (b, _):
        assert (await a.get("/api/org-2/courses")).json() == (await b.get("/api/org-2/courses")).json()


async def test_a_burst_on_a_cold_resource_runs_one_query(tmp_path):
    async with running(tmp_path) as (client, db):
        db.latency = 0.05  # the burst arrives while the query runs
        replies = await asyncio.gather(*(client.get("/api/org-2/courses?semester=1") for _ in range(100)))
        assert {r.status_code for r in replies} == {200}
        assert all(r.json() == replies[0].json() for r in replies)
        assert db.queries["courses"] == 1
        await client.get("/api/org-2/courses", params={"semester": 2})  # another key
        assert db.queries["courses"] == 2


async def test_startup_warms_one_organization(tmp_path):
    async with running(tmp_path, warm_org="org-1") as (client, db):
        warmed = dict(db.queries)
        assert set(warmed) == set(POLICIES) - {"timeslots"}  # time slots are built, not queried
        for resource in POLICIES:
            assert (await client.get(f"/api/org-1/{resource}")).status_code == 200
        assert db.queries == warmed


async def test_a_room_update_invalidates_that_organizations_rooms(tmp_path):
    async with running(tmp_path) as (client, db):
        room = (await client.get("/api/org-1/rooms")).json()[0]
        other = (await client.get("/api/org-2/rooms")).json()
        reply = await client.put(f"/api/org-1/rooms/{room['id']}", json={"capacity": room["capacity"] + 7})
        assert reply.status_code == 200
        assert (await client.get("/api/org-1/rooms")).json()[0]["capacity"] == room["capacity"] + 7
        assert (await client.get("/api/org-2/rooms")).json() == other
        assert db.queries["rooms"] == 3  # org-1 twice, org-2 once

        assert (await client.put(f"/api/org-2/rooms/{room['id']}", json={"capacity": 5})).status_code == 404
        assert (await client.put(f"/api/org-1/rooms/{room['id']}", json={"capacity": 0})).status_code == 422


async def test_a_config_update_invalidates_the_time_slots_built_from_it(tmp_path):
    async with running(tmp_path) as (client, _):
        assert len((await client.get("/api/org-3/timeslots")).json()) == 40 * 5 * 8
        reply = await client.put("/api/org-3/config", json={"working_days": 6, "slots_per_day": 4})
        assert reply.json()["working_days"] == 6
        assert len((await client.get("/api/org-3/timeslots")).json()) == 40 * 6 * 4


async def test_admin_endpoints_need_the_token(tmp_path):
    async with running(tmp_path) as (client, db):
        await client.get("/api/org-1/faculty")
        body = {"resource": "faculty", "args": ["org-1"]}
        for headers in ({}, {"X-Admin-Token": "wrong"}):
            assert (await client.post("/api/cache/invalidate", json=body, headers=headers)).status_code == 403
            assert (await client.get("/api/cache/stats", headers=headers)).status_code == 403
        await client.get("/api/org-1/faculty")
        assert db.queries["faculty"] == 1  # the refused invalidation did nothing

        reply = await client.post("/api/cache/invalidate", json=body, headers=ADMIN)
        assert reply.status_code == 200 and reply.json()["invalidated"] == 2  # the function's entry and the route's
        await client.get("/api/org-1/faculty")
        assert db.queries["faculty"] == 2

        assert (await client.post("/api/cache/invalidate", json={"tags": ["org:org-1"]}, headers=ADMIN)).status_code == 200
        assert (await client.post("/api/cache/warm", json={"resource": "students", "args": ["org-1"]},
                                  headers=ADMIN)).status_code == 200
        await client.get("/api/org-1/students")
        assert db.queries["students"] == 1
        stats = (await client.get("/api/cache/stats", headers=ADMIN)).json()
        assert stats["hits"] >= 2 and stats["resources"]["faculty"]["loads"] == 4  # two of the function, two of the route


async def test_entries_expire_after_their_policy_ttl(tmp_path):
    clock = ManualClock()
    cache = CacheManager(namespace="timetable-test", policies=POLICIES, clock=clock)
    async with running(tmp_path, cache=cache) as (client, db):
        await client.get("/api/org-1/rooms")
        clock.advance(0.8 * POLICIES["rooms"].ttl)  # fresh, even with jitter
        await client.get("/api/org-1/rooms")
        assert db.queries["rooms"] == 1
        clock.advance(0.5 * POLICIES["rooms"].ttl + POLICIES["rooms"].stale)  # past ttl and stale
        await client.get("/api/org-1/rooms")
        assert db.queries["rooms"] == 2
    await cache.close()


@pytest.mark.parametrize("argv", [["-m", "examples.timetable"], ["examples/timetable/__main__.py"]])
def test_the_demo_runs(argv):
    done = subprocess.run([sys.executable, *argv, "--demo"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "database queries: 1" in done.stdout


def test_the_quickstart_runs():
    # Users run it first: a change that breaks its output (a stats field, say) fails here.
    done = subprocess.run([sys.executable, "examples/quickstart.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "load latency (ms): {'p50':" in done.stdout


async def test_read_endpoints_replay_cached_responses_with_validators(tmp_path):
    async with running(tmp_path) as (client, db):
        first = await client.get("/api/org-1/rooms")
        again = await client.get("/api/org-1/rooms", headers={"if-none-match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        control = re.fullmatch(r"public, max-age=(\d+), stale-while-revalidate=300", first.headers["cache-control"])
        assert control and 0.9 * 3600 - 1 <= int(control[1]) <= 1.1 * 3600  # the rooms policy, jittered
        assert db.queries["rooms"] == 1
        assert (await client.get("/api/nowhere/config")).status_code == 404
        assert (await client.get("/api/nowhere/config")).status_code == 404
        assert db.queries["config"] == 2  # a 404 is not cached


async def test_timetable_data_gathers_the_seven_resources(tmp_path):
    async with running(tmp_path) as (client, db):
        data = (await client.get("/api/org-2/timetable-data")).json()
        assert list(data) == ["departments", "rooms", "courses", "faculty", "students", "config", "timeslots"]
        for name in ("departments", "rooms", "courses", "faculty", "students", "config", "timeslots"):
            assert data[name] == (await client.get(f"/api/org-2/{name}")).json()
        queried = dict(db.queries)
        assert queried == {"departments": 1, "rooms": 1, "courses": 1, "faculty": 1, "students": 1, "config": 1}
        await client.get("/api/org-2/timetable-data")
        assert db.queries == queried


async def test_a_write_drops_the_timetable_data_built_from_it(tmp_path):
    async with running(tmp_path) as (client, db):
        room = (await client.get("/api/org-1/timetable-data")).json()["rooms"][0]
        await client.put(f"/api/org-1/rooms/{room['id']}", json={"capacity": room["capacity"] + 3})
        after = (await client.get("/api/org-1/timetable-data")).json()
        assert after["rooms"][0]["capacity"] == room["capacity"] + 3
        assert db.queries["rooms"] == 2 and db.queries["students"] == 1


def test_query_latencies_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TIMETABLE_QUERY_MS", "courses=180, students=250")
    assert Settings.from_env().query_latency == {"courses": 0.18, "students": 0.25}
