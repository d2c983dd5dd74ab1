"""python -m herdcache: argument handling without Redis, and the commands (subprocesses)
against a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from herdcache import CacheManager
from herdcache.cli import _redacted, main

from background import eventually

APP = """
import os
from herdcache import CacheManager, Policy

# "config" has a policy and no cached function: set()/get() entries
cache = CacheManager(redis_url=os.environ.get("HC_REDIS_URL"), namespace="cli", policies={"config": Policy(ttl=60)})
LOADS = []


@cache.cached("courses", tags=lambda org_id, semester=1: [f"org:{org_id}"])
async def courses(org_id: str, semester: int = 1) -> list:
    LOADS.append(("courses", org_id, semester))
    return [org_id, semester]


@cache.cached("rooms")
def rooms(org_id: int) -> list:
    if org_id < 0:
        raise LookupError("no such org")
    return [org_id, "room"]


not_a_cache = 42
"""


@pytest.fixture
def app(tmp_path, monkeypatch):
    """An importable app module, `cliapp:cache`, memory-only unless HC_REDIS_URL is set."""
    (tmp_path / "cliapp.py").write_text(APP)
    (tmp_path / "brokenapp.py").write_text("raise RuntimeError('no settings')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("HERDCACHE_REDIS_URL", raising=False)
    yield tmp_path
    for name in ("cliapp", "brokenapp"):
        sys.modules.pop(name, None)


def usage_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    return capsys.readouterr().err


# --- without Redis: parsing and errors ------------------------------------------------------


def test_needs_a_redis_url_or_an_app(app, capsys):
    assert "give --redis-url (or set HERDCACHE_REDIS_URL) or --app" in usage_error(capsys, "stats")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invalidate"], "one of the arguments --resource --tags --pattern --all is required"),
        (["invalidate", "--all", "--tags", "t"], "not allowed with argument --all"),
        (["invalidate", "--pattern", "a*", "--resource", "r"], "not allowed with argument --pattern"),
        (["invalidate", "--tags"], "expected at least one argument"),
        (["warm"], "the following arguments are required: resource"),
        (["frobnicate"], "invalid choice"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_argument_errors(app, capsys, argv, message):
    assert message in usage_error(capsys, "--redis-url", "redis://127.0.0.1:1", *argv)


def test_warm_needs_the_app(app, capsys):
    assert "warm needs --app" in usage_error(capsys, "--redis-url", "redis://127.0.0.1:1", "warm", "courses", "o1")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cliapp", "--app takes MODULE:ATTR"),
        ("nosuchmodule:cache", "cannot import 'nosuchmodule'"),
        ("cliapp:nope", "has no attribute 'nope'"),
        ("cliapp:not_a_cache", "is a int, not a CacheManager"),
    ],
)
def test_bad_app(app, capsys, spec, message):
    assert message in usage_error(capsys, "--app", spec, "stats")


def test_app_failing_to_import_is_a_failure(app, capsys):
    assert main(["--app", "brokenapp:cache", "stats"]) == 1
    assert "importing 'brokenapp' raised RuntimeError: no settings" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["warm", "nope"], "no cached function is registered for resource 'nope'"),
        (["warm", "courses"], "missing a required argument: 'org_id'"),
        (["warm", "courses", "o1", "2", "3"], "too many positional arguments"),
        (["warm", "rooms", "forty-two"], "argument 'org_id': Input should be a valid integer"),
        (["warm", "courses", "o1", "--param", "semester"], "--param takes NAME=VALUE"),
        (["warm", "courses", "o1", "--param", "year=1"], "unexpected keyword argument 'year'"),
        (["--json", "warm", "courses", "o1"], "--json: 'o1' is not JSON"),
        (["invalidate", "--resource", "courses", "--param", "semester=1"], "leading run"),
        (["invalidate", "--resource", "config", "--param", "x=1"], "need --app with a cached function registered"),
        (["invalidate", "--resource", "courses", "--rewarm"], "missing a required argument"),
        (["invalidate", "--resource", "coures", "o1"], "cliapp:cache has no resource 'coures' (known: "),
    ],
)
def test_arguments_are_checked_against_the_registered_function(app, capsys, argv, message):
    err = usage_error(capsys, "--app", "cliapp:cache", *argv)
    assert message in err


def test_memory_only_manager_is_refused(app, capsys):
    # Valid arguments, but an invalidation from this process would reach nobody.
    err = usage_error(capsys, "--app", "cliapp:cache", "invalidate", "--tags", "org:o1")
    assert "the manager has no redis_url" in err
    import cliapp

    assert cliapp.LOADS == []


def test_redis_url_must_agree_with_the_app(app, capsys):
    err = usage_error(capsys, "--app", "cliapp:cache", "--redis-url", "redis://other:6379/0", "stats")
    assert "--redis-url differs from cliapp:cache's" in err
    assert "--namespace 'x' differs" in usage_error(capsys, "--app", "cliapp:cache", "--namespace", "x", "stats")


def test_redacted_hides_the_password():
    assert _redacted("redis://:hunter2@cache:6380/1") == "redis://:***@cache:6380/1"
    assert _redacted("redis://user:pw@cache/0") == "redis://user:***@cache/0"
    assert _redacted("redis://cache:6379/0") == "redis://cache:6379/0"


def test_module_entry_point(app):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("HERDCACHE_REDIS_URL", None)
    ok = subprocess.run([sys.executable, "-m", "herdcache", "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0 and "invalidate" in ok.stdout and "warm" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "herdcache", "stats"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "--redis-url" in bad.stderr


# --- against a real redis-server --------------------------------------------------------


def redis_cache(redis_url: str, **kwargs) -> CacheManager:
    try:
        return CacheManager(redis_url=redis_url, **kwargs)
    except ValueError as exc:
        if "not available" in str(exc):
            pytest.skip("the Redis tier is not in this build yet")
        raise


def cli(app_dir, redis_url: str | None, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(app_dir), *sys.path])}
    if redis_url:
        env["HC_REDIS_URL"] = redis_url
    return subprocess.run([sys.executable, "-m", "herdcache", *argv], capture_output=True, text=True, env=env, timeout=60)




@pytest.fixture
async def fleet(redis_url, app):
    """This process plays an app instance: the CLI's invalidations must reach its memory tier."""
    async with redis_cache(redis_url, namespace="cli") as cache:
        yield cache


async def fill(cache: CacheManager) -> dict:
    keys = {
        "o1-1": cache.key("courses", "o1", 1),
        "o1-2": cache.key("courses", "o1", 2),
        "o2-1": cache.key("courses", "o2", 1),
        "rooms": cache.key("rooms", 7),
    }
    for name, key in keys.items():
        await cache.set(key, name, tags=[f"org:{name[:2]}"])
    return keys


@pytest.mark.redis
async def test_invalidate_tags_reaches_this_instance(fleet, redis_url, app):
    keys = await fill(fleet)
    done = cli(app, None, "--redis-url", redis_url, "--namespace", "cli", "invalidate", "--tags", "org:o1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"mode": "tags", "tags": ["org:o1"], "versions_bumped": 1,
                                       "reaches": "every entry carrying one of these tags, in every instance"}

    async def gone() -> bool:
        return await fleet.get(keys["o1-1"]) is None and await fleet.get(keys["o1-2"]) is None

    await eventually(gone)
    assert await fleet.get(keys["o2-1"]) == "o2-1"


@pytest.mark.redis
async def test_invalidate_resource_prefix_pattern_and_all(fleet, redis_url, app):
    keys = await fill(fleet)
    base = ("--redis-url", redis_url, "--namespace", "cli", "invalidate")
    done = cli(app, None, *base, "--resource", "courses", "o2")  # no --app: ARGs are strings
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"mode": "resource", "resource": "courses", "prefix": ["o2"],
                                       "versions_bumped": 1,
                                       "reaches": "every entry of 'courses' under that prefix, in every instance"}

    async def o2_gone() -> bool:
        return await fleet.get(keys["o2-1"]) is None

    await eventually(o2_gone)
    assert cli(app, None, *base, "--pattern", "courses:o1:*").returncode == 0

    async def o1_gone() -> bool:
        return await fleet.get(keys["o1-1"]) is None

    await eventually(o1_gone)
    assert await fleet.get(keys["rooms"]) == "rooms"
    assert cli(app, None, *base, "--all").returncode == 0

    async def all_gone() -> bool:
        return await fleet.get(keys["rooms"]) is None

    await eventually(all_gone)


@pytest.mark.redis
async def test_invalidate_with_the_app_converts_arguments(fleet, redis_url, app):
    keys = await fill(fleet)
    done = cli(app, redis_url, "--app", "cliapp:cache", "invalidate", "--resource", "rooms", "7")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["prefix"] == [7]  # "7" became the int the key was built from

    async def gone() -> bool:
        return await fleet.get(keys["rooms"]) is None

    await eventually(gone)


@pytest.mark.redis
async def test_warm_fills_redis_for_every_instance(fleet, redis_url, app):
    done = cli(app, redis_url, "--app", "cliapp:cache", "warm", "courses", "o9", "--param", "semester=3")
    assert done.returncode == 0, done.stderr
    key = fleet.key("courses", "o9", 3)
    assert json.loads(done.stdout) == {"resource": "courses", "key": str(key)}
    assert await fleet.get(key) == ["o9", 3]  # from Redis: this process never loaded it


@pytest.mark.redis
async def test_warm_loader_failure_exits_1(fleet, redis_url, app):
    done = cli(app, redis_url, "warm", "--app", "cliapp:cache", "rooms", "-1")
    assert done.returncode == 1
    assert "the loader for 'rooms' raised LookupError" in done.stderr


@pytest.mark.redis
async def test_stats_reports_redis(fleet, redis_url, app):
    done = cli(app, None, "--redis-url", redis_url, "stats")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["namespace"] == "app"
    assert stats["redis"]["connected"] is True and stats["redis"]["configured"] is True


@pytest.mark.redis
async def test_unreachable_redis_exits_1(fleet, app):
    done = cli(app, None, "--redis-url", "redis://:secret@127.0.0.1:1/0", "invalidate", "--all")
    assert done.returncode == 1
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in done.stderr and "secret" not in done.stderr

