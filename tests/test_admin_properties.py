"""The admin router under arbitrary input (hypothesis): whatever the bytes, content type
or JSON value, no endpoint answers 5xx, every refusal is a 4xx with a reason, and an
unauthenticated request is refused before its body is looked at."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herdcache import CacheManager
from herdcache.fastapi import admin_router

TOKEN = "s3cret"


def require_admin(x_admin_token: str | None = Header(None)) -> None:
    if x_admin_token != TOKEN:
        raise HTTPException(403, "admin token required")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
NAMES = st.sampled_from(["resource", "args", "params", "tags", "pattern", "all", "rewarm"])
BODIES = st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.dictionaries(NAMES, JSON, max_size=4).map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.dictionaries(NAMES, st.text(alphabet=":#*?[]{}\\%, \x00\u00e9\U0001f600", max_size=8), max_size=3).map(
        lambda v: json.dumps(v).encode()),
)
CONTENT_TYPES = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", "",
                                 "application/json; charset=latin-1", "multipart/form-data"])
PATHS = st.sampled_from(["/c/invalidate", "/c/warm"])


@pytest.fixture(scope="module")
def app_and_cache():
    cache = CacheManager(namespace="props")

    @cache.cached("rooms")
    async def rooms(org_id: int, floor: int = 0) -> list:
        return [org_id, floor]

    app = FastAPI()
    app.include_router(admin_router(cache, dependencies=[Depends(require_admin)]), prefix="/c")
    return app, cache


def _post(app, path: str, body: bytes, content_type: str, token: str | None):
    async def go():
        headers = {"content-type": content_type} if content_type else {}
        if token is not None:
            headers["x-admin-token"] = token
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(go())


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(path=PATHS, body=BODIES, content_type=CONTENT_TYPES)
def test_no_body_makes_an_endpoint_answer_5xx(app_and_cache, path, body, content_type):
    app, _ = app_and_cache
    r = _post(app, path, body, content_type, TOKEN)
    assert r.status_code < 500, (path, body, content_type, r.text)
    if r.status_code >= 400:
        assert r.json().get("detail"), r.text  # every refusal says why


JSON_BODIES = st.one_of(
    JSON.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.dictionaries(NAMES, JSON, max_size=4).map(lambda v: json.dumps(v, allow_nan=True).encode()),
)
TOKENS = st.none() | st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=10)


@PROPERTY
@given(path=PATHS, body=JSON_BODIES, token=TOKENS)
def test_an_unauthenticated_request_is_refused_whatever_its_json(app_and_cache, path, body, token):
    app, cache = app_and_cache
    before = cache.stats()["loads"]
    r = _post(app, path, body, "application/json", None if token == TOKEN else token)
    assert r.status_code == 403, (path, body, r.text)
    assert cache.stats()["loads"] == before  # nothing ran


class _Body:
    """A request body streamed in chunks that records whether the app read any of it."""

    def __init__(self, data: bytes, chunk: int = 1024) -> None:
        self.data, self.chunk, self.read = data, chunk, 0

    async def __aiter__(self):
        for at in range(0, len(self.data), self.chunk):
            self.read += 1
            yield self.data[at:at + self.chunk]


def _send(app, path: str, body, headers: dict[str, str]):
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(go())


@PROPERTY
@given(path=PATHS, body=BODIES, content_type=CONTENT_TYPES, token=TOKENS)
def test_an_unauthenticated_request_is_refused_before_its_body_is_read(app_and_cache, path, body, content_type, token):
    app, cache = app_and_cache
    before = cache.stats()["loads"]
    headers = {"content-type": content_type} if content_type else {}
    if token is not None and token != TOKEN:
        headers["x-admin-token"] = token
    streamed = _Body(body + b" " * 2048)  # at least two chunks: any read shows
    r = _send(app, path, streamed, headers)
    assert r.status_code == 403, (path, body, content_type, r.text)
    assert streamed.read == 0
    assert cache.stats()["loads"] == before


def test_an_unauthenticated_request_with_undecodable_json_is_refused_first(app_and_cache):
    app, _ = app_and_cache  # FastAPI decodes a declared body before the router's dependencies run
    assert _post(app, "/c/invalidate", b"{nope", "application/json", None).status_code == 403


def _big_app(limit: int):
    cache = CacheManager(namespace="big")
    app = FastAPI()
    app.include_router(admin_router(cache, dependencies=[Depends(require_admin)], max_body_bytes=limit), prefix="/c")
    return app, cache


def test_a_body_over_the_limit_is_413_naming_it_and_never_read_past_it():
    app, cache = _big_app(4096)
    cache.sync.set(cache.key("rooms", 1), [1], tags=["t"])
    auth = {"x-admin-token": TOKEN, "content-type": "application/json"}
    body = json.dumps({"tags": ["t"] + ["x" * 100] * 40}).encode()
    assert len(body) > 4096
    for path in ("/c/invalidate", "/c/warm"):
        r = _send(app, path, body, auth)  # with Content-Length: refused before reading
        assert r.status_code == 413, r.text
        assert "4096" in r.json()["detail"]
        streamed = _Body(body, chunk=1000)  # streamed (chunked): refused once past the limit
        r = _send(app, path, streamed, auth)
        assert r.status_code == 413, r.text
        assert "4096" in r.json()["detail"]
        assert streamed.read == 5  # 5,000 bytes > 4096: no further chunk is read
    assert cache.sync.get(cache.key("rooms", 1)) == [1]  # nothing was invalidated
    fits = json.dumps({"tags": ["t"]}).encode().ljust(4096)
    r = _send(app, "/c/invalidate", fits, auth)
    assert r.status_code == 200, r.text
    assert cache.sync.get(cache.key("rooms", 1)) is None


def test_a_bad_body_limit_is_refused():
    for limit in (0, -1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="max_body_bytes"):
            admin_router(CacheManager(namespace="x"), allow_unauthenticated=True, max_body_bytes=limit)
