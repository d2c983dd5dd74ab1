"""Serializers: how values become bytes for the shared tier (and for size accounting).

``"json"`` (the default, orjson) and ``"msgpack"`` cannot execute code on load.
``"pickle"`` can, so it is only used when asked for by name. Any object with
``dumps(value) -> bytes`` and ``loads(bytes) -> value`` works too.

With a ``signing_key`` every payload carries an HMAC-SHA256 of its body; a payload whose
signature does not verify is treated as a miss, never deserialized.

Payload layout: ``b"HC"``, a flags byte (bit 0: signed), the 32-byte MAC when signed,
then the serializer's bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any, Protocol

import orjson

from ._native import SerializationError

_MAGIC = b"HC"
_SIGNED = 0x01
_MAC_SIZE = 32


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


class BadSignature(Exception):
    """A payload's MAC did not verify (or it was unsigned while a key is configured)."""


class Codec:
    """A serializer plus the optional signature; the only place payload bytes are built."""

    __slots__ = ("serializer", "_key")

    def __init__(self, serializer: str | Serializer = "json", signing_key: bytes | None = None):
        self.serializer = resolve(serializer)
        if signing_key is not None:
            if not isinstance(signing_key, (bytes, bytearray)) or len(signing_key) < 16:
                raise ValueError("signing_key must be bytes of at least 16 bytes")
            signing_key = bytes(signing_key)
        self._key = signing_key

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
        if self._key is None:
            return b"".join((_MAGIC, b"\x00", body))
        mac = hmac.new(self._key, body, hashlib.sha256).digest()
        return b"".join((_MAGIC, bytes((_SIGNED,)), mac, body))

    @property
    def plain_loads(self) -> Any:
        """The serializer's loads when payloads are unsigned (decode() is then the header
        check and this), else None: what the engine may call directly on a payload's body."""
        return self.serializer.loads if self._key is None else None

    def decode(self, payload: bytes) -> Any:
        """The value; BadSignature for a forged or unsigned payload when signing is on;
        SerializationError for bytes that are not a payload at all."""
        if len(payload) < 3 or payload[:2] != _MAGIC:
            raise SerializationError("not a herdcache payload")
        flags = payload[2]
        if flags & _SIGNED:
            mac, body = payload[3 : 3 + _MAC_SIZE], payload[3 + _MAC_SIZE :]
            if len(mac) != _MAC_SIZE:
                raise BadSignature("truncated signature")
            if self._key is not None:
                expected = hmac.new(self._key, body, hashlib.sha256).digest()
                if not hmac.compare_digest(mac, expected):
                    raise BadSignature("signature mismatch")
        else:
            if self._key is not None:
                raise BadSignature("unsigned payload while a signing key is configured")
            body = payload[3:]
        try:
            return self.serializer.loads(body)
        except Exception as exc:  # a serializer may raise anything on garbage input
            raise SerializationError(f"cannot deserialize payload: {exc}") from exc
