"""PostgreSQL changes invalidate cache tags by themselves (DESIGN.md, "PostgreSQL").

    inv = PostgresInvalidator(cache, dsn, tables={"rooms": ["rooms", "org:{org_id}"]})
    await inv.install()   # trigger function + triggers, idempotent
    await inv.start()     # the engine's libpq LISTEN thread; await inv.stop()

How it fits together:

* install() creates one trigger function, ``herdcache_notify()``, and per mapped table an
  AFTER INSERT/UPDATE/DELETE row trigger (plus an AFTER TRUNCATE statement trigger). The
  trigger's arguments are the channel, the table's name as mapped here, and the columns
  the templates name; the function NOTIFYs the channel with
  ``{"t": table, "op": "UPDATE", "new": {cols of NEW}, "old": {cols of OLD}}``.
  NOTIFY payloads must be shorter than 8000 bytes: a larger one is replaced by
  ``{"t": table, "op": ..., "all": true}``, as is TRUNCATE.
* The engine's listener thread (C++, herdcache._native.PgListener) queues notifications
  and connection events on an eventfd; the event loop's add_reader drains them and one
  task turns them into ``cache.invalidate_tags(...)`` calls, in order.
* Each template is filled from the old row and from the new row (str.format, so
  ``org:{org_id}`` with org_id 42 gives ``org:42`` as an f-string in the app would);
  plain tags like ``rooms`` are always invalidated.

"Everything of a table": after the listener lost its connection (notifications sent
meanwhile are gone), after the engine's bounded event queue overflowed, or on an
``"all"`` payload, the listener invalidates every tag the table can produce. Plain tags
are invalidated by name. Tags with placeholders cannot be enumerated, so for those the
listener falls back to what is safe: ``cache.invalidate(resource)`` for each resource
listed for the table in ``resources=`` when given, otherwise ``cache.clear()`` (the whole
namespace). Stale data is never kept; the price of a gap is a cold cache.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _native

log = logging.getLogger("herdcache.postgres")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_FUNCTION = "herdcache_notify"
_MAX_IDENT = 63  # PostgreSQL's NAMEDATALEN - 1


# --- pure pieces: templates, payloads, SQL (no I/O; tested with strings and bytes) ------

@dataclass(frozen=True)
class Change:
    """One decoded notification."""

    table: str
    op: str = ""
    new: Mapping[str, Any] | None = None
    old: Mapping[str, Any] | None = None
    all: bool = False  # the payload could not name rows (overflow, TRUNCATE)


@dataclass(frozen=True)
class TableMap:
    """A mapped table: its tag templates and the columns they name."""

    table: str
    templates: tuple[str, ...]
    columns: tuple[str, ...]  # in first-use order
    plain: tuple[str, ...] = field(default=())  # templates without placeholders

    @property
    def has_placeholders(self) -> bool:
        return len(self.plain) < len(self.templates)

    def tags(self, change: Change) -> list[str]:
        """The tags a change of this table invalidates (old and new rows), deduplicated."""
        out: dict[str, None] = dict.fromkeys(self.plain)
        for row in (change.old, change.new):
            if not row:
                continue
            for template in self.templates:
                if template in self.plain:
                    continue
                try:
                    out[template.format_map(row)] = None
                except (KeyError, ValueError, TypeError) as exc:
                    raise PayloadError(f"cannot fill {template!r} from {dict(row)!r}: {exc}") from None
        return list(out)


class PayloadError(ValueError):
    """A notification payload that is not what the trigger sends."""


def template_columns(template: str) -> list[str]:
    """The column names a tag template uses; ValueError for anything but {name[:spec]}."""
    if not isinstance(template, str) or not template:
        raise ValueError(f"tag templates must be non-empty str, got {template!r}")
    columns: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad tag template {template!r}: {exc}") from None
    for _, name, _spec, conversion in parsed:
        if name is None:
            continue
        if not _IDENT.match(name) or conversion not in (None, "s", "r"):
            raise ValueError(f"bad tag template {template!r}: {{{name}}} must name a column, like {{org_id}}")
        if name not in columns:
            columns.append(name)
    return columns


def table_maps(tables: Mapping[str, Iterable[str]]) -> dict[str, TableMap]:
    if not isinstance(tables, Mapping) or not tables:
        raise ValueError("tables must be a non-empty mapping of table name -> tag templates")
    out: dict[str, TableMap] = {}
    for table, templates in tables.items():
        if not isinstance(table, str) or not all(_IDENT.match(part) for part in table.split(".")) or table.count(".") > 1:
            raise ValueError(f"bad table name {table!r}: expected table or schema.table of plain identifiers")
        if isinstance(templates, str):
            raise ValueError(f"tables[{table!r}] must be a list of tag templates, not a str")
        templates = tuple(templates)
        if not templates:
            raise ValueError(f"tables[{table!r}] has no tag templates")
        columns: list[str] = []
        plain = []
        for template in templates:
            used = template_columns(template)
            if not used:
                plain.append(template)
            columns.extend(c for c in used if c not in columns)
        out[table] = TableMap(table, templates, tuple(columns), tuple(plain))
    return out


def parse_payload(payload: bytes | str) -> Change:
    """Decodes what herdcache_notify() sends. PayloadError if it is anything else."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"notification payload is not JSON: {exc}") from None
    except RecursionError:  # anyone may NOTIFY: a payload is not trusted to be shallow
        raise PayloadError(f"notification payload is nested too deeply: {payload[:40]!r}...") from None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        raise PayloadError(f"notification payload has no table: {payload[:200]!r}")
    new, old = data.get("new"), data.get("old")
    for row in (new, old):
        if row is not None and not isinstance(row, dict):
            raise PayloadError(f"notification row is not an object: {payload[:200]!r}")
    return Change(table=data["t"], op=str(data.get("op", "")), new=new, old=old, all=bool(data.get("all")))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_table(table: str) -> str:
    return ".".join(quote_ident(part) for part in table.split("."))


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $herdcache$
-- herdcache: NOTIFY TG_ARGV[0] with the mapped table TG_ARGV[1] and the columns
-- TG_ARGV[2:] of the old and new rows. Payloads must stay under 8000 bytes.
DECLARE
  cols text[] := TG_ARGV[2:TG_NARGS - 1];
  new_row json;
  old_row json;
  payload text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    payload := json_build_object('t', TG_ARGV[1], 'op', TG_OP, 'all', true)::text;
  ELSE
    IF TG_OP <> 'DELETE' THEN
      SELECT json_object_agg(c, to_json(NEW) -> c) INTO new_row FROM unnest(cols) AS c;
    END IF;
    IF TG_OP <> 'INSERT' THEN
      SELECT json_object_agg(c, to_json(OLD) -> c) INTO old_row FROM unnest(cols) AS c;
    END IF;
    payload := json_build_object('t', TG_ARGV[1], 'op', TG_OP, 'new', new_row, 'old', old_row)::text;
    IF octet_length(payload) >= 8000 THEN
      payload := json_build_object('t', TG_ARGV[1], 'op', TG_OP, 'all', true)::text;
    END IF;
  END IF;
  PERFORM pg_notify(TG_ARGV[0], payload);
  RETURN NULL;
END
$herdcache$;
"""


def install_sql(channel: str, maps: Mapping[str, TableMap]) -> str:
    """The whole install as one transaction; an advisory lock serialises concurrent installs."""
    trigger = quote_ident(f"herdcache_{channel}"[:_MAX_IDENT])
    truncate = quote_ident(f"herdcache_{channel}"[: _MAX_IDENT - 2] + "_t")
    parts = ["BEGIN;", "SELECT pg_advisory_xact_lock(hashtext('herdcache_install'));", FUNCTION_SQL]
    for table, tmap in maps.items():
        args = ", ".join(quote_literal(a) for a in (channel, table, *tmap.columns))
        qt = quote_table(table)
        parts += [
            f"DROP TRIGGER IF EXISTS {trigger} ON {qt};",
            f"CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {qt}"
            f" FOR EACH ROW EXECUTE FUNCTION {_FUNCTION}({args});",
            f"DROP TRIGGER IF EXISTS {truncate} ON {qt};",
            f"CREATE TRIGGER {truncate} AFTER TRUNCATE ON {qt}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}({args});",
        ]
    parts.append("COMMIT;")
    return "\n".join(parts)


def default_channel(namespace: str) -> str:
    channel = "herdcache_" + re.sub(r"[^A-Za-z0-9_]", "_", namespace)
    return channel[:_MAX_IDENT]


# --- the invalidator ----------------------------------------------------------------

class PostgresInvalidator:
    """Maps row changes in PostgreSQL to tag invalidations of `cache` (see module doc)."""

    def __init__(
        self,
        cache: Any,
        dsn: str,
        tables: Mapping[str, Iterable[str]],
        *,
        resources: Mapping[str, Iterable[str]] | None = None,
        channel: str | None = None,
        connect_timeout: float = 5.0,
        health_interval: float = 10.0,
        backoff_max: float = 5.0,
    ) -> None:
        if not isinstance(dsn, str) or not dsn:
            raise ValueError("dsn must be a non-empty libpq connection string or URI")
        _native.pg_validate_dsn(dsn)
        self._maps = table_maps(tables)
        self._resources: dict[str, tuple[str, ...]] = {}
        for table, names in (resources or {}).items():
            if table not in self._maps:
                raise ValueError(f"resources names table {table!r}, which is not in tables")
            if isinstance(names, str):
                raise ValueError(f"resources[{table!r}] must be a list of resource names, not a str")
            self._resources[table] = tuple(names)
        channel = default_channel(cache.namespace) if channel is None else channel
        if not isinstance(channel, str) or not 0 < len(channel.encode()) <= _MAX_IDENT:
            raise ValueError(f"channel must be 1..{_MAX_IDENT} bytes, got {channel!r}")
        for name, value in (("connect_timeout", connect_timeout), ("backoff_max", backoff_max)):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        if not isinstance(health_interval, (int, float)) or health_interval < 0:
            raise ValueError(f"health_interval must be a number of seconds >= 0, got {health_interval!r}")
        self.cache = cache
        self.dsn = dsn
        self.channel = channel
        self.connect_timeout = float(connect_timeout)
        self.health_interval = float(health_interval)
        self.backoff_max = float(backoff_max)
        self._listener: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: collections.deque[Any] = collections.deque()
        self._worker: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._counts = dict(notifications=0, invalidations=0, gaps=0, overflows=0, malformed=0,
                            reconnects=0, errors=0)
        self._last_error: str | None = None

    @property
    def tables(self) -> dict[str, tuple[str, ...]]:
        return {t: m.templates for t, m in self._maps.items()}

    # --- install ----------------------------------------------------------------------

    async def install(self) -> None:
        """Creates the trigger function and the triggers; safe to run again (and concurrently).
        ValueError if a mapped table or a column a template names does not exist."""
        timeout_ms = int(self.connect_timeout * 1000)
        for table, tmap in self._maps.items():
            rows = await asyncio.to_thread(
                _native.pg_query, self.dsn,
                "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass($1)"
                " AND a.attnum > 0 AND NOT a.attisdropped UNION ALL SELECT NULL WHERE to_regclass($1) IS NULL",
                [quote_table(table)], timeout_ms)
            if any(r[0] is None for r in rows):
                raise ValueError(f"table {table!r} does not exist in the database")
            existing = {r[0] for r in rows}
            missing = [c for c in tmap.columns if c not in existing]
            if missing:
                raise ValueError(f"tag templates of table {table!r} name unknown column(s) {missing}; "
                                 f"the table has {sorted(existing)}")
        await asyncio.to_thread(_native.pg_query, self.dsn, install_sql(self.channel, self._maps), [], timeout_ms)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Starts listening; returns once LISTEN is confirmed, or after connect_timeout with
        a warning (the listener keeps retrying; its first success counts as a gap)."""
        if self._listener is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._listening.clear()
        self._listener = _native.PgListener(
            self.dsn, [self.channel],
            connect_timeout_ms=int(self.connect_timeout * 1000),
            health_interval_ms=int(self.health_interval * 1000),
            health_timeout_ms=int(self.connect_timeout * 1000),
            backoff_max_ms=max(50, int(self.backoff_max * 1000)),
        )
        self._loop.add_reader(self._listener.fd, self._on_ready)
        try:
            await asyncio.wait_for(self._listening.wait(), self.connect_timeout)
        except asyncio.TimeoutError:
            log.warning("herdcache: PostgreSQL listener not connected after %.1fs (%s); still trying",
                        self.connect_timeout, self._last_error)

    async def stop(self) -> None:
        """Stops the listener thread and finishes the invalidations already received."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        assert self._loop is not None
        self._loop.remove_reader(listener.fd)
        listener.close()
        self._pending.extend(listener.drain())
        self._kick()
        worker = self._worker
        if worker is not None:
            await worker
        self._listening.clear()

    async def __aenter__(self) -> PostgresInvalidator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def health(self) -> dict[str, Any]:
        """Listener state for /health and stats: ok (running and connected), counts, last_error.
        Fits the admin router's health_checks: ``{"postgres": lambda: inv.health}``."""
        running = self._listener is not None
        connected = bool(running and self._listener.connected)
        return {
            "ok": running and connected,
            "running": running,
            "connected": connected,
            "channel": self.channel,
            **self._counts,
            "pending": len(self._pending),
            "last_error": self._last_error,
        }

    # --- events (loop thread) ---------------------------------------------------------

    def _on_ready(self) -> None:
        if self._listener is None:
            return
        self._pending.extend(self._listener.drain())
        self._kick()

    def _kick(self) -> None:
        if self._pending and (self._worker is None or self._worker.done()):
            assert self._loop is not None
            self._worker = self._loop.create_task(self._process())

    async def _process(self) -> None:
        while self._pending:
            event = self._pending.popleft()
            try:
                await self._handle(event)
            except Exception as exc:  # counted, logged, kept: one bad event must not stop the rest
                self._counts["errors"] += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.exception("herdcache: PostgreSQL invalidation failed for %r", event)

    async def _handle(self, event: _native.PgEvent) -> None:
        kind = event.kind
        if kind == _native.PgEvent.NOTIFY:
            self._counts["notifications"] += 1
            try:
                change = parse_payload(event.payload)
                tmap = self._maps.get(change.table)
                if tmap is None:
                    raise PayloadError(f"notification for unmapped table {change.table!r}")
                tags = None if change.all else tmap.tags(change)
            except PayloadError as exc:
                self._counts["malformed"] += 1
                self._last_error = str(exc)
                log.warning("herdcache: %s; invalidating every table's tags", exc)
                await self._invalidate_everything()
                return
            if tags is None:
                self._counts["overflows"] += 1
                await self._invalidate_table([tmap])
            else:
                await self.cache.invalidate_tags(*tags)
                self._counts["invalidations"] += 1
        elif kind == _native.PgEvent.CONNECTED:
            self._listening.set()
            if event.after_loss:
                self._counts["gaps"] += 1
                self._counts["reconnects"] += 1
                log.warning("herdcache: PostgreSQL listener reconnected (%s); invalidating every mapped tag",
                            event.detail)
                await self._invalidate_everything()
        elif kind == _native.PgEvent.LOST:
            self._listening.clear()
            self._last_error = event.detail
            log.warning("herdcache: PostgreSQL listener down: %s", event.detail)
        elif kind == _native.PgEvent.OVERFLOW:
            self._counts["gaps"] += 1
            log.warning("herdcache: PostgreSQL listener queue overflowed (%d events dropped); "
                        "invalidating every mapped tag", event.dropped)
            await self._invalidate_everything()

    async def _invalidate_everything(self) -> None:
        await self._invalidate_table(list(self._maps.values()))

    async def _invalidate_table(self, maps: list[TableMap]) -> None:
        plain = list(dict.fromkeys(tag for m in maps for tag in m.plain))
        templated = [m for m in maps if m.has_placeholders]
        if any(m.table not in self._resources for m in templated):
            await self.cache.clear()  # unfillable templates and no resource list: the safe choice
            self._counts["invalidations"] += 1
            return
        if plain:
            await self.cache.invalidate_tags(*plain)
        for resource in dict.fromkeys(r for m in templated for r in self._resources[m.table]):
            await self.cache.invalidate(resource)
        self._counts["invalidations"] += 1
