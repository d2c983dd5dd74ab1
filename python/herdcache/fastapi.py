"""The admin endpoints for a FastAPI app.

    from fastapi import Depends
    from herdcache.fastapi import admin_router

    app.include_router(admin_router(cache, dependencies=[Depends(require_admin)]), prefix="/api/cache")

``POST /invalidate``, ``GET /stats``, ``POST /warm``, ``GET /health`` and ``GET /metrics``
on top of the manager's public API. Invalidations go through the manager, so with Redis
they reach every instance. Bodies are pydantic models with unknown fields forbidden: a
malformed body is a 422 naming the reason, never a 500.

A POST body is read by the endpoint itself, after the router's dependencies ran: an
unauthenticated request is refused (403) before a byte of its body is read, whatever the
body is. A body over ``max_body_bytes`` is refused with 413, from its Content-Length
before reading or as soon as a streamed body passes the limit.

``cached_route(cache, resource, ...)`` caches a route's encoded responses: see herdcache._routes.
"""

from __future__ import annotations

import contextlib
import email.message
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Optional

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi import Depends, params
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import _binding
from ._binding import BadArguments, bind
from .manager import UnknownResource
from .prometheus import HerdcacheCollector

if TYPE_CHECKING:
    from .manager import CacheManager

log = logging.getLogger("herdcache")

HealthCheck = Callable[[], "Mapping[str, Any] | Awaitable[Mapping[str, Any]]"]
"""Returns a dict with ``"ok": bool`` plus any details; raising counts as not ok."""

MAX_ARGS = 64
MAX_BODY_BYTES = 1 << 20  # an admin body is a few hundred bytes; 1,000 tags of 200 bytes fit
_UNPARSABLE = "There was an error parsing the body"  # FastAPI's 400 for a body json.loads chokes on


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _utf8(self) -> _Body:
        # JSON may carry lone surrogates ("\ud800"); keys are UTF-8, so refuse them here.
        for name, value in self:
            _check_text(value, name)
        return self


def _check_text(value: Any, where: str) -> None:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError(f"{where}: strings must be valid UTF-8 (no lone surrogates)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, where)
            _check_text(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, f"{where}[{i}]")


class InvalidateRequest(_Body):
    """Exactly one of: ``resource`` (+ ``args``/``params``, a prefix), ``tags``, ``pattern``, ``all``."""

    resource: Optional[str] = Field(None, min_length=1, max_length=200, examples=["courses"])
    args: list[Any] = Field(default_factory=list, max_length=MAX_ARGS, description="leading key arguments (a prefix)")
    params: dict[str, Any] = Field(default_factory=dict, max_length=MAX_ARGS, description="key arguments by name")
    tags: Optional[list[str]] = Field(None, min_length=1, max_length=1000, examples=[["org:42"]])
    pattern: Optional[str] = Field(None, min_length=1, max_length=1000, examples=["courses:*"])
    all: bool = Field(False, description="clear the whole namespace")
    rewarm: bool = Field(False, description="after invalidating resource+args, run its loader again")

    @model_validator(mode="after")
    def _one_mode(self) -> InvalidateRequest:
        given = [m for m in ("resource", "tags", "pattern") if getattr(self, m) is not None] + (["all"] if self.all else [])
        if len(given) != 1:
            raise ValueError(f"give exactly one of resource, tags, pattern or all=true; got {given or 'none'}")
        if given != ["resource"] and (self.args or self.params or self.rewarm):
            raise ValueError("args, params and rewarm go with resource")
        if self.tags is not None and not all(self.tags):
            raise ValueError("tags must be non-empty strings")
        return self


class InvalidateResult(BaseModel):
    mode: Literal["resource", "tags", "pattern", "all"]
    invalidated: int = Field(description="entries removed from this instance's view of the cache")
    resource: Optional[str] = None
    prefix: Optional[list[Any]] = Field(None, description="the key arguments the resource was invalidated by")
    tags: Optional[list[str]] = None
    pattern: Optional[str] = None
    rewarmed: Optional[str] = Field(None, description="the key loaded again when rewarm was asked for")


class WarmRequest(_Body):
    resource: str = Field(min_length=1, max_length=200, examples=["courses"])
    args: list[Any] = Field(default_factory=list, max_length=MAX_ARGS)
    params: dict[str, Any] = Field(default_factory=dict, max_length=MAX_ARGS)


class WarmResult(BaseModel):
    resource: str
    key: str


class HealthReport(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, dict[str, Any]]


def admin_router(
    cache: CacheManager,
    *,
    dependencies: Sequence[params.Depends] | None = None,
    allow_unauthenticated: bool = False,
    health_checks: Mapping[str, HealthCheck] | None = None,
    registry: CollectorRegistry | None = None,
    tags: Sequence[str] = ("herdcache",),
    max_body_bytes: int = MAX_BODY_BYTES,
) -> APIRouter:
    """The admin APIRouter. ``dependencies`` guard every endpoint (e.g. ``Depends(require_admin)``);
    without any it refuses to build unless ``allow_unauthenticated=True``. They run before
    a request body is read; a body over ``max_body_bytes`` is refused with 413.

    ``health_checks`` adds named checks to ``/health`` beside ``redis`` (a PostgreSQL
    listener's, for one). ``registry``: serve this CollectorRegistry at ``/metrics`` with
    the cache's collector registered into it; by default a private one holding only it."""
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be a whole number of bytes >= 1, got {max_body_bytes!r}")
    dependencies = list(dependencies or [])
    if not dependencies and not allow_unauthenticated:
        raise ValueError(
            "admin_router needs dependencies=[Depends(...)] that authenticate the caller "
            "(it can clear the cache); pass allow_unauthenticated=True to expose it without one"
        )
    checks: dict[str, HealthCheck] = {"redis": lambda: _redis_health(cache), **(health_checks or {})}
    if registry is None:
        registry = CollectorRegistry(auto_describe=True)
    registry.register(HerdcacheCollector(cache))
    router = APIRouter(dependencies=dependencies, tags=list(tags), route_class=_AdminRoute)

    too_large: dict[int | str, dict[str, Any]] = {413: {"description": f"the body is larger than {max_body_bytes} bytes"}}

    @router.post("/invalidate", response_model=InvalidateResult, summary="Invalidate cached entries",
                 openapi_extra=_body_schema(InvalidateRequest), responses=too_large)
    async def invalidate(body: InvalidateRequest = Depends(_json_body(InvalidateRequest, max_body_bytes))) -> InvalidateResult:
        with _refusals_are_422():
            if body.resource is not None:
                return await _invalidate_resource(cache, body)
            if body.tags is not None:
                return InvalidateResult(mode="tags", tags=body.tags, invalidated=await cache.invalidate_tags(*body.tags))
            if body.pattern is not None:
                return InvalidateResult(
                    mode="pattern", pattern=body.pattern, invalidated=await cache.invalidate_pattern(body.pattern)
                )
            return InvalidateResult(mode="all", invalidated=await cache.clear())

    @router.get("/stats", summary="Counters per resource and per tier")
    async def stats() -> dict[str, Any]:
        return cache.stats()

    @router.post(
        "/warm", response_model=WarmResult, summary="Run a registered loader now",
        responses={404: {"description": "no cached function is registered for the resource"},
                   502: {"description": "the loader raised"}, **too_large},
        openapi_extra=_body_schema(WarmRequest),
    )
    async def warm(body: WarmRequest = Depends(_json_body(WarmRequest, max_body_bytes))) -> WarmResult:
        fn = _registered(cache, body.resource)
        bound = _bind(fn, body.args, body.params)
        return WarmResult(resource=body.resource, key=await _warm(cache, fn, bound))

    @router.get(
        "/health", response_model=HealthReport, summary="Redis (and other checks) state",
        responses={503: {"model": HealthReport, "description": "a check failed"}},
    )
    async def health(response: Response) -> HealthReport:
        results = {name: await _run_check(name, check) for name, check in checks.items()}
        ok = all(r["ok"] for r in results.values())
        response.status_code = 200 if ok else 503
        return HealthReport(status="ok" if ok else "unavailable", checks=results)

    @router.get(
        "/metrics", summary="Prometheus text exposition", response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


class _AdminRoute(APIRoute):
    """Keeps every malformed body a 422 the app can render:

    - FastAPI answers 400 for a body ``json.loads`` raises on beyond JSONDecodeError (JSON
      nested past the recursion limit); here it is a 422 like any other bad body;
    - a validation error echoes its input, and JSON may carry lone surrogates (``"\\ud800"``)
      that the default handler cannot encode (a 500); such inputs are escaped."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except StarletteHTTPException as exc:
                if exc.status_code != 400 or exc.detail != _UNPARSABLE or exc.__cause__ is None:
                    raise
                reason = f"the body could not be parsed ({type(exc.__cause__).__name__})"
                raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": reason}]) from None
            except RequestValidationError as exc:
                raise RequestValidationError([_escaped(e) for e in exc.errors()], body=_escaped(exc.body)) from None

        return route


# --- request bodies: read by the endpoint, after the router's dependencies ------------------
#
# FastAPI reads and decodes a declared body before it runs any dependency, so a request
# without credentials would have its body read (and, undecodable, be answered 422 instead
# of 403). The endpoints declare none: a dependency of their own, solved after the
# router's, reads it with a size limit and validates it into the same pydantic models.


def _json_body(model: type[_Body], limit: int) -> Callable[[Request], Awaitable[Any]]:
    async def body(request: Request) -> Any:
        data = _decoded(request, await _read_limited(request, limit))
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors, body=data) from None

    return body


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, f"Content-Length is not a number of bytes: {declared[:40]!r}")
        if int(declared) > limit:
            raise HTTPException(413, f"the body is {int(declared)} bytes; these endpoints take at most {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a streamed body (no Content-Length), or one longer than it said
            raise HTTPException(413, f"the body is more than {limit} bytes; these endpoints take at most {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def _decoded(request: Request, raw: bytes) -> Any:
    """The body as JSON, as FastAPI would decode it; a 422 naming the reason otherwise."""
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "a JSON body is required"}])
    content_type = request.headers.get("content-type")
    if content_type:
        message = email.message.Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        if message.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
            reason = f"the body must be JSON (Content-Type: application/json), not {_escaped(content_type[:100])!r}"
            raise RequestValidationError([{"type": "content_type", "loc": ("body",), "msg": reason}])
    try:
        return json.loads(raw)
    except RecursionError:
        reason = "the body could not be parsed (JSON nested too deeply)"
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes that are no UTF
        reason = f"the body is not JSON: {_escaped(str(exc))[:200]}"
    raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": reason}])


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI requestBody of an endpoint that reads its body itself."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@contextlib.contextmanager
def _refusals_are_422() -> Any:
    """The cache refuses a bad name or argument (a resource spelled with ':', an argument
    of a type keys cannot hold) with ValueError or TypeError before it changes anything:
    that is the caller's mistake, a 422 that says which, not a 500."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise HTTPException(422, str(exc)) from None


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (bytes, bytearray)):  # a body that is not JSON, not even UTF-8
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, float) and not math.isfinite(value):  # Infinity, 1e400: JSON cannot say them
        return repr(value)
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_escaped(v) for v in value)
    return value


async def _invalidate_resource(cache: CacheManager, body: InvalidateRequest) -> InvalidateResult:
    resource = body.resource
    assert resource is not None
    fn = cache.resources.get(resource)
    if fn is None:  # not decorated (filled by cache.set): args are the raw key prefix
        known = cache.known_resources()
        cache._engine.canonical_prefix(resource, ())  # a name the key format refuses is a 422, first
        if resource not in known:  # a typo would invalidate nothing and answer as if it had
            raise HTTPException(404, f"unknown resource {resource!r}: no cached function, policy or entry has that "
                                     f"name (known: {', '.join(sorted(known)) or 'none'})")
        if body.params or body.rewarm:
            raise HTTPException(404, f"params and rewarm need a cached function registered for {resource!r}")
        count = await cache.invalidate(resource, *body.args)
        return InvalidateResult(mode="resource", resource=resource, prefix=body.args, invalidated=count)
    bound = _bind(fn, body.args, body.params, partial=not body.rewarm)
    try:  # rewarm: the API's, which reloads what the invalidation removed and the key named
        count = await _binding.invalidate(fn, bound, cache, rewarm=body.rewarm)
    except _binding.RewarmFailed as exc:
        log.error("rewarming %s failed", resource, exc_info=exc.__cause__)
        raise HTTPException(502, f"the loader for {resource!r} raised {type(exc.__cause__).__name__}; "
                                 "see the server log") from None
    except TypeError as exc:  # not a leading run of the key's arguments
        raise HTTPException(422, f"{resource}: {exc}") from None
    result = InvalidateResult(mode="resource", resource=resource, prefix=list(bound.arguments.values()), invalidated=count)
    if body.rewarm:
        result.rewarmed = str(fn.key(*bound.args, **bound.kwargs))
    return result


def _registered(cache: CacheManager, resource: str) -> Any:
    try:
        return cache.registered(resource)
    except UnknownResource as exc:
        raise HTTPException(404, str(exc)) from None


def _bind(fn: Any, args: list[Any], params: dict[str, Any], *, partial: bool = False) -> inspect.BoundArguments:
    try:
        return bind(fn, args, params, partial=partial)
    except BadArguments as exc:
        raise HTTPException(422, str(exc)) from None


async def _warm(cache: CacheManager, fn: Any, bound: inspect.BoundArguments) -> str:
    try:
        return await _binding.warm(cache, fn, bound)
    except Exception as exc:
        log.exception("warming %s failed", fn.resource)
        raise HTTPException(502, f"the loader for {fn.resource!r} raised {type(exc).__name__}; see the server log") from None


def _redis_health(cache: CacheManager) -> dict[str, Any]:
    redis = dict(cache.stats()["redis"])
    # Memory only is a configuration, not a failure; a configured Redis must be connected,
    # and so must its invalidation channel (without it the memory tier is not served), and
    # its writes must not be failing: a server that answers every write with an error
    # (READONLY, OOM, CROSSSLOT: the engine's writes-failing rule) shares nothing.
    redis["ok"] = not redis.get("configured") or (
        bool(redis.get("connected")) and bool(redis.get("subscriber_connected")) and not redis.get("writes_failing"))
    return redis


async def _run_check(name: str, check: HealthCheck) -> dict[str, Any]:
    try:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        return {**result, "ok": bool(result.get("ok"))}
    except Exception as exc:  # a failing check is a report, not a 500
        log.warning("health check %s raised %r", name, exc)
        return {"ok": False, "error": type(exc).__name__}


# Route caching (the encoded response, ETag/304, Cache-Control) is its own concept, in its
# own module; this module is where the public name lives.
from ._routes import cached_route  # noqa: E402
