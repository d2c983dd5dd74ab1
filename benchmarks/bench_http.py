"""End to end over HTTP: uvicorn (one worker) serving a 2,000-row JSON route, load from wrk.

    .venv/bin/python benchmarks/bench_http.py [--rounds 5] [--seconds 3] [--connections 16]
    .venv/bin/python benchmarks/bench_http.py --only timetable

Part 1, the route (benchmarks/_http_app.py): requests/s and wrk's p50/p99 latency of

  floor            a route returning the body pre-encoded (what any cache must pay at least)
  uncached         the endpoint builds the rows and FastAPI encodes them, every request
  function cache   @cache.cached on the read: no rows built, FastAPI still encodes
  cached_route     herdcache's encoded-response cache: the bytes replayed
  cached_route 304 the same with a matching If-None-Match: no body
  fastapi-cache2   @cache() on the endpoint, InMemoryBackend and RedisBackend
  cashews          @cache() on the endpoint, mem:// and redis backends

Two uvicorn processes serve the app: one with memory backends, one with a redis-server of
our own behind herdcache (memory tier in front), fastapi-cache2 and cashews. The rounds
are interleaved (case order rotated each round), every case gets the same wrk run, and
each figure is the median of the rounds. Targets: cached_route >= 3x fastapi-cache2's
requests/s, >= 0.8x the floor's.

Part 2, seed 004's table: the example service (examples/timetable) under uvicorn with the
seed's query times (courses 180 ms, faculty 45, rooms 35, students 250, and 120 for
departments, which the time slots are generated from, as in the seed; config 5), each
of the seven resources requested one after the other, cold (after clearing the cache)
and warm; then GET /api/{org}/timetable-data, which gathers all seven at once. The seed
reports 835 ms cold, 31 ms warm (27x); the target is >= 50x.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _harness import print_rows, print_setup, redis_server, require  # noqa: E402

SERVER_START_S = 60.0  # the first request waits (in the listen backlog) until uvicorn accepts
SEED_MS = {"courses": 180, "faculty": 45, "rooms": 35, "students": 250, "departments": 120, "config": 5}
RESOURCES = ["departments", "rooms", "courses", "faculty", "students", "config", "timeslots"]
ORG = "org-1"
TOKEN = "bench-http"


# --- uvicorn in a process of its own, on a socket we bound -------------------------------


@contextlib.contextmanager
def uvicorn_server(app: str, env: dict[str, str], factory: bool = False):
    """uvicorn serving `app` (one worker) on a free 127.0.0.1 port; yields the port. The
    socket is bound and listening here and handed over (--fd), so requests made before
    uvicorn is up wait in the backlog: no polling for readiness."""
    sock = socket.socket()
    # uvicorn takes an --fd socket as AF_UNIX and so never sets TCP_NODELAY on its
    # connections; on Linux they inherit it from the listening socket. Without it every
    # small response waits out the client's delayed ACK (40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    command = [sys.executable, "-m", "uvicorn", app, "--fd", str(sock.fileno()), "--workers", "1",
               "--log-level", "warning", "--no-access-log"] + (["--factory"] if factory else [])
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, pass_fds=[sock.fileno()])
    try:
        port = sock.getsockname()[1]
        sock.close()  # the child has its copy
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fetch(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
          body: bytes | None = None, conn: http.client.HTTPConnection | None = None):
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=SERVER_START_S)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        if own:
            conn.close()


# --- part 1: wrk against each case ----------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(port: int, path: str, headers: dict[str, str], seconds: int, connections: int) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(command + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        raise SystemExit(f"bench_http: wrk saw errors on {path}:\n{out}")
    latency = {q: float(v) * _UNITS[u] for q, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    return {"rps": rps, "p50": latency["50"], "p99": latency["99"]}


def route_cases(memory_port: int, redis_port: int, etag: str) -> list[tuple[str, int, str, dict]]:
    return [
        ("floor (pre-encoded bytes)", memory_port, "/floor", {}),
        ("uncached", memory_port, "/uncached", {}),
        ("herdcache function cache", memory_port, "/function", {}),
        ("cached_route", memory_port, "/route", {}),
        ("cached_route, 304", memory_port, "/route", {"If-None-Match": etag}),
        ("cached_route (Redis behind)", redis_port, "/route", {}),
        ("fastapi-cache2 InMemoryBackend", memory_port, "/fastapi-cache2", {}),
        ("fastapi-cache2 RedisBackend", redis_port, "/fastapi-cache2", {}),
        ("cashews mem://", memory_port, "/cashews", {}),
        ("cashews redis", redis_port, "/cashews", {}),
    ]


def bench_routes(args: argparse.Namespace) -> None:
    with redis_server("bench_http") as redis, \
            uvicorn_server("benchmarks._http_app:app", {"BENCH_REDIS_URL": ""}) as memory_port, \
            uvicorn_server("benchmarks._http_app:app", {"BENCH_REDIS_URL": redis.url}) as redis_port:
        expected = json.loads(fetch(memory_port, "/floor")[2])
        etag = ""
        for port in (memory_port, redis_port):
            for path in ("/uncached", "/function", "/route", "/fastapi-cache2", "/cashews"):
                for _ in range(2):  # the miss, then a hit
                    status, headers, body = fetch(port, path)
                    if status != 200 or json.loads(body) != expected:
                        raise SystemExit(f"bench_http: {path} did not answer the rows ({status})")
                if path == "/route":
                    etag = headers["etag"]
        if fetch(memory_port, "/route", {"If-None-Match": etag})[0] != 304:
            raise SystemExit("bench_http: cached_route did not answer 304 to its ETag")
        print(f"body: {len(expected)} rows, {len(fetch(memory_port, '/floor')[2]):,} bytes of JSON; "
              f"wrk -t1 -c{args.connections} -d{args.seconds}s per case and round, {args.rounds} rounds\n")

        cases = route_cases(memory_port, redis_port, etag)
        runs: dict[str, list[dict]] = {name: [] for name, *_ in cases}
        for name, port, path, headers in cases:  # warm-up: a second of each
            wrk(port, path, headers, 1, args.connections)
            fetch(port, "/idle")
        for r in range(args.rounds):
            for name, port, path, headers in cases[r % len(cases):] + cases[: r % len(cases)]:
                runs[name].append(wrk(port, path, headers, args.seconds, args.connections))
                fetch(port, "/idle")  # the requests wrk left in progress finish before the next case
            print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr)

    med = {name: {k: statistics.median(run[k] for run in got) for k in ("rps", "p50", "p99")}
           for name, got in runs.items()}
    floor = med["floor (pre-encoded bytes)"]["rps"]
    route = med["cached_route"]["rps"]
    rows = [[name, f"{m['rps']:,.0f}", f"{min(r['rps'] for r in runs[name]):,.0f}-{max(r['rps'] for r in runs[name]):,.0f}",
             f"{m['p50']:.2f}", f"{m['p99']:.2f}", f"{m['rps'] / floor:.2f}", f"{route / m['rps']:.1f}" if m["rps"] else "-"]
            for name, m in med.items()]
    print_rows(["case", "req/s", "req/s range", "p50 ms", "p99 ms", "x floor", "cached_route is x"], rows)
    best_fc2 = max(med["fastapi-cache2 InMemoryBackend"]["rps"], med["fastapi-cache2 RedisBackend"]["rps"])
    print(f"targets: cached_route {route / best_fc2:.2f}x fastapi-cache2 (its faster backend; target >= 3), "
          f"{route / floor:.2f}x the floor (target >= 0.8)\n")


# --- part 2: seed 004's table ----------------------------------------------------------------


def timed(port: int, path: str, conn: http.client.HTTPConnection) -> float:
    start = time.perf_counter()
    status, _, _ = fetch(port, path, conn=conn)
    elapsed = (time.perf_counter() - start) * 1000
    if status != 200:
        raise SystemExit(f"bench_http: {path} answered {status}")
    return elapsed


def bench_timetable(args: argparse.Namespace) -> None:
    query_ms = ",".join(f"{k}={v}" for k, v in SEED_MS.items())
    with tempfile.TemporaryDirectory(prefix="herdcache-bench-") as tmp:
        env = {"TIMETABLE_DB": os.path.join(tmp, "timetable.db"), "TIMETABLE_QUERY_MS": query_ms,
               "TIMETABLE_WARM_ORG": "", "TIMETABLE_ADMIN_TOKEN": TOKEN, "HERDCACHE_REDIS_URL": ""}
        with uvicorn_server("examples.timetable.app:create_app", env, factory=True) as port:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SERVER_START_S)
            clear = json.dumps({"all": True}).encode()
            admin = {"X-Admin-Token": TOKEN, "Content-Type": "application/json"}

            def cleared() -> None:
                if fetch(port, "/api/cache/invalidate", admin, "POST", clear, conn)[0] != 200:
                    raise SystemExit("bench_http: could not clear the example's cache")

            fetch(port, f"/api/{ORG}/config", conn=conn)  # the database is seeded on startup
            cold = {name: [] for name in RESOURCES}
            warm = {name: [] for name in RESOURCES}
            data_cold, data_warm = [], []
            for _ in range(args.cold_rounds):
                cleared()
                for name in RESOURCES:
                    cold[name].append(timed(port, f"/api/{ORG}/{name}", conn))
                for _ in range(args.warm_repeats):
                    for name in RESOURCES:
                        warm[name].append(timed(port, f"/api/{ORG}/{name}", conn))
                cleared()
                data_cold.append(timed(port, f"/api/{ORG}/timetable-data", conn))
                data_warm.extend(timed(port, f"/api/{ORG}/timetable-data", conn) for _ in range(args.warm_repeats))
            conn.close()

    rows = []
    for name in RESOURCES:
        c, w = statistics.median(cold[name]), statistics.median(warm[name])
        rows.append([name, f"{SEED_MS.get(name, 0)}", f"{c:.1f}", f"{w:.2f}", f"{c / w:.0f}x"])
    total_cold = sum(statistics.median(cold[n]) for n in RESOURCES)
    total_warm = sum(statistics.median(warm[n]) for n in RESOURCES)
    rows.append(["all seven, one after the other", f"{sum(SEED_MS.values())}", f"{total_cold:.1f}", f"{total_warm:.2f}",
                 f"{total_cold / total_warm:.0f}x"])
    dc, dw = statistics.median(data_cold), statistics.median(data_warm)
    rows.append(["GET /timetable-data (gathered)", "", f"{dc:.1f}", f"{dw:.2f}", f"{dc / dw:.0f}x"])
    print(f"seed 004's table: examples/timetable under uvicorn, query times {query_ms} (ms); medians of "
          f"{args.cold_rounds} cold and {args.cold_rounds * args.warm_repeats} warm requests each (ms)\n")
    print_rows(["resource", "query ms", "cold ms", "warm ms", "cold / warm"], rows)
    print(f"seed 004: 835 ms -> 31 ms (27x); here {total_cold:.0f} ms -> {total_warm:.1f} ms one after the other "
          f"({total_cold / total_warm:.0f}x), {dc:.0f} ms -> {dw:.2f} ms in one request ({dc / dw:.0f}x); target >= 50x\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["routes", "timetable"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cold-rounds", type=int, default=3)
    parser.add_argument("--warm-repeats", type=int, default=10)
    args = parser.parse_args()
    require("bench_http", {"herdcache": "herdcache", "uvicorn": "the server", "fastapi_cache": "fastapi-cache2",
                           "cashews": "cashews", "redis": "fastapi-cache2's RedisBackend"})
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        sys.exit("bench_http: wrk not found; on Debian: apt-get install wrk (scripts/setup.sh installs it)")
    print_setup("bench_http: FastAPI responses over HTTP (uvicorn, one worker; wrk)",
                ["herdcache", "fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools", "fastapi-cache2",
                 "cashews", "redis"],
                wrk=subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip())
    if args.only in (None, "routes"):
        bench_routes(args)
    if args.only in (None, "timetable"):
        bench_timetable(args)


if __name__ == "__main__":
    main()
