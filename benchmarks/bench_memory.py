"""A memory-tier hit: herdcache against the floor and its in-process peers, in one run.

    .venv/bin/python benchmarks/bench_memory.py                  # all cases, 7 x 200k calls
    .venv/bin/python benchmarks/bench_memory.py --only floor,herdcache --check
    .venv/bin/python benchmarks/bench_memory.py --bytes                  # memory per entry instead

Every case is the same fetch function, `fetch(org_id, semester=1)` returning a list of
ten course dicts, cached under its arguments, and each is timed by calling
`fetch("o1", 1)` N times in a row from a coroutine after one call filled the cache: every
timed call is a hit (checked: each loader runs exactly once). The cases:

  floor       awaiting an `async def` that does one dict lookup: no cache can be cheaper
              from async code, so every other case is reported as a ratio to it.
  herdcache   CacheManager() with its defaults (memory tier only), @cache.cached("courses")
              on an async def.
  cachetools  @cached(TTLCache(...)) on a *sync* def, called without await from the
              coroutine. cachetools has no async support (decorating an async def would
              cache the coroutine object, which can be awaited once); calling the cached
              sync function from async code is how it is used there, so it pays no await.
  cashews     cache.setup("mem://"), @cache(ttl=...) on an async def. Its default
              protected=True (stampede protection) runs every call, hits too, in a new
              asyncio Task; `cashews-unprotected` is the same with protected=False.
  aiocache    @cached(cache=Cache.MEMORY) (SimpleMemoryCache) on an async def. Its default
              5 s operation timeout wraps every cache read in asyncio.wait_for (a Task on
              Python < 3.12); `aiocache-no-timeout` is the same with timeout=None.
  The two variants are each peer's fastest configuration: the target below counts them.

Every case's hit hands back the cached object itself unless its note says "a copy".

--bytes measures memory instead of time: for herdcache, cachetools (TTLCache) and theine,
each in a fresh process (_footprint_worker.py), the growth of VmRSS while ENTRIES small
entries go in through the public API (key "bench:items:<i>", a distinct int value, one
tag for herdcache, whose peers have no tags), per entry, median of the runs; and that
minus the key's bytes and the value object (what the library spends on the entry itself).
Target (issue 16): herdcache's overhead at most 64 B per entry.

The peers are in the `bench` extra (scripts/setup.sh installs it into .venv). Target
(issue 2): the herdcache hit at most 3x the floor and faster than every peer; --check
makes the exit code say whether it was met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

from _harness import Case, print_setup, print_table, run_rounds

ROWS = {"o1": [{"id": i, "name": f"course {i}", "room": f"R{i:03}"} for i in range(10)]}
ARGS = ("o1", 1)
TTL_S = 3600  # far beyond the run: no case may expire during it
PEERS = ["cachetools", "cashews", "aiocache"]  # distributions, for the versions printed
TARGET_X_FLOOR = 3.0
FOOTPRINT_LIBRARIES = ["herdcache", "cachetools", "theine"]
TARGET_OVERHEAD_BYTES = 64

loads: Counter[str] = Counter()  # loader runs per case


async def floor_case(stack: contextlib.AsyncExitStack) -> Case:
    async def fetch(org_id: str, semester: int = 1):
        return ROWS[org_id]

    return Case("floor", fetch, "await of an async def doing one dict lookup")


async def herdcache_case(stack: contextlib.AsyncExitStack) -> Case:
    from herdcache import CacheManager

    cache = CacheManager()
    await stack.enter_async_context(cache)

    @cache.cached("courses")
    async def fetch(org_id: str, semester: int = 1):
        loads["herdcache"] += 1
        return ROWS[org_id]

    return Case("herdcache", fetch, "CacheManager() defaults, @cache.cached, async def")


async def cachetools_case(stack: contextlib.AsyncExitStack) -> Case:
    from cachetools import TTLCache, cached

    @cached(TTLCache(maxsize=1024, ttl=TTL_S))
    def fetch(org_id: str, semester: int = 1):
        loads["cachetools"] += 1
        return ROWS[org_id]

    return Case("cachetools", fetch, "@cached(TTLCache) on a sync def, called from async without await")


def cashews_case(name: str, protected: bool):
    async def build(stack: contextlib.AsyncExitStack) -> Case:
        from cashews import Cache

        cache = Cache()  # an instance of the global `cashews.cache`'s class, one per case
        cache.setup("mem://")
        stack.push_async_callback(cache.close)

        @cache(ttl=TTL_S, protected=protected)
        async def fetch(org_id: str, semester: int = 1):
            loads[name] += 1
            return ROWS[org_id]

        return Case(name, fetch, f'cache.setup("mem://"), @cache(ttl=..., protected={protected}), async def')

    return build


def aiocache_case(name: str, timeout: float | None):
    async def build(stack: contextlib.AsyncExitStack) -> Case:
        from aiocache import Cache, cached

        decorator = cached(ttl=TTL_S, cache=Cache.MEMORY, timeout=timeout)

        @decorator
        async def fetch(org_id: str, semester: int = 1):
            loads[name] += 1
            return ROWS[org_id]

        stack.push_async_callback(decorator.cache.close)
        return Case(name, fetch, f"@cached(cache=Cache.MEMORY, timeout={timeout}), async def")

    return build


BUILDERS = {
    "floor": floor_case,
    "herdcache": herdcache_case,
    "cachetools": cachetools_case,
    "cashews": cashews_case("cashews", protected=True),
    "cashews-unprotected": cashews_case("cashews-unprotected", protected=False),
    "aiocache": aiocache_case("aiocache", timeout=5),
    "aiocache-no-timeout": aiocache_case("aiocache-no-timeout", timeout=None),
}
NEEDS = {"herdcache": ("herdcache", "CacheManager"), "cachetools": ("cachetools", "TTLCache"),
         "cashews": ("cashews", "Cache"), "aiocache": ("aiocache", "cached")}  # case prefix → import


def check_importable(names: list[str]) -> None:
    """Exit with a clear message when a case's package is missing."""
    problems = []
    for prefix, (module, attr) in NEEDS.items():
        if not any(n.split("-")[0] == prefix for n in names):
            continue
        try:
            getattr(__import__(module), attr)
        except (ImportError, AttributeError) as e:
            problems.append(f"  {prefix}: {type(e).__name__}: {e}")
    if problems:
        sys.exit("bench_memory: cannot run these cases:\n" + "\n".join(problems) + "\n"
                 "herdcache and the peers (the `bench` extra) are installed into .venv by "
                 "scripts/setup.sh;\nor: pip install cachetools cashews aiocache")


async def measure(names: list[str], calls: int, rounds: int) -> list[Case]:
    async with contextlib.AsyncExitStack() as stack:
        cases = [await BUILDERS[name](stack) for name in names]
        for case in cases:  # fill the caches; see whether a call gives an awaitable and what a hit hands back
            first = case.fn(*ARGS)
            case.awaited = inspect.isawaitable(first)
            value = await first if case.awaited else first
            assert value == ROWS["o1"], f"{case.name} returned {value!r}"
            if value is not ROWS["o1"]:
                case.note += "; a hit returns a copy"
        await run_rounds(cases, ARGS, calls, rounds)
    reloaded = {c.name: loads[c.name] for c in cases[1:] if loads[c.name] != 1}
    if reloaded:
        sys.exit(f"bench_memory: a case did not hit on every call (loader runs: {reloaded})")
    return cases


def footprint(library: str, entries: int) -> dict:
    worker = Path(__file__).with_name("_footprint_worker.py")
    out = subprocess.run([sys.executable, str(worker), library, str(entries)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_bytes(entries: int, runs: int, check: bool) -> int:
    """The --bytes mode: memory per entry of each library, each run in a fresh process."""
    print_setup(f"bench_memory --bytes: VmRSS growth for {entries} small entries, one fresh process per run",
                ["herdcache", "cachetools", "theine"],
                timing=f"median of {runs} runs per library, runs interleaved",
                loop="none: synchronous inserts through each library's public API")
    results: dict[str, list[dict]] = {lib: [] for lib in FOOTPRINT_LIBRARIES}
    for _ in range(runs):
        for lib in FOOTPRINT_LIBRARIES:
            results[lib].append(footprint(lib, entries))
    print(f"{'library':<12}{'B/entry':>10}{'key B':>8}{'value B':>9}{'overhead B':>12}   runs (B/entry)")
    overhead = {}
    for lib, runs_of in results.items():
        per_entry = [r["rss_bytes"] / r["entries"] for r in runs_of]
        key_b = runs_of[0]["key_bytes"] / entries
        value_b = runs_of[0]["value_bytes"] / entries
        median = statistics.median(per_entry)
        overhead[lib] = median - key_b - value_b
        print(f"{lib:<12}{median:>10.0f}{key_b:>8.1f}{value_b:>9.0f}{overhead[lib]:>12.0f}   "
              + " ".join(f"{x:.0f}" for x in per_entry))
    met = overhead["herdcache"] <= TARGET_OVERHEAD_BYTES
    print(f"herdcache overhead: {overhead['herdcache']:.0f} B per entry "
          f"(target <= {TARGET_OVERHEAD_BYTES} B): {'met' if met else 'MISSED'}")
    return 1 if check and not met else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000,
                        help="calls per round (default 200000; slow cases do fewer, see _harness.py)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per case; the median is reported (default 7)")
    parser.add_argument("--only", help=f"comma-separated cases out of {','.join(BUILDERS)} (floor is always run)")
    parser.add_argument("--check", action="store_true", help="exit 1 when herdcache misses its target")
    parser.add_argument("--bytes", action="store_true", help="measure memory per entry instead of hit time")
    parser.add_argument("--entries", type=int, default=200_000, help="entries per --bytes run (default 200000)")
    parser.add_argument("--runs", type=int, default=3, help="--bytes runs per library; the median is reported")
    opts = parser.parse_args()
    if opts.bytes:
        return measure_bytes(opts.entries, opts.runs, opts.check)

    wanted = set(opts.only.split(",")) if opts.only else set(BUILDERS)
    if wanted - set(BUILDERS):
        parser.error(f"unknown case(s): {', '.join(sorted(wanted - set(BUILDERS)))}")
    names = [n for n in BUILDERS if n == "floor" or n in wanted]
    check_importable(names)

    print_setup("bench_memory: a memory-tier hit, fetch(\"o1\", 1), from one coroutine",
                ["herdcache", *PEERS],
                timing=f"median of {opts.rounds} interleaved rounds of up to {opts.calls} calls, after warm-up; "
                       "gc off in rounds",
                loop="asyncio default event loop, one task")
    cases = asyncio.run(measure(names, opts.calls, opts.rounds))
    floor = cases[0]
    print_table(cases, floor)

    by_name = {c.name: c for c in cases}
    if "herdcache" not in by_name:
        return 0
    ours = by_name["herdcache"]
    ratio = ours.median_ns / floor.median_ns
    met = ratio <= TARGET_X_FLOOR
    print(f"herdcache hit: {ratio:.2f}x the floor (target <= {TARGET_X_FLOOR:g}x): {'met' if met else 'MISSED'}")
    peers = [c for c in cases if c.name not in ("floor", "herdcache")]
    if peers:
        fastest = min(peers, key=lambda c: c.median_ns)
        faster = ours.median_ns < fastest.median_ns
        met = met and faster
        print(f"fastest peer: {fastest.name} at {fastest.median_ns:.0f} ns, "
              f"{fastest.median_ns / ours.median_ns:.2f}x herdcache's time: "
              f"{'met' if faster else 'MISSED'} (target: faster than every peer)")
    return 1 if opts.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
