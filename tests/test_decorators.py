"""@cache.cached: key binding, the fast path's agreement with the slow path, helpers; run
on every tier (the `tier` fixture: memory alone, and memory in front of Redis)."""

import asyncio
import inspect

import pytest

from herdcache import CacheManager, ManualClock, Policy, UnknownResource


@pytest.fixture
async def cache(tier):
    async with tier.open(namespace="d", policies={"courses": Policy(ttl=60, jitter=0)}, clock=ManualClock()) as c:
        yield c


async def test_calls_that_bind_the_same_share_one_entry(cache):
    calls = []

    @cache.cached("courses")
    async def fetch(org_id: str, semester: int = 1):
        calls.append((org_id, semester))
        return [org_id, semester]

    first = await fetch("o1")
    assert await fetch("o1", 1) is first
    assert await fetch(org_id="o1", semester=1) is first
    assert await fetch("o1", semester=1) is first
    assert calls == [("o1", 1)]
    assert await fetch("o1", 2) == ["o1", 2]
    assert len(calls) == 2
    assert fetch.key("o1") == cache.key("courses", "o1", 1)
    assert str(fetch.key(org_id="o1")) == "d:courses:o1:1"


async def test_types_are_part_of_the_key(cache):
    @cache.cached("r")
    async def f(x):
        return repr(x)

    assert await f(1) == "1"
    assert await f("1") == "'1'"
    assert await f(True) == "True"
    assert await f(1.0) == "1.0"
    assert await f(None) == "None"
    assert len({str(f.key(v)) for v in (1, "1", True, 1.0, None, b"1", [1], {"1": 1})}) == 8


async def test_binding_errors_are_type_errors_like_pythons(cache):
    @cache.cached("courses")
    async def fetch(org_id, semester=1, *, lang="en"):
        return 1

    with pytest.raises(TypeError, match="missing .*argument.*'org_id'"):
        await fetch()
    with pytest.raises(TypeError, match="multiple values"):
        await fetch("o1", org_id="o2")
    with pytest.raises(TypeError, match="unexpected keyword"):
        await fetch("o1", nope=1)
    with pytest.raises(TypeError, match="positional argument"):
        await fetch("o1", 1, 2)
    with pytest.raises(TypeError, match="cannot build a cache key"):
        await fetch(object())
    assert await fetch("o1", lang="fr") == 1
    assert fetch.key("o1", lang="fr") != fetch.key("o1")


async def test_generated_wrapper_keeps_parameter_kinds(cache):
    @cache.cached("kinds")
    async def f(a, /, b, *, c=3):
        return (a, b, c)

    assert await f(1, 2) == [1, 2, 3]  # unannotated: JSON's types, on every tier
    assert await f(1, b=2, c=4) == [1, 2, 4]
    assert f.key(1, 2) == cache.key("kinds", 1, 2, 3)
    with pytest.raises(TypeError):
        await f(a=1, b=2)  # positional-only stays positional-only
    with pytest.raises(TypeError):
        await f(1, 2, 4)  # keyword-only stays keyword-only
    assert inspect.signature(f) == inspect.signature(f.uncached)


async def test_var_args_and_kwargs_are_keyed(cache):
    @cache.cached("v")
    async def f(a, *rest, **opts):
        return (a, rest, opts)

    assert await f(1, 2, 3, x=1) == [1, [2, 3], {"x": 1}]  # unannotated: JSON's types
    assert str(f.key(1, 2, 3, x=1)) == "d:v:1:[2,3]:{x=1}"
    assert f.key(1, y=2, x=1) == f.key(1, x=1, y=2)


async def test_methods_leave_self_out_of_the_key(cache):
    class Client:
        def __init__(self, n):
            self.n = n

        @cache.cached("rooms")
        async def rooms(self, org_id):
            return [org_id, self.n]

    assert await Client(1).rooms("o1") == ["o1", 1]
    assert await Client(2).rooms("o1") == ["o1", 1]  # shared across instances
    assert str(Client.rooms.key(None, "o1")) == "d:rooms:o1"


async def test_ignore_leaves_parameters_out(cache):
    @cache.cached("q", ignore=("conn",))
    async def query(conn, org_id):
        return org_id

    assert str(query.key(object(), "o1")) == "d:q:o1"
    with pytest.raises(ValueError, match="does not have"):

        @cache.cached("q2", ignore=("nope",))
        async def other(x):
            return x


async def test_tags_callable_and_invalidate_helpers(cache):
    calls = []

    @cache.cached("courses", tags=lambda org_id, semester=1: [f"org:{org_id}"])
    async def fetch(org_id, semester=1):
        calls.append(org_id)
        return org_id

    await fetch("o1")
    await fetch("o1", 2)
    await fetch("o2")
    assert await cache.invalidate_tags("org:o1") == 2
    await fetch("o1")
    assert calls == ["o1", "o1", "o2", "o1"]
    assert await fetch.invalidate("o1") == 1
    assert await fetch.invalidate(org_id="o2") == 1
    assert await fetch.invalidate() == 0
    with pytest.raises(TypeError, match="leading run"):
        await fetch.invalidate(semester=1)


async def test_warm_and_uncached(cache):
    n = 0

    @cache.cached("courses")
    async def fetch(org_id, semester=1):
        nonlocal n
        n += 1
        return n

    assert await fetch("o1") == 1
    assert await fetch.warm("o1") == 2  # reloads and replaces
    assert await fetch("o1") == 2
    assert await cache.warm("courses", "o1") == 3
    assert await fetch.uncached("o1") == 4
    assert await fetch("o1") == 3
    with pytest.raises(UnknownResource):
        await cache.warm("nope")
    with pytest.raises(LookupError):
        await cache.warm("nope")


async def test_resource_registered_twice_is_refused(cache):
    @cache.cached("x")
    async def a():
        return 1

    with pytest.raises(ValueError, match="already cached"):

        @cache.cached("x")
        async def b():
            return 2


async def test_decorated_async_coalesces(cache):
    calls = 0

    @cache.cached("courses")
    async def fetch(org_id, semester=1):
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return {"org": org_id}

    results = await asyncio.gather(*(fetch("o1") for _ in range(500)))
    assert calls == 1 and all(r is results[0] for r in results)


def test_sync_functions_get_a_sync_wrapper(cache):
    calls = []

    @cache.cached("courses", tags=["static"])
    def fetch(org_id, semester=1):
        calls.append(org_id)
        return [org_id]

    assert not asyncio.iscoroutinefunction(fetch)
    first = fetch("o1")
    assert fetch(org_id="o1", semester=1) is first
    assert calls == ["o1"]
    assert fetch.invalidate("o1") == 1
    fetch("o1")
    assert cache.sync.invalidate_tags("static") == 1
    assert fetch.warm("o1") == ["o1"]
    assert len(calls) == 3
    assert cache.sync.warm("courses", "o2") == ["o2"]


def test_warm_reloads_a_fresh_entry_on_every_tier(cache):
    # Regression: on the Redis tier warm() took the fresh copy in Redis for one another
    # process had just refreshed, and returned it without running the loader.
    n = 0

    @cache.cached("courses")
    def fetch(org_id):
        nonlocal n
        n += 1
        return n

    assert fetch("o1") == 1
    assert fetch.warm("o1") == 2
    assert cache.sync.warm("courses", "o1") == 3
    assert fetch("o1") == 3


def test_ttl_override_is_validated(cache):
    with pytest.raises(ValueError, match="ttl"):
        cache.cached("x", ttl=-5)


async def test_an_argument_keys_cannot_hold_names_the_function_the_parameter_and_the_fix(cache):
    class Session:
        pass

    @cache.cached("rooms")
    async def rooms(org_id: int, db: Session) -> list:
        return [org_id]

    fix = r'@cache.cached\("rooms", ignore=\("db",\)\)'
    for call in (lambda: rooms(1, Session()), lambda: rooms(1, db=[Session()]), lambda: rooms.key(1, Session())):
        with pytest.raises(TypeError, match=r"cached function 'rooms', parameter 'db': .*Session.*" + fix):
            result = call()
            if asyncio.iscoroutine(result):
                await result
    assert cache.stats()["loads"] == 0

    @cache.cached("rooms2", ignore=("db",))
    async def rooms2(org_id: int, db: Session) -> list:
        return [org_id]

    assert await rooms2(1, Session()) == [1]


async def test_a_tags_callable_that_fails_says_which_cached_function(cache):
    @cache.cached("rooms", tags=lambda org_id, missing: [f"org:{org_id}"])
    async def rooms(org_id):
        return [org_id]

    @cache.cached("courses", tags=lambda org_id: [{}][org_id])
    async def courses(org_id):
        return [org_id]

    for call, error, name in ((rooms, TypeError, "rooms"), (courses, IndexError, "courses")):
        with pytest.raises(error) as raised:
            await call(1)
        said = "".join(getattr(raised.value, "__notes__", [])) + str(raised.value)
        assert f"tags= of cached function '{name}' failed" in said
    assert cache.stats()["loads"] == 0


def test_a_policy_name_that_looks_like_a_typo_warns_once():
    m = CacheManager(policies={"room": Policy(ttl=60), "courses": Policy(ttl=60)})
    with pytest.warns(UserWarning, match=r"cached function 'rooms' has no policy.*\['room'\].*a typo"):
        @m.cached("rooms")
        def rooms(org_id):
            return [org_id]

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: no second warning, and none for the right names

        @m.cached("rooms2")
        def rooms2(org_id):
            return [org_id]

        right = CacheManager(policies={"rooms": Policy(ttl=60)})

        @right.cached("rooms")
        def rooms3(org_id):
            return [org_id]

        @right.cached("courses")  # no policy, but nothing close to it unused
        def courses(org_id):
            return [org_id]
