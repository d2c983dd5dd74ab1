"""Cold-key misses: herdcache's get_or_load against redis-py asyncio's naive GET-then-SET
and cashews, every call a miss, all against one redis-server in one run.

    .venv/bin/python benchmarks/bench_miss.py                  # 5 rounds x 20,000 keys, about 2 min
    .venv/bin/python benchmarks/bench_miss.py --quick          # 3 rounds x 2,000 keys, a short run
    .venv/bin/python benchmarks/bench_miss.py --profile        # herdcache only, one round under cProfile

The script starts its own redis-server (the Debian binary, on a free 127.0.0.1 port, no
persistence) and stops it at the end. Each case answers `await miss(key)` for a key
nobody has read before, with the same trivial loader (a sync function that counts its
calls and returns the ten course rows of bench_redis, about 400 bytes of JSON):

  herdcache     CacheManager(redis_url=...) with Policy(memory=False) for the resource:
                `await cache.get_or_load(key, loader)`. Each miss takes the key's lease in
                Redis (the read script), runs the loader and writes the value (the write
                script) in the background; the round ends when every write is answered.
  redis-py      redis.asyncio.Redis (hiredis parser), a connection pool of <tasks> (100):
                `await r.get(k)`; on None, the loader, then `await r.set(k, orjson.dumps(v),
                ex=ttl)`. The least a client can do for a miss: no stampede protection.
  cashews-lock  cache.setup("redis://...", max_connections=<tasks>) and
                `@cache(ttl=..., lock=True)`: a Redis lock (SET NX) around the cached call,
                then GET, the loader, SET (pickled) and the unlock.
  cashews       the same without lock=True: `@cache(ttl=...)`, GET then SET.

Every case gets the same pool size (<tasks> connections); herdcache uses its own one
connection, auto-pipelined. Keys are built before a round starts (Key objects for
herdcache, strings for the others; cashews builds its own from the argument).

A round: <keys> (20,000) distinct keys, never used before (the round and case in the
key), taken in turn by <tasks> (100) concurrent tasks; ops/s = keys / wall time of the
round. Before every round of every case the server is emptied (FLUSHALL: the same
server state for every case, bounded memory) and its stats reset (CONFIG RESETSTAT).
Cases are interleaved, their order rotated each round; each reports the median of
<rounds> (5) rounds. Each case first runs a warm-up round of its own keys (connections
opened, scripts loaded). Checked after every round: the loader ran once per key (every
call was a miss); for herdcache, cache.stats() counted exactly one load and one miss per
key and no coalesced call.

CPU per miss: over the timed rounds, the CPU time of this process's main thread (the
event loop), of its other threads (herdcache's I/O threads) and of redis-server (its
INFO cpu), divided by the misses. Redis commands per miss: INFO commandstats over the
rounds; it counts the commands a Lua script runs as well as the script call itself
(evalsha).

Targets (issue): herdcache >= 3x redis-py's naive GET+SET throughput and >= 10x cashews
lock=True's. --check makes the exit code say whether both were met.

Concurrency: how many of the tasks took any key in a round, and the busiest one's share
of the keys (1% each when they interleave; 100% when one task's calls never yield to the
loop and the others never start).

--profile runs herdcache alone: the warm-up, then one round of <keys> under cProfile
(enabled only around the round), and prints the functions by own time with calls per
miss (cProfile counts each resumption of a coroutine as a call, and times native calls
inside the Python function that makes them). For the native side, run it under perf:
`perf record -F 999 -g -- .venv/bin/python benchmarks/bench_miss.py --only herdcache`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
import uuid

from _harness import print_rows, print_setup, redis_binary, redis_server, redis_server_version, require
from bench_redis import cpu_seconds

SCRIPT = "bench_miss"
ROWS = [{"id": i, "name": f"course {i}", "room": f"R{i:03}"} for i in range(10)]
TTL_S = 3600  # nothing expires during the run
TARGET_X_REDIS_PY = 3.0
TARGET_X_CASHEWS_LOCK = 10.0
WRITE_DRAIN_S = 30.0  # herdcache's background writes: each is answered within its command timeout
CASES = ["herdcache", "redis-py", "cashews-lock", "cashews"]
NEEDS = {"herdcache": "herdcache", "redis.asyncio": "redis-py", "orjson": "redis-py", "cashews": "cashews"}


class Loader:
    """The trivial loader every case runs on a miss: counts its calls, returns the rows."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> list:
        self.calls += 1
        return ROWS


class Case:
    def __init__(self, name: str, note: str) -> None:
        self.name, self.note = name, note
        self.loader = Loader()
        self.miss = None  # async miss(key) -> value
        self.make_key = None  # (prefix, i) -> what miss() takes
        self.settle = None  # async, awaited at the end of a round (herdcache: background writes)
        self.stats = None  # () -> dict of counters (herdcache), compared before/after a round
        self.ops_s: list[float] = []  # one per round
        self.misses = 0  # calls over the timed rounds
        self.cpu = [0.0, 0.0, 0.0]  # CPU s over those rounds: loop thread, other threads, redis-server
        self.wall = 0.0
        self.commands: dict[str, tuple[int, int]] = {}  # Redis commandstats (calls, usec) over those rounds
        self.net = [0, 0]  # bytes into / out of redis-server over those rounds
        self.counters: dict[str, int] = {}  # herdcache's stats deltas over those rounds
        self.problems: list[str] = []  # failed checks
        self.busiest: list[float] = []  # per round: the share of the keys the busiest task took
        self.tasks_used: list[int] = []  # per round: tasks that took any key


# --- the cases ---------------------------------------------------------------------------

async def herdcache_case(stack: contextlib.AsyncExitStack, url: str, tasks: int) -> Case:
    from herdcache import CacheManager, Policy

    case = Case("herdcache", "get_or_load, Policy(memory=False): lease read, load, write behind (one connection)")
    cache = CacheManager(redis_url=url, namespace="miss", policies={"rows": Policy(ttl=TTL_S, memory=False)})
    await stack.enter_async_context(cache)
    loader = case.loader

    async def miss(key):
        return await cache.get_or_load(key, loader)

    async def settle() -> None:
        writes = [w for w in getattr(cache, "_writes", ()) if isinstance(w, asyncio.Future) and not w.done()]
        if writes:
            await asyncio.wait(writes, timeout=WRITE_DRAIN_S)

    def stats() -> dict:
        s = cache.stats()
        res = s["resources"].get("rows", {})
        out = {k: s[k] for k in ("loads", "misses", "hits", "coalesced", "errors", "lease_waits", "lease_timeouts")}
        out.update(res.get("redis", {}))
        out.update({f"redis_{k}": s["redis"].get(k, 0) for k in ("errors", "timeouts")})
        out.update({k: s["redis"].get(k, 0) for k in ("reads_plain", "reads_scripted", "writes_refused")})
        return out

    case.miss, case.settle, case.stats = miss, settle, stats
    case.make_key = lambda prefix, i: cache.key("rows", f"{prefix}-{i}")
    return case


async def redis_py_case(stack: contextlib.AsyncExitStack, url: str, tasks: int) -> Case:
    import orjson
    import redis.asyncio

    case = Case("redis-py", f"GET, on None the loader and SET k orjson.dumps(v) EX; pool of {tasks}")
    client = redis.asyncio.Redis.from_url(url, max_connections=tasks)
    stack.push_async_callback(client.aclose)
    loader, dumps, loads = case.loader, orjson.dumps, orjson.loads

    async def miss(key: str):
        raw = await client.get(key)
        if raw is not None:
            return loads(raw)
        value = loader()
        await client.set(key, dumps(value), ex=TTL_S)
        return value

    case.miss = miss
    case.make_key = lambda prefix, i: f"plain:{prefix}-{i}"
    return case


async def cashews_cases(stack: contextlib.AsyncExitStack, url: str, tasks: int, lock: bool) -> Case:
    from cashews import Cache

    name = "cashews-lock" if lock else "cashews"
    case = Case(name, f"@cache(ttl, {'lock=True' if lock else 'defaults'}), pickled; max_connections={tasks}")
    cache = Cache()
    cache.setup(url, max_connections=tasks)
    stack.push_async_callback(cache.close)
    loader = case.loader

    @cache(ttl=TTL_S, lock=lock, prefix=name)
    async def fetch(key: str):
        return loader()

    case.miss = fetch
    case.make_key = lambda prefix, i: f"{prefix}-{i}"
    return case


async def cashews_lock_case(stack, url, tasks) -> Case:
    return await cashews_cases(stack, url, tasks, True)


async def cashews_case(stack, url, tasks) -> Case:
    return await cashews_cases(stack, url, tasks, False)


BUILDERS = {"herdcache": herdcache_case, "redis-py": redis_py_case, "cashews-lock": cashews_lock_case,
            "cashews": cashews_case}


# --- measuring ---------------------------------------------------------------------------

def info(server, section: str) -> dict[str, str]:
    text = server.command("INFO", section).decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def command_calls(server) -> dict[str, tuple[int, int]]:
    """Per command: (calls, usec) since the last CONFIG RESETSTAT."""
    out = {}
    for name, fields in info(server, "commandstats").items():
        values = dict(f.split("=", 1) for f in fields.split(","))
        out[name.removeprefix("cmdstat_")] = (int(values["calls"]), int(values["usec"]))
    return out


async def run_round(case: Case, keys: list, tasks: int) -> tuple[float, list[int]]:
    """`tasks` tasks take the keys in turn, `await miss(key)` each; the elapsed seconds,
    to the last miss done and (herdcache) the last background write answered, and how
    many keys each task took (all of them to one task: the others never ran)."""
    pending = iter(keys)
    miss = case.miss
    taken = [0] * tasks

    async def worker(t: int) -> None:
        n = 0
        for key in pending:
            await miss(key)
            n += 1
        taken[t] = n

    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    if case.settle is not None:
        await case.settle()
    return time.perf_counter() - started, taken


def delta(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, (int, float))}


async def timed_round(case: Case, server, keys: list, tasks: int) -> None:
    server.command("FLUSHALL")
    server.command("CONFIG", "RESETSTAT")
    gc.collect()
    loads_before = case.loader.calls
    stats_before = case.stats() if case.stats else {}
    cpu_before = cpu_seconds(server)
    elapsed, taken = await run_round(case, keys, tasks)
    cpu_after = cpu_seconds(server)
    case.busiest.append(max(taken) / len(keys))
    case.tasks_used.append(sum(1 for n in taken if n))
    n = len(keys)
    case.cpu = [total + a - b for total, a, b in zip(case.cpu, cpu_after, cpu_before)]
    case.wall += elapsed
    case.misses += n
    case.ops_s.append(n / elapsed)
    for name, (calls, usec) in command_calls(server).items():
        if name != "config|resetstat":
            total = case.commands.get(name, (0, 0))
            case.commands[name] = (total[0] + calls, total[1] + usec)
    stats = info(server, "stats")
    case.net[0] += int(stats["total_net_input_bytes"])
    case.net[1] += int(stats["total_net_output_bytes"])
    loads = case.loader.calls - loads_before
    if loads != n:
        case.problems.append(f"round {len(case.ops_s)}: the loader ran {loads} times for {n} keys")
    if case.stats:
        d = delta(case.stats(), stats_before)
        for k, v in d.items():
            case.counters[k] = case.counters.get(k, 0) + v
        if d.get("loads") != n or d.get("misses") != n or d.get("coalesced") or d.get("hits"):
            case.problems.append(f"round {len(case.ops_s)}: stats counted loads {d.get('loads')}, misses "
                                 f"{d.get('misses')}, hits {d.get('hits')}, coalesced {d.get('coalesced')} "
                                 f"for {n} keys")


async def measure(server, names: list[str], opts, run_id: str) -> list[Case]:
    async with contextlib.AsyncExitStack() as stack:
        cases = [await BUILDERS[name](stack, server.url, opts.tasks) for name in names]
        for case in cases:  # the value, connections, scripts, code paths
            keys = [case.make_key(f"{run_id}-warm", i) for i in range(opts.warmup)]
            value = await case.miss(keys[0])
            if value != ROWS:
                sys.exit(f"{SCRIPT}: {case.name} returned {value!r:.200}")
            await run_round(case, keys[1:], opts.tasks)
        for r in range(opts.rounds):
            for case in cases[r % len(cases):] + cases[: r % len(cases)]:
                keys = [case.make_key(f"{run_id}-r{r}", i) for i in range(opts.keys)]
                await timed_round(case, server, keys, opts.tasks)
    return cases


async def profile(server, opts, run_id: str) -> None:
    """herdcache alone: the warm-up, then one round under cProfile."""
    async with contextlib.AsyncExitStack() as stack:
        case = await herdcache_case(stack, server.url, opts.tasks)
        await run_round(case, [case.make_key(f"{run_id}-warm", i) for i in range(opts.warmup)], opts.tasks)
        keys = [case.make_key(f"{run_id}-prof", i) for i in range(opts.keys)]
        server.command("FLUSHALL")
        gc.collect()
        profiler = cProfile.Profile()
        profiler.enable()
        elapsed, _ = await run_round(case, keys, opts.tasks)
        profiler.disable()
    print(f"herdcache under cProfile: {opts.keys} misses in {elapsed:.2f} s ({opts.keys / elapsed:,.0f}/s with the "
          "profiler's overhead)")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(opts.profile_top)
    print(out.getvalue())
    rows = []
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[: opts.profile_top]
    total = sum(v[2] for v in stats.stats.values())
    for (file, line, func), (cc, nc, tt, ct, _) in entries:
        where = func if file == "~" else f"{file.rsplit('/', 1)[-1]}:{line}({func})"
        rows.append([where, f"{nc / opts.keys:.2f}", f"{tt / opts.keys * 1e6:.2f}", f"{ct / opts.keys * 1e6:.2f}",
                     f"{tt / total:.1%}"])
    print(f"per miss (own time, total of the profiled run {total / opts.keys * 1e6:.1f} us/miss; the profiler "
          "inflates every Python call)")
    print_rows(["function", "calls/miss", "own us/miss", "cum us/miss", "share"], rows)


# --- report ------------------------------------------------------------------------------

def spread(values: list[float], fmt: str = ",.0f") -> str:
    return f"{min(values):{fmt}}..{max(values):{fmt}}"


def report(cases: list[Case], opts, elapsed: float) -> int:
    by_name = {c.name: c for c in cases}
    print(f"cold-key misses: {opts.keys:,} distinct keys per round, {opts.tasks} concurrent tasks, "
          f"median of {opts.rounds} rounds")
    ours = by_name.get("herdcache")
    ours_ops = statistics.median(ours.ops_s) if ours else None
    rows = []
    for c in cases:
        ops = statistics.median(c.ops_s)
        rows.append([c.name, f"{ops:,.0f}", spread(c.ops_s), f"{ours_ops / ops:.2f}" if ours_ops else "-",
                     f"{c.loader.calls}", c.note])
    print_rows(["case", "misses/s", "min..max of rounds", "herdcache x", "loads", "note"], rows, "<>>>><")
    print("loads: the loader's calls, the warm-up rounds included\n")

    print(f"concurrency: how the keys of a round spread over the {opts.tasks} tasks (even: each takes "
          f"{opts.keys / opts.tasks:.0f}, {1 / opts.tasks:.0%})")
    print_rows(["case", "tasks used per round", "busiest task's share per round"],
               [[c.name, ",".join(str(n) for n in c.tasks_used), ",".join(f"{b:.0%}" for b in c.busiest)]
                for c in cases])

    print("CPU per miss over the rounds (clock ticks of 10 ms)")
    print_rows(["case", "loop thread us", "loop busy", "other threads us", "redis-server us", "total us"],
               [[c.name, f"{c.cpu[0] / c.misses * 1e6:.1f}", f"{c.cpu[0] / c.wall:.0%}",
                 f"{c.cpu[1] / c.misses * 1e6:.1f}", f"{c.cpu[2] / c.misses * 1e6:.1f}",
                 f"{sum(c.cpu) / c.misses * 1e6:.1f}"] for c in cases], "<>>>>>")
    print("loop thread: this process's main thread, which runs the event loop; other threads: herdcache's I/O "
          "threads\n")

    print("Redis per miss over the rounds (commandstats: a script's own commands are counted too, and in its "
          "evalsha's time)")
    print_rows(["case", "commands", "bytes in", "bytes out", "by command: calls (us per call)"],
               [[c.name, f"{sum(n for n, _ in c.commands.values()) / c.misses:.2f}", f"{c.net[0] / c.misses:.0f}",
                 f"{c.net[1] / c.misses:.0f}",
                 ", ".join(f"{k} {n / c.misses:.2f} ({us / n:.1f})"
                           for k, (n, us) in sorted(c.commands.items(), key=lambda kv: -kv[1][0])
                           if n / c.misses >= 0.01)] for c in cases], "<>>><")
    if ours:
        print("herdcache stats over the rounds: " + ", ".join(f"{k} {v}" for k, v in ours.counters.items()))
    print(f"measured in {elapsed:.0f} s\n")

    failed = [f"{c.name}: {p}" for c in cases for p in c.problems]
    for line in failed:
        print(f"CHECK FAILED: {line}")
    if ours is None:
        return 1 if failed else 0
    one_load = not ours.problems
    n_rounds = len(ours.ops_s)
    print(f"herdcache, one load per key: {'met' if one_load else 'MISSED'} (stats over {n_rounds} rounds: loads "
          f"{ours.counters.get('loads')}, misses {ours.counters.get('misses')}, coalesced "
          f"{ours.counters.get('coalesced')} for {ours.misses} keys)")
    met = one_load and not failed
    for peer, target in (("redis-py", TARGET_X_REDIS_PY), ("cashews-lock", TARGET_X_CASHEWS_LOCK)):
        if peer in by_name:
            x = ours_ops / statistics.median(by_name[peer].ops_s)
            ok = x >= target
            met &= ok
            print(f"herdcache vs {peer} misses/s: {x:.2f}x (target >= {target:g}x): {'met' if ok else 'MISSED'}")
    if "cashews" in by_name:
        print(f"herdcache vs cashews (no lock) misses/s: {ours_ops / statistics.median(by_name['cashews'].ops_s):.2f}x")
    return 1 if opts.check and not met else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="timed rounds per case; medians are reported (default 5, --quick 3)")
    parser.add_argument("--keys", type=int, help="distinct cold keys per round (default 20000, --quick 2000)")
    parser.add_argument("--tasks", type=int, default=100, help="concurrent tasks (default 100)")
    parser.add_argument("--warmup", type=int, help="keys of each case's warm-up round (default 2000, --quick 500)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 rounds of 2000 keys")
    parser.add_argument("--only", help=f"comma-separated cases out of {','.join(CASES)} (default all)")
    parser.add_argument("--check", action="store_true", help="exit 1 when herdcache misses a target or a check")
    parser.add_argument("--profile", action="store_true", help="herdcache only: one round of --keys under cProfile")
    parser.add_argument("--profile-top", type=int, default=30, help="functions listed by --profile (default 30)")
    opts = parser.parse_args()
    opts.rounds = opts.rounds or (3 if opts.quick else 5)
    opts.keys = opts.keys or (2000 if opts.quick else 20_000)
    opts.warmup = max(2, opts.warmup or (500 if opts.quick else 2000))
    wanted = ["herdcache"] if opts.profile else (opts.only.split(",") if opts.only else CASES)
    if set(wanted) - set(CASES):
        parser.error(f"unknown case(s): {', '.join(sorted(set(wanted) - set(CASES)))}")
    names = [n for n in CASES if n in wanted]
    require(SCRIPT, {m: who for m, who in NEEDS.items() if any(n.startswith(who) for n in names)})

    from redis.utils import HIREDIS_AVAILABLE

    print_setup("bench_miss: cold-key misses (get_or_load), one process, one redis-server",
                ["herdcache", "redis", "hiredis", "orjson", "cashews"],
                redis=f"redis-server {redis_server_version(redis_binary(SCRIPT))} on 127.0.0.1 (own instance, "
                      "no persistence), same machine: server and clients share the CPUs",
                hiredis=f"redis.utils.HIREDIS_AVAILABLE={HIREDIS_AVAILABLE}",
                workload=f"{opts.keys:,} distinct cold keys per round, {opts.tasks} tasks, loader returns "
                         f"{len(ROWS)} dicts (sync, no I/O), ttl {TTL_S} s",
                rounds=f"{opts.rounds} timed rounds per case after a warm-up of {opts.warmup} keys, cases "
                       "interleaved (order rotated), FLUSHALL + CONFIG RESETSTAT before each, gc on"
                       + (" (profile: 1 round of herdcache under cProfile)" if opts.profile else ""),
                loop="asyncio default event loop")
    if not HIREDIS_AVAILABLE and "redis-py" in names:
        print("WARNING: hiredis is not importable: redis-py runs its pure-Python parser\n")

    run_id = uuid.uuid4().hex[:8]
    with redis_server(SCRIPT) as server:
        started = time.monotonic()
        if opts.profile:
            asyncio.run(profile(server, opts, run_id))
            return 0
        cases = asyncio.run(measure(server, names, opts, run_id))
        elapsed = time.monotonic() - started
    return report(cases, opts, elapsed)


if __name__ == "__main__":
    sys.exit(main())
