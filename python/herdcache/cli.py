"""``python -m herdcache``: act on a cache from a shell, without an app endpoint.

    python -m herdcache --redis-url redis://cache:6379/0 --namespace app stats
    python -m herdcache --redis-url URL invalidate --resource courses org42
    python -m herdcache --redis-url URL invalidate --tags org:42 rooms
    python -m herdcache --redis-url URL invalidate --pattern 'courses:*'
    python -m herdcache --redis-url URL invalidate --all
    python -m herdcache --app timetable.cache:cache warm courses org42 --param semester=2

Invalidations go through a CacheManager connected to the same Redis, so they are
broadcast to every instance's memory tier like one made inside an app. ``--app
module:attr`` imports the app's own manager (its Redis, namespace and registered
functions): ``warm`` needs it, and with it arguments are converted to the registered
function's annotations (``org_id: int`` turns ``42`` into 42), and a resource it does not
know (no cached function, policy or entry of that name: a typo) is refused. Without it ARGs are strings,
or JSON with ``--json``. Output is JSON on stdout (a tag or resource invalidation moves
versions in Redis, so it reports what it reaches rather than a count); exit status 0 ok, 1 failed (Redis
unreachable, a loader raised), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import _binding
from .manager import CacheManager, UnknownResource


_PING = ("herdcache-cli", "ping")


class UsageError(Exception):
    """Exit 2: the command line cannot work."""


class Failure(Exception):
    """Exit 1: the command was fine; acting on it failed."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m herdcache", description="Operate a herdcache namespace.")
    parser.add_argument("--redis-url", default=os.environ.get("HERDCACHE_REDIS_URL"),
                        help="the cache's Redis (default: $HERDCACHE_REDIS_URL)")
    parser.add_argument("--namespace", default=None, help='key namespace (default: "app", or the --app manager\'s)')
    parser.add_argument("--app", metavar="MODULE:ATTR", help="import the app's CacheManager (needed by warm)")
    parser.add_argument("--json", action="store_true", help="parse ARGs and --param values as JSON")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("stats", help="the Redis tier's state (counters are per instance: see /stats)")

    invalidate = commands.add_parser("invalidate", help="invalidate by resource prefix, tags, pattern or all")
    mode = invalidate.add_mutually_exclusive_group(required=True)
    mode.add_argument("--resource", nargs="+", metavar=("RESOURCE", "ARG"), help="a resource and a prefix of its key arguments")
    mode.add_argument("--tags", nargs="+", metavar="TAG")
    mode.add_argument("--pattern", help="glob over resource-relative keys, e.g. 'courses:*'")
    mode.add_argument("--all", action="store_true", help="clear the whole namespace")
    invalidate.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a key argument by name (needs --app)")
    invalidate.add_argument("--rewarm", action="store_true", help="run the resource's loader again afterwards (needs --app)")

    warm = commands.add_parser("warm", help="run a registered loader now")
    warm.add_argument("resource")
    warm.add_argument("args", nargs="*", metavar="ARG")
    warm.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    warm.add_argument("--app", metavar="MODULE:ATTR", default=argparse.SUPPRESS, help="as the global --app")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    try:
        result = asyncio.run(run(opts))
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except Failure as exc:
        print(f"herdcache: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


async def run(opts: argparse.Namespace) -> Any:
    if opts.command == "warm" and opts.app is None:
        raise UsageError("warm needs --app MODULE:ATTR: the registered loaders live in the app")
    cache = _manager(opts)
    action = _action(cache, opts)  # checks the arguments before touching Redis
    if not cache.redis_url:
        raise UsageError("the manager has no redis_url: an invalidation or load made in this process "
                         "would reach no instance; give --redis-url or an --app whose manager has one")
    try:
        await cache.start()
        await cache.get(cache.key(*_PING))  # one round trip: are we connected?
        redis = cache.stats()["redis"]
        if not redis.get("connected"):
            raise Failure(f"cannot reach Redis at {_redacted(cache.redis_url)} (circuit: {redis.get('circuit')})")
        return await action()
    finally:
        await cache.close()  # sends what is queued (the invalidation broadcast) before exiting


def _manager(opts: argparse.Namespace) -> CacheManager:
    if opts.app is None:
        if not opts.redis_url:
            raise UsageError("give --redis-url (or set HERDCACHE_REDIS_URL) or --app MODULE:ATTR")
        try:
            return CacheManager(redis_url=opts.redis_url, namespace=opts.namespace or "app")
        except ValueError as exc:
            raise Failure(str(exc)) from None
    cache = _import(opts.app)
    if opts.redis_url and opts.redis_url != (cache.redis_url or ""):
        raise UsageError(f"--redis-url differs from {opts.app}'s ({_redacted(cache.redis_url or 'none')}); give one of them")
    if opts.namespace and opts.namespace != cache.namespace:
        raise UsageError(f"--namespace {opts.namespace!r} differs from {opts.app}'s ({cache.namespace!r})")
    return cache


def _import(spec: str) -> CacheManager:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--app takes MODULE:ATTR (e.g. myservice.cache:cache), got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--app: cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the app's own module failed while importing
        raise Failure(f"--app: importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"--app: {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, CacheManager):
        raise UsageError(f"--app: {spec} is a {type(obj).__name__}, not a CacheManager")
    return obj


def _action(cache: CacheManager, opts: argparse.Namespace) -> Any:
    """Validates the command against the manager and returns the coroutine function doing it."""
    if opts.command == "stats":
        return lambda: _stats(cache)
    if opts.command == "warm":
        fn, bound = _bound(cache, opts.resource, opts.args, opts.param, partial=False, as_json=opts.json)
        return lambda: _warm(cache, fn, bound)
    if opts.tags is not None:
        reach = "every entry carrying one of these tags, in every instance"
        return lambda: _bumped(cache.invalidate_tags(*opts.tags), len(opts.tags), reach, mode="tags", tags=opts.tags)
    if opts.pattern is not None:
        return lambda: _counted(cache.invalidate_pattern(opts.pattern), mode="pattern", pattern=opts.pattern)
    if opts.all:
        return lambda: _counted(cache.clear(), mode="all")
    resource, *args = opts.resource
    if opts.app is not None and resource not in cache.known_resources():
        raise UsageError(f"{opts.app} has no resource {resource!r} (known: {', '.join(sorted(cache.known_resources()))})")
    if resource not in cache.resources:
        if opts.param or opts.rewarm:
            raise UsageError(f"--param and --rewarm need --app with a cached function registered for {resource!r}")
        prefix = [_value(a, opts.json) for a in args]
        reach = f"every entry of {resource!r} under that prefix, in every instance"
        return lambda: _bumped(cache.invalidate(resource, *prefix), 1, reach, mode="resource", resource=resource,
                               prefix=prefix)
    fn, bound = _bound(cache, resource, args, opts.param, partial=not opts.rewarm, as_json=opts.json)

    async def invalidate() -> dict[str, Any]:
        try:  # rewarm: the API's, which reloads the key named (this process holds nothing else)
            result = await _bumped(_binding.invalidate(fn, bound, cache, rewarm=opts.rewarm), 1,
                                   f"every entry of {resource!r} under that prefix, in every instance",
                                   mode="resource", resource=resource, prefix=list(bound.arguments.values()))
        except _binding.RewarmFailed as exc:
            raise Failure(str(exc)) from exc
        except TypeError as exc:  # not a leading run of the key's arguments
            raise Failure(f"{resource}: {exc}") from None
        if opts.rewarm:
            result["rewarmed"] = str(fn.key(*bound.args, **bound.kwargs))
        return result

    return invalidate


def _bound(cache: CacheManager, resource: str, args: list[str], params: list[str], *, partial: bool, as_json: bool = False) -> Any:
    try:
        fn = cache.registered(resource)
    except UnknownResource as exc:
        raise UsageError(str(exc)) from None
    named = {}
    for param in params:
        name, sep, value = param.partition("=")
        if not sep or not name:
            raise UsageError(f"--param takes NAME=VALUE, got {param!r}")
        named[name] = _value(value, as_json)
    try:
        return fn, _binding.bind(fn, [_value(a, as_json) for a in args], named, partial=partial)
    except _binding.BadArguments as exc:
        raise UsageError(str(exc)) from None


def _value(text: str, as_json: bool) -> Any:
    if not as_json:
        return text
    try:
        return json.loads(text)
    except ValueError:
        raise UsageError(f"--json: {text!r} is not JSON (quote strings: '\"o1\"')") from None


async def _warm(cache: CacheManager, fn: Any, bound: Any) -> dict[str, Any]:
    try:
        return {"resource": fn.resource, "key": await _binding.warm(cache, fn, bound)}
    except Exception as exc:
        raise Failure(f"the loader for {fn.resource!r} raised {type(exc).__name__}: {exc}") from exc


async def _counted(count: Any, **fields: Any) -> dict[str, Any]:
    return {**fields, "invalidated": await count}


async def _bumped(removed: Any, versions: int, reach: str, **fields: Any) -> dict[str, Any]:
    """An invalidation Redis makes by moving versions (tags, a resource prefix): it cannot
    count the entries it reaches, so the report says what it reached instead."""
    await removed  # entries removed from this process's memory: none, it served nothing
    return {**fields, "versions_bumped": versions, "reaches": reach}


async def _stats(cache: CacheManager) -> dict[str, Any]:
    # Hit and load counters live in each app instance (its /stats and /metrics); this
    # process has served nothing, so it reports what it can see: the shared tier.
    return {"namespace": cache.namespace, "redis": cache.stats()["redis"]}


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
