"""Serializers: how values become bytes for the shared tier (and for size accounting).

``"json"`` (the default, orjson) and ``"msgpack"`` cannot execute code on load.
``"pickle"`` can, so it is only used when asked for by name. Any object with
``dumps(value) -> bytes`` and ``loads(bytes) -> value`` works too.

Payload layout: ``b"HC"``, a flags byte (0), then the serializer's bytes (the header is
the engine's ``PAYLOAD_HEADER``, cpp/include/herdcache/codes.hpp). With a
manager's ``signing_key`` the engine signs and verifies whole entries in Redis (payload,
lifetimes, tags, dependencies, bound to the key: cpp/include/herdcache/entry.hpp); what
reaches this codec has been verified and carries flags 0.
"""

from __future__ import annotations

import pickle
from typing import Any, Protocol

import orjson

from ._native import PAYLOAD_HEADER as _HEADER
from ._native import SerializationError

_HEADER_BYTES = len(_HEADER)


class Serializer(Protocol):
    def dumps(self, value: Any) -> bytes: ...
    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """orjson: str keys only, tuples come back as lists, datetimes as ISO strings."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        return orjson.dumps(value)

    loads = staticmethod(orjson.loads)  # no Python frame between a read and orjson


class MsgpackSerializer:
    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError('serializer="msgpack" needs: pip install "herdcache[msgpack]"') from exc
        self._msgpack = msgpack

    def dumps(self, value: Any) -> bytes:
        return self._msgpack.packb(value, use_bin_type=True)

    def loads(self, data: bytes) -> Any:
        return self._msgpack.unpackb(data, raw=False, strict_map_key=False)


class PickleSerializer:
    """Executes code on load: use only when every writer of the cache is trusted."""

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)  # noqa: S301 - opt-in by name only


_BY_NAME = {"json": JsonSerializer, "msgpack": MsgpackSerializer, "pickle": PickleSerializer}


def resolve(serializer: str | Serializer) -> Serializer:
    if isinstance(serializer, str):
        try:
            return _BY_NAME[serializer]()
        except KeyError:
            raise ValueError(
                f"serializer must be one of {sorted(_BY_NAME)} or an object with dumps/loads, "
                f"got {serializer!r}"
            ) from None
    if callable(getattr(serializer, "dumps", None)) and callable(getattr(serializer, "loads", None)):
        return serializer
    raise TypeError(f"serializer must be a name or an object with dumps/loads, got {serializer!r}")


class Codec:
    """A serializer and the payload header; the only place payload bytes are built."""

    __slots__ = ("serializer",)

    def __init__(self, serializer: str | Serializer = "json"):
        self.serializer = resolve(serializer)

    def encode(self, value: Any) -> bytes:
        try:
            body = self.serializer.dumps(value)
        except (TypeError, ValueError, OverflowError, RecursionError, pickle.PicklingError) as exc:
            raise SerializationError(
                f"cannot serialize a value of type {type(value).__name__} with "
                f"{getattr(self.serializer, 'name', type(self.serializer).__name__)}: {exc}"
            ) from exc
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise SerializationError(f"serializer returned {type(body).__name__}, not bytes")
        return b"".join((_HEADER, body))

    @property
    def plain_loads(self) -> Any:
        """The serializer's loads: decode() is the header check and this, which the engine
        may call directly on a payload's body."""
        return self.serializer.loads

    def decode(self, payload: bytes) -> Any:
        """The value; SerializationError for bytes that are not a payload at all."""
        if len(payload) < _HEADER_BYTES or payload[:_HEADER_BYTES] != _HEADER:
            raise SerializationError("not a herdcache payload")
        try:
            return self.serializer.loads(payload[_HEADER_BYTES:])
        except Exception as exc:  # a serializer may raise anything on garbage input
            raise SerializationError(f"cannot deserialize payload: {exc}") from exc
