"""Serializers: how values become bytes for the shared tier (and for size accounting).

``"json"`` (the default, orjson) and ``"msgpack"`` cannot execute code on load.
``"pickle"`` can, so it is only used when asked for by name. Any object with
``dumps(value) -> bytes`` and ``loads(bytes) -> value`` works too.

Payload layout: ``b"HC"``, a flags byte (0), then the serializer's bytes (the header is
the engine's ``PAYLOAD_HEADER``, cpp/include/herdcache/codes.hpp). With a
manager's ``signing_key`` the engine signs and verifies whole entries in Redis (payload,
lifetimes, tags, dependencies, bound to the key: cpp/include/herdcache/entry.hpp); what
reaches this codec has been verified and carries flags 0.

Values come back as they went in, from either tier. A cached function's return
annotation, where it names more than the serializer's own types (``-> list[Room]`` with
a pydantic model or dataclass, ``datetime``, ``UUID``, ``Decimal``, ``tuple``, ``set``,
enums...), gets a :class:`TypedCodec` (pydantic's ``TypeAdapter``): a Redis hit in any
process returns those types. Everything else is the serializer's types (JSON: dict, list,
str, int, float, bool, None), on both tiers: what the memory tier keeps is the value
decoded from its own payload (:meth:`Codec.roundtrip`), so it never hands back a type a
Redis hit would not. Non-finite floats: plain JSON writes them as null (None on both
tiers); an annotation naming ``float`` keeps them (``-> list[float]``), except inside a
pydantic model, whose own config decides: there a value that would not survive the round
trip is refused when it is cached (SerializationError), never changed silently.
"""

from __future__ import annotations

import enum
import pickle
import types
import typing
from typing import Any, Callable, Protocol

import orjson

from ._native import COMPRESSED_HEADER as _COMPRESSED
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
        data: bytes = self._msgpack.packb(value, use_bin_type=True)
        return data

    def loads(self, data: bytes) -> Any:
        return self._msgpack.unpackb(data, raw=False, strict_map_key=False)


class PickleSerializer:
    """Executes code on load: use only when every writer of the cache is trusted."""

    name = "pickle"
    keeps_types = True  # what it loads is what it was given: no round trip needed

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)  # noqa: S301 - opt-in by name only


_BY_NAME: dict[str, Callable[[], Serializer]] = {"json": JsonSerializer, "msgpack": MsgpackSerializer, "pickle": PickleSerializer}


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


_HINT = ('return plain data (e.g. model.model_dump()), annotate the cached function\'s return type '
         '(-> list[Room]) so herdcache encodes and decodes it, or use serializer="pickle"')


class Codec:
    """A serializer and the payload header; the only place payload bytes are built."""

    __slots__ = ("serializer", "_roundtrips")

    def __init__(self, serializer: str | Serializer = "json"):
        self.serializer = resolve(serializer)
        self._roundtrips = not getattr(self.serializer, "keeps_types", False)

    @property
    def name(self) -> str:
        return getattr(self.serializer, "name", type(self.serializer).__name__)

    @property
    def counts_in_redis(self) -> bool:
        """Whether Redis can increment its payloads itself: JSON integers are their digits
        (a serializer whose integers are their digits too says so: counts_in_redis = True)."""
        if getattr(self.serializer, "counts_in_redis", False) is True:
            return True
        return self.name == "json" and type(self.serializer) is JsonSerializer

    def encode(self, value: Any) -> bytes:
        try:
            body = self.serializer.dumps(value)
        except (TypeError, ValueError, OverflowError, RecursionError, pickle.PicklingError) as exc:
            raise SerializationError(f"cannot serialize a value of type {type(value).__name__} with {self.name}: "
                                     f"{exc}; {_HINT}") from exc
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
            if payload[:_HEADER_BYTES] == _COMPRESSED:  # the engine decompresses every one it can
                raise SerializationError("a compressed payload that does not decompress (corrupt, or larger than "
                                         "the engine's limit)")
            raise SerializationError("not a herdcache payload")
        try:
            return self.plain_loads(payload[_HEADER_BYTES:])
        except Exception as exc:  # a serializer may raise anything on garbage input
            raise SerializationError(f"cannot deserialize payload: {exc}") from exc

    def roundtrip(self, value: Any) -> tuple[bytes, Any]:
        """(payload, the value decoded from it): what every tier then returns. A value that
        does not decode from its own payload is refused (SerializationError)."""
        payload = self.encode(value)
        if not self._roundtrips:
            return payload, value
        try:
            return payload, self.decode(payload)
        except SerializationError as exc:
            raise SerializationError(f"a value of type {type(value).__name__} does not come back as it went in "
                                     f"({exc}); {_HINT}") from exc


class TypedCodec(Codec):
    """Encodes and decodes through a type (a return annotation) with pydantic's TypeAdapter,
    so models, dataclasses, datetimes, UUIDs, Decimals, tuples, sets and enums come back
    as themselves. Resolved on first use (an annotation may name a class defined later);
    `on_resolved` then receives the decoder of payload bodies, for the engine's Redis reads."""

    __slots__ = ("_annotation", "_owner", "_localns", "_on_resolved", "_dumps", "_loads")

    def __init__(self, serializer: str | Serializer, annotation: Any, owner: Callable[..., Any],
                 on_resolved: Callable[[Any], None], localns: dict[str, Any] | None = None):
        super().__init__(serializer)
        self._roundtrips = True
        self._annotation = annotation
        self._owner = owner
        self._localns = localns
        self._on_resolved = on_resolved
        self._dumps: Any = None
        self._loads: Any = None
        on_resolved(self._first_loads)  # until resolved: the engine's reads resolve it first

    @property
    def counts_in_redis(self) -> bool:
        return False  # its values are the annotation's: incremented by compare-and-set, decoded as typed

    def _first_loads(self, body: bytes) -> Any:
        return self.plain_loads(body)

    def _resolve(self) -> None:
        annotation = self._annotation
        if annotation is _UNRESOLVED:
            annotation = resolve_return_type(self._owner, self._localns)
        self._annotation = annotation
        try:
            from pydantic import ConfigDict, PydanticUserError, TypeAdapter
        except ImportError as exc:  # pragma: no cover - pydantic is a dependency
            raise SerializationError(f"encoding {annotation!r} needs pydantic: pip install pydantic") from exc
        try:
            try:  # keeps NaN and infinities as JSON constants where the type is not a model's own
                adapter = TypeAdapter(annotation, config=ConfigDict(ser_json_inf_nan="constants"))
            except PydanticUserError:
                adapter = TypeAdapter(annotation)
        except Exception as exc:
            raise SerializationError(f"cannot encode values of the return type {annotation!r}: {exc}") from exc
        if self.name == "json":
            self._dumps, self._loads = adapter.dump_json, adapter.validate_json
        else:
            dumps, loads = self.serializer.dumps, self.serializer.loads
            to_plain, from_plain = adapter.dump_python, adapter.validate_python
            self._dumps = lambda value: dumps(to_plain(value, mode="json"))
            self._loads = lambda body: from_plain(loads(body))
        self._on_resolved(self._loads)

    def encode(self, value: Any) -> bytes:
        if self._dumps is None:
            self._resolve()
        try:
            body = self._dumps(value)
        except Exception as exc:
            raise SerializationError(f"cannot serialize a value of type {type(value).__name__} as "
                                     f"{self._annotation_name()}: {exc}") from exc
        return b"".join((_HEADER, body))

    @property
    def plain_loads(self) -> Any:
        if self._loads is None:
            self._resolve()
        return self._loads

    def _annotation_name(self) -> str:
        annotation = self._annotation
        return getattr(annotation, "__name__", None) or str(annotation)


_UNRESOLVED = object()


def resolve_return_type(fn: Callable[..., Any], localns: dict[str, Any] | None = None) -> Any:
    """fn's return annotation, with a string annotation evaluated in fn's module and
    `localns` (the namespace it was decorated in: a class defined in a function)."""
    try:
        return typing.get_type_hints(fn, localns=localns).get("return", type(None))
    except Exception as exc:
        raise SerializationError(f"cannot resolve the return annotation of {fn.__qualname__}: {exc}") from exc


# float is not among them: JSON has no NaN or infinity, and a typed codec keeps them.
_PLAIN_SCALARS = (str, int, bool, type(None))


def plain_annotation(annotation: Any) -> bool:
    """True when the serializer's own types already are what `annotation` names (JSON's:
    str-keyed dicts, lists, str, int, bool, None, Any), so no typed codec is needed."""
    if annotation is Any or annotation is object or annotation in _PLAIN_SCALARS:
        return not (isinstance(annotation, type) and issubclass(annotation, enum.Enum))
    if annotation in (dict, list):
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return all(plain_annotation(a) for a in args)
    if origin is dict:
        return not args or (args[0] is str and plain_annotation(args[1]))
    if origin is typing.Union or origin is getattr(types, "UnionType", ()):
        return all(plain_annotation(a) for a in args)
    return False


def codec_for(serializer: str | Serializer, fn: Callable[..., Any], base: Codec, on_resolved: Callable[[Any], None],
              localns: dict[str, Any] | None = None) -> Codec:
    """The codec of a cached function: typed by its return annotation where that names
    more than the serializer's own types, else the manager's."""
    if getattr(base.serializer, "keeps_types", False):
        return base
    raw = inspect_return(fn)
    if raw is None:
        return base
    if not isinstance(raw, str):
        if plain_annotation(raw):
            return base
        return TypedCodec(serializer, raw, fn, on_resolved)
    try:  # a string annotation: resolved now if it can be, else on first use
        annotation = resolve_return_type(fn, localns)
    except SerializationError:
        return TypedCodec(serializer, _UNRESOLVED, fn, on_resolved, localns)
    return base if plain_annotation(annotation) else TypedCodec(serializer, annotation, fn, on_resolved)


def inspect_return(fn: Callable[..., Any]) -> Any:
    """fn's return annotation as written (a string under `from __future__ import
    annotations`), or None when it has none."""
    annotation = getattr(fn, "__annotations__", {}).get("return", _UNRESOLVED)
    return None if annotation is _UNRESOLVED else annotation
