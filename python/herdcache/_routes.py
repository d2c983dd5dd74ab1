"""cached_route: a FastAPI route's encoded response, cached like every other entry.

    @app.get("/api/{org_id}/rooms")
    @cached_route(cache, "rooms", tags=lambda org_id: [f"org:{org_id}"], vary=("accept-language",))
    async def rooms(org_id: str) -> list[Room]: ...

How it works, and why:

- What is cached is the response FastAPI sends: status, headers and body bytes. On a miss
  the endpoint runs and its value is encoded by FastAPI's own request handler, built for a
  copy of the route whose endpoint hands that value back, so the bytes are what the route
  sends uncached (response model, response class, status code, headers set on a
  ``Response`` parameter). A hit replays the bytes: no endpoint, no validation, no encoding.
- An entry is a plain list (every serializer stores it) under
  ``cache.key(resource, <key arguments>, route=<endpoint name>[, vary={header: value}])``:
  the resource and leading arguments a cached function of the same resource has, so an
  invalidation of ``rooms`` for one organization (by prefix, tag or pattern; in code, from
  the admin router or the CLI) drops the function's entry and the route's alike.
- The read path is the manager's (_ops): one flight per key, the Redis lease, the write
  fence, stale-while-revalidate. A stale hit is served at once and its refresh runs while
  the request is still open (the response's background task waits for it), so the
  endpoint's dependencies are not torn down under the refresh.
- Freshness is the entry's own: ``max-age`` is the seconds it stays fresh in this cache,
  so a browser or CDN never keeps it longer than herdcache does. A request's own
  ``Cache-Control`` is not obeyed: clients must not be able to make the database work.
- The first hit in a process turns the entry into bytes in place (body, raw headers): the
  memory tier holds that very list, and later hits send it as it is. The shared tier got
  its payload when the entry was stored, before that.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import decimal
import enum
import functools
import hashlib
import inspect
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

from fastapi import BackgroundTasks, Request, Response
from fastapi.dependencies.utils import get_dependant, get_typed_signature
from fastapi.params import Depends
from fastapi.security import SecurityScopes
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from . import _ops
from ._ops import ASYNC, SERVE, SERVE_AND_REFRESH
from ._validate import check_resource, tag_list
from .decorators import _call_tags

if TYPE_CHECKING:
    from .manager import CacheManager

_METHODS = ("GET", "HEAD")
# Parameters FastAPI fills from the request machinery itself: never part of the key.
_LEFT_OUT = (HTTPConnection, Response, BackgroundTasks, SecurityScopes)
# Dependency values of these types are part of the key (a user id); others (a session) are not.
_PLAIN = (str, int, float, bool, type(None), bytes, uuid.UUID, enum.Enum, datetime.date, datetime.time,
          datetime.timedelta, decimal.Decimal)
_REQUEST, _RESPONSE = "_herdcache_request", "_herdcache_response"
_HANDED_BACK = "herdcache.route_value"  # scope key: the endpoint's value, for the encoding copy of the route
# Headers an entry does not keep from the endpoint's response: herdcache sets them.
_OWN_HEADERS = frozenset({"etag", "cache-control", "vary", "age", "expires"})

# An entry: [status, headers, body, etag, made (wall ns), body is base64]. Stored with
# headers [[name, value], ...] and the body as text; in this process's memory, after the
# first hit, headers are (raw headers, raw headers of a 304) and the body bytes.
STATUS, HEADERS, BODY, ETAG, MADE, BINARY = range(6)


class _NotCached(Exception):
    """The endpoint's response may not be cached (not a 200, a stream, a Set-Cookie):
    raised out of the loader so nothing is stored and the flight's followers learn it."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"status {response.status_code}")
        self.response = response


class _Replay(Response):
    """A response from bytes already encoded: no header building, no rendering."""

    def __init__(self, status: int, raw_headers: list[Any], body: bytes, background: Any = None) -> None:
        self.status_code = status
        self.raw_headers = raw_headers
        self.body = body
        self.background = background


def cached_route(
    cache: CacheManager,
    resource: str,
    *,
    tags: Callable[..., Iterable[str]] | Iterable[str] | None = None,
    vary: Sequence[str] = (),
    private: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Caches a FastAPI endpoint's encoded 200 responses under ``resource``; put it under
    ``@app.get(...)``. The key is the resource, the endpoint's arguments in signature order
    (path, query and header parameters; a dependency's value when it is a plain value such
    as a user id; never a Request, Response, BackgroundTasks or a session) and the values
    of the ``vary`` request headers. ``tags``: a list, or a callable given the endpoint's
    arguments it names, by keyword. ``private``: ``Cache-Control: private`` (browsers only)
    instead of ``public``. GET and HEAD only; other methods run the endpoint uncached."""
    check_resource(resource)
    vary_names = _header_names(vary)
    wanted_raw = frozenset([b"if-none-match", *(n.encode("latin-1") for n in vary_names)])
    static_tags: list[str] = []
    tags_fn = None
    if callable(tags):
        tags_fn = tags
    elif tags is not None:
        static_tags = tag_list(tags)
    visibility = b"private" if private else b"public"

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise TypeError(f"cached_route caches whole responses; {fn.__qualname__} streams")
        keyed = _key_parameters(fn)  # [(name, is a dependency)]
        tag_names = _named_by(tags_fn, [p for p in inspect.signature(fn).parameters])
        is_async = inspect.iscoroutinefunction(fn)
        engine = cache._engine
        policy = engine.policy(resource)
        swr = b", stale-while-revalidate=%d" % int(policy.stale) if policy.stale > 0 else b""
        # Freshness of an entry the memory tier does not hold (a memory=False policy): the
        # shortest lifetime jitter could have given it.
        shortest_ns = int(policy.ttl * (1 - policy.jitter) * 1e9)
        static_params = {"route": fn.__name__}
        encoders: dict[int, tuple[Any, Callable[..., Any]]] = {}  # id(route) -> (route, its encoding handler)

        async def call(kwargs: dict[str, Any]) -> Any:
            return await fn(**kwargs) if is_async else await run_in_threadpool(fn, **kwargs)

        signature, request_name, response_name = _with_request(fn)

        @functools.wraps(fn)
        async def endpoint(**kwargs: Any) -> Any:
            request: Request = kwargs.pop(_REQUEST) if request_name == _REQUEST else kwargs[request_name]
            sub_response: Response = kwargs.pop(_RESPONSE) if response_name == _RESPONSE else kwargs[response_name]
            scope = request.scope
            if scope["method"] not in _METHODS:
                return await call(kwargs)
            wanted = _request_headers(scope["headers"], wanted_raw)
            values = []
            for name, dependency in keyed:
                value = kwargs[name]
                if dependency and not isinstance(value, _PLAIN):
                    continue  # a session, a connection: not what the response is made from
                values.append(_key_value(fn, name, value))
            params = static_params if not vary_names else {
                **static_params, "vary": {h: wanted.get(h) for h in vary_names}}
            cache._ready()
            key = engine.key(resource, tuple(values), params)

            step, entry, fresh_until = engine.get(key)
            background = None
            if step != SERVE:
                loaded = _Load(cache, call, kwargs, request, sub_response, vary_names, encoders)
                entry_tags = static_tags + _call_tags(resource, tags_fn, (), {n: kwargs[n] for n in tag_names}) \
                    if tags_fn is not None else static_tags
                if step == SERVE_AND_REFRESH:  # stale, or picked for an early refresh: served while one runs
                    flight = _ops.refresh(cache, ASYNC, key, loaded, entry_tags, None, fresh_until)
                    if flight is not None:
                        background = BackgroundTask(_landed, flight)
                else:
                    try:
                        entry = await _ops.load(cache, ASYNC, key, loaded, entry_tags, None)
                    except _NotCached as refused:
                        if loaded.ran:  # this request's own run: its response as the route made it
                            return refused.response
                        if isinstance(getattr(refused.response, "body", None), bytes):
                            return _Replay(refused.response.status_code, list(refused.response.raw_headers),
                                           bytes(refused.response.body))
                        return await call(kwargs)  # a stream cannot be shared: run it for this caller too
                    held, _, fresh_until = engine.get(key, False)
                    if held not in (SERVE, SERVE_AND_REFRESH):  # not in memory (memory=False, or fenced)
                        fresh_until = entry[MADE] + shortest_ns
                    background = loaded.background
            return _replay(entry, fresh_until, engine.wall_ns(), scope["method"], wanted, visibility, swr, background)

        endpoint.__signature__ = signature  # type: ignore[attr-defined]
        endpoint.resource = resource  # type: ignore[attr-defined]
        return endpoint

    return decorate


class _Load:
    """The loader of one request's miss: runs the endpoint, encodes its value as the route
    would, and returns the entry to store (or raises _NotCached)."""

    __slots__ = ("cache", "call", "kwargs", "request", "sub_response", "vary", "encoders", "ran", "background")

    def __init__(self, cache: CacheManager, call: Callable[..., Any], kwargs: dict[str, Any], request: Request, sub_response: Response,
                 vary: tuple[str, ...], encoders: dict[int, tuple[Any, Callable[..., Any]]]) -> None:
        self.cache, self.call, self.kwargs = cache, call, kwargs
        self.request, self.sub_response, self.vary, self.encoders = request, sub_response, vary, encoders
        self.ran = False
        self.background: Any = None

    async def __call__(self) -> list[Any]:
        self.ran = True
        value = await self.call(self.kwargs)
        if isinstance(value, Response):
            response = value  # FastAPI sends a returned Response as it is
        else:
            self.request.scope[_HANDED_BACK] = (value, self.sub_response)
            response = await _encoder(self.request, self.encoders)(self.request)
        if not _cacheable(response):
            raise _NotCached(response)
        self.background = response.background
        return _entry(response, self.vary, self.cache._engine.wall_ns())


def _cacheable(response: Response) -> bool:
    if response.status_code != 200 or not isinstance(getattr(response, "body", None), bytes):
        return False
    for name, value in response.raw_headers:
        if name == b"set-cookie":
            return False  # one client's cookie must not be replayed to the next
        if name == b"cache-control" and b"no-store" in value.lower():
            return False
    return True


def _entry(response: Response, vary: tuple[str, ...], made_ns: int) -> list[Any]:
    body = bytes(response.body)
    headers: list[list[str]] = []
    varies: list[str] = []
    for raw_name, raw_value in response.raw_headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "vary":
            varies.extend(v.strip() for v in value.split(",") if v.strip())
        elif name not in _OWN_HEADERS:
            headers.append([name, value])
    for name in vary:
        if name not in (v.lower() for v in varies):
            varies.append(name)
    if varies:
        headers.append(["vary", ", ".join(varies)])
    etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    try:
        text, binary = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, binary = base64.b64encode(body).decode("ascii"), True
    return [response.status_code, headers, text, etag, made_ns, binary]


def _replay(entry: list[Any], fresh_until: int, now: int, method: str, request_headers: dict[str, Any], visibility: bytes,
            swr: bytes, background: Any) -> Response:
    if type(entry[BODY]) is not bytes:
        _prepare(entry)
    full, not_modified = entry[HEADERS]
    left = (fresh_until - now) // 1_000_000_000
    control = (b"cache-control", b"%s, max-age=%d%s" % (visibility, left if left > 0 else 0, swr))
    match = request_headers.get("if-none-match")
    if match is not None and _etag_matches(match, entry[ETAG]):
        return _Replay(304, [*not_modified, control], b"", background)
    return _Replay(entry[STATUS], [*full, control], entry[BODY] if method != "HEAD" else b"", background)


def _prepare(entry: list[Any]) -> None:
    """Turns a stored entry into what a hit sends, in place (see the module's docstring)."""
    body = base64.b64decode(entry[BODY]) if entry[BINARY] else entry[BODY].encode("utf-8")
    etag = (b"etag", entry[ETAG].encode("ascii"))
    full = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in entry[HEADERS]]
    full.append(etag)
    not_modified = [h for h in full if h[0] == b"vary"] + [etag]
    entry[HEADERS] = (full, not_modified)
    entry[BODY] = body


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 13.1.2): W/"x" matches "x"; * matches any."""
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


async def _landed(flight: Any) -> None:
    """The background task of a stale hit: the request (and the endpoint's dependencies)
    stays open until the refresh it started lands. A failed refresh is logged where it
    ran (_ops), and the stale entry keeps serving; here there is nothing left to tell."""
    waiter = flight.wait()
    await asyncio.wait([waiter])
    if not waiter.cancelled():
        waiter.exception()  # retrieved, not raised: the refresh logged it


# --- the encoding copy of a route --------------------------------------------------------

def _encoder(request: Request, encoders: dict[int, tuple[Any, Callable[..., Any]]]) -> Callable[..., Any]:
    """FastAPI's request handler for a copy of the request's route whose endpoint hands
    back the value the real endpoint returned (built once per route)."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "get_route_handler"):
        raise RuntimeError("cached_route must sit under a FastAPI path operation decorator (@app.get(...))")
    known = encoders.get(id(route))
    if known is not None and known[0] is route:
        return known[1]
    shadow = copy.copy(route)
    shadow.dependant = get_dependant(path=route.path_format, call=_hand_back)
    shadow.body_field = None  # the real route read the body already
    handler: Callable[..., Any] = shadow.get_route_handler()
    encoders[id(route)] = (route, handler)
    return handler


async def _hand_back(request: Request, response: Response) -> Any:
    """The copy's endpoint: the real endpoint's value, and the status and headers it set
    on its Response parameter, which FastAPI merges into the response as it always does."""
    value, sub_response = request.scope.pop(_HANDED_BACK)
    if sub_response.status_code is not None:
        response.status_code = sub_response.status_code
    response.raw_headers.extend(sub_response.raw_headers)
    return value


# --- signatures and keys -----------------------------------------------------------------


def _with_request(fn: Callable[..., Any]) -> tuple[inspect.Signature, str, str]:
    """The endpoint's signature plus the Request and Response parameters the wrapper needs,
    unless it has them (FastAPI fills one parameter of each, found by its annotation), and
    the names they have."""
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    names = {Request: _REQUEST, Response: _RESPONSE}
    for p in get_typed_signature(fn).parameters.values():
        for kind in names:
            if isinstance(p.annotation, type) and issubclass(p.annotation, kind):
                names[kind] = p.name
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
             for kind, name in names.items() if name in (_REQUEST, _RESPONSE)]
    at = next((i for i, p in enumerate(params) if p.kind == inspect.Parameter.VAR_KEYWORD), len(params))
    return signature.replace(parameters=params[:at] + extra + params[at:]), names[Request], names[Response]


def _key_parameters(fn: Callable[..., Any]) -> list[tuple[str, bool]]:
    """The endpoint's parameters that make up the key, in order: (name, is a dependency)."""
    out = []
    for p in get_typed_signature(fn).parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        annotation, metadata = p.annotation, []
        if get_origin(annotation) is Annotated:
            annotation, *metadata = get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, _LEFT_OUT):
            continue
        dependency = isinstance(p.default, Depends) or any(isinstance(meta, Depends) for meta in metadata)
        out.append((p.name, dependency))
    return out


def _named_by(tags_fn: Any, names: list[str]) -> list[str]:
    """The endpoint arguments a tags= callable is given: those it names (all, with **kwargs)."""
    if tags_fn is None:
        return []
    try:
        params = inspect.signature(tags_fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: give it everything
        return [n for n in names if n not in (_REQUEST, _RESPONSE)]
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params):
        return list(names)
    accepted = {p.name for p in params if p.kind != inspect.Parameter.VAR_POSITIONAL}
    return [n for n in names if n in accepted]


def _key_value(fn: Callable[..., Any], name: str, value: Any) -> Any:
    """An argument as the key holds it: FastAPI's parsed types (UUID, dates, enums,
    Decimal, models) by their JSON form."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return [_key_value(fn, name, v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_key_value(fn, name, v) for v in value), key=repr)
    dump = getattr(value, "model_dump", None)  # a pydantic model of query parameters
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (bytes, dict)):
        return value
    raise TypeError(f"cached_route {fn.__qualname__}: argument {name!r} of type {kind.__name__} cannot be part "
                    "of a cache key (a dependency giving an object is left out; a parameter is not)")


def _header_names(vary: Sequence[str]) -> tuple[str, ...]:
    if isinstance(vary, str):
        vary = (vary,)
    names = tuple(dict.fromkeys(str(v).strip().lower() for v in vary))
    if any(not n or n in ("*", "if-none-match") for n in names):
        raise ValueError(f"vary names request headers (not '*' or if-none-match), got {tuple(vary)!r}")
    return names


def _request_headers(raw: Iterable[tuple[bytes, bytes]], wanted: frozenset[bytes]) -> dict[str, str]:
    """If-None-Match and the vary headers of a request, in one pass (repeats joined by ", ").
    ASGI servers give header names lowercased."""
    found: dict[str, str] = {}
    for raw_name, raw_value in raw:
        if raw_name in wanted:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            found[name] = f"{found[name]}, {value}" if name in found else value
    return found
