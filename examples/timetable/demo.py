"""`python -m examples.timetable --demo`: the service in-process, no server or browser.

Drives the real ASGI app through httpx.ASGITransport: a burst on a cold resource (one
query serves it), memory-tier hits, a write that invalidates, the admin endpoints.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from .app import Settings, create_app

ORG = "org-2"


def check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"demo failed: {what}")


async def timed(coro):
    start = time.perf_counter()
    result = await coro
    return result, (time.perf_counter() - start) * 1000


async def run(latency: float = 0.05) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=str(Path(tmp) / "timetable.db"), db_latency=latency, warm_org=None)
        app = create_app(settings=settings)
        db, admin = app.state.db, {"X-Admin-Token": settings.admin_token}
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://timetable") as client:
            print(f"database: SQLite, seeded, {latency * 1000:.0f} ms added to every query; cache: memory tier")

            print(f"1. 100 concurrent GET /api/{ORG}/courses?semester=1 on a cold cache")
            replies, ms = await timed(asyncio.gather(
                *(client.get(f"/api/{ORG}/courses", params={"semester": 1}) for _ in range(100))))
            check(all(r.status_code == 200 for r in replies), "every request answered 200")
            print(f"   all answered in {ms:.0f} ms, {len(replies[0].json())} courses each;"
                  f" database queries: {db.queries['courses']}")
            check(db.queries["courses"] == 1, "one query served the burst")

            print("2. the same request again, 20 times: memory-tier hits")
            times = [(await timed(client.get(f"/api/{ORG}/courses?semester=1")))[1] for _ in range(20)]
            print(f"   median {statistics.median(times):.2f} ms, max {max(times):.2f} ms"
                  f" (the encoded response replayed: nothing runs or encodes {len(replies[0].json())} rows);"
                  f" database queries: {db.queries['courses']}")
            etag = replies[0].headers["etag"]
            again = await client.get(f"/api/{ORG}/courses?semester=1", headers={"If-None-Match": etag})
            print(f"   with If-None-Match: {etag}: {again.status_code}, {len(again.content)} bytes;"
                  f" Cache-Control: {replies[0].headers['cache-control']}")
            check(again.status_code == 304, "a matching ETag is answered 304")

            slots = (await client.get(f"/api/{ORG}/timeslots")).json()
            print(f"3. {len(slots)} time slots built from two other cached reads"
                  f" (queries: config {db.queries['config']}, departments {db.queries['departments']})")

            room = (await client.get(f"/api/{ORG}/rooms")).json()[0]
            await client.put(f"/api/{ORG}/rooms/{room['id']}", json={"capacity": room["capacity"] + 5})
            after = (await client.get(f"/api/{ORG}/rooms")).json()[0]
            print(f"4. PUT room {room['code']} capacity {room['capacity']} -> {after['capacity']}:"
                  f" the write invalidated tag rooms:{ORG}; the next GET read it (rooms queries: {db.queries['rooms']})")
            check(after["capacity"] == room["capacity"] + 5, "the GET after the PUT shows the change")

            body = {"resource": "courses", "args": [ORG]}
            refused = await client.post("/api/cache/invalidate", json=body)
            done = await client.post("/api/cache/invalidate", json=body, headers=admin)
            await client.get(f"/api/{ORG}/courses?semester=1")
            print(f"5. POST /api/cache/invalidate {body}: {refused.status_code} without X-Admin-Token,"
                  f" {done.status_code} with it ({done.json()['invalidated']} removed);"
                  f" next GET queried again (courses queries: {db.queries['courses']})")
            check(refused.status_code == 403 and done.status_code == 200 and db.queries["courses"] == 2, "admin invalidate")

            stats = (await client.get("/api/cache/stats", headers=admin)).json()
            load_ms = stats["resources"]["courses"]["load_ms"]
            print("stats:", {k: round(stats[k], 2) for k in ("hits", "misses", "loads", "coalesced", "hit_rate")})
            print("courses query time (ms):", {k: round(load_ms[k], 1) for k in ("p50", "p95", "max")})


def main() -> None:
    asyncio.run(run())
