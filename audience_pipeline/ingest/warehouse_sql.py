"""Segment's warehouse rows -> message lines, built by DuckDB in SQL.

Each expression here writes, byte for byte, what ``orjson.dumps(to_message(table, row))`` writes
(`segment_warehouse.to_message`, the reference rules): the same keys in the same order, nulls
left out the same way, values in orjson's spelling. That holds for the column types and values
measured equal (`tests/unit/test_ingest_warehouse.py` compares them on random tables):

- text: DuckDB's ``to_json`` equals orjson except the escapes of control characters (DuckDB
  writes ``\\u000B``, orjson ``\\u000b``), so a line holding ``\\u00`` is left to Python;
- integers up to 64 bits and booleans; doubles (and floats, widened) when 0 or 1e-5 <= |x| < 1e16
  (outside, DuckDB writes ``0.000001`` where orjson writes ``1e-6``): other values go to Python;
- timestamps without a zone (to the millisecond or microsecond), dates, and timestamps with a
  zone when the connection's time zone is UTC, for years 1000-9999 (Python's ``isoformat``).

A table with any other column type (decimals, lists, UUIDs, ...) is read by the Python rules
entirely; a row with a value outside the ranges above is read by them row by row.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from audience_pipeline.segment_tables import CONTEXT_GROUPS, NAMED, STANDARD

CALLS = {"identifies": "identify", "groups": "group", "aliases": "alias", "tracks": "track",
         "pages": "page", "screens": "screen"}  # fmt: skip
INTEGERS = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                      "UINTEGER", "UBIGINT"})  # fmt: skip
STRINGS = frozenset({"VARCHAR", "JSON"})
FLOATS = frozenset({"FLOAT", "DOUBLE"})
NAIVE_TIMES = frozenset({"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS"})
ZONED_TIME = "TIMESTAMP WITH TIME ZONE"
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu"})
# Columns the reference sorts rows by (`segment_warehouse._sort_key`), in that order.
SORT_COLUMNS = ("timestamp", "received_at", "id")


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def name(text: str) -> str:
    """A quoted SQL identifier."""
    return '"' + text.replace('"', '""') + '"'


def _key(text: str) -> str:
    """The JSON text of an object key (orjson's spelling) as a SQL literal, with its colon."""
    return literal(orjson.dumps(text).decode() + ":")


@dataclass(frozen=True)
class Column:
    """One column of a warehouse table: its name and DuckDB type (as DESCRIBE spells it)."""

    name: str
    type: str

    def supported(self, utc: bool) -> bool:
        """Whether SQL writes this column's values exactly (see the module's list)."""
        kind = self.type
        return (kind in STRINGS or kind in INTEGERS or kind in FLOATS or kind == "BOOLEAN"
                or kind in NAIVE_TIMES or kind == "DATE" or (kind == ZONED_TIME and utc))  # fmt: skip

    def sortable(self, utc: bool) -> bool:
        """Whether ORDER BY on `sort_sql` orders as the reference's string keys do."""
        kind = self.type
        return (kind in STRINGS or kind in INTEGERS or kind in NAIVE_TIMES or kind == "DATE"
                or (kind == ZONED_TIME and utc))  # fmt: skip

    def sort_sql(self, alias: str) -> str:
        """The sort key: the value itself, or its text for integers (the reference's ``str``)."""
        ref = f"{alias}.{name(self.name)}"
        return f"CAST({ref} AS VARCHAR)" if self.type in INTEGERS else ref

    def json_sql(self, alias: str) -> str:
        """The value's JSON text (NULL for NULL)."""
        ref = f"{alias}.{name(self.name)}"
        kind = self.type
        if kind in STRINGS:
            return f"to_json(CAST({ref} AS VARCHAR))"
        if kind in INTEGERS:
            return f"CAST({ref} AS VARCHAR)"
        if kind in FLOATS:
            return f"to_json(CAST({ref} AS DOUBLE))"
        if kind == "BOOLEAN":
            return f"CASE WHEN {ref} THEN 'true' WHEN NOT {ref} THEN 'false' END"
        if kind == "DATE":
            return f"'\"' || strftime({ref}, '%Y-%m-%d') || '\"'"
        if kind == ZONED_TIME:
            return "'\"' || " + _iso(f"timezone('UTC', {ref})") + " || '+00:00\"'"
        return "'\"' || " + _iso(f"CAST({ref} AS TIMESTAMP)") + " || '\"'"

    def odd_sql(self, alias: str) -> str | None:
        """True where the value is outside what SQL writes exactly (the row goes to Python)."""
        ref = f"{alias}.{name(self.name)}"
        kind = self.type
        if kind in FLOATS:
            value = f"CAST({ref} AS DOUBLE)"
            return f"NOT ({value} = 0 OR (abs({value}) >= 1e-5 AND abs({value}) < 1e16))"
        if kind in NAIVE_TIMES or kind == "DATE" or kind == ZONED_TIME:
            value = f"timezone('UTC', {ref})" if kind == ZONED_TIME else ref
            return f"(NOT isfinite({value}) OR year({value}) NOT BETWEEN 1000 AND 9999)"
        return None


def _iso(timestamp: str) -> str:
    """Python's ``isoformat`` of a naive timestamp: microseconds only when not zero."""
    return (f"CASE WHEN date_part('microseconds', {timestamp}) % 1000000 = 0 "
            f"THEN strftime({timestamp}, '%Y-%m-%dT%H:%M:%S') "
            f"ELSE strftime({timestamp}, '%Y-%m-%dT%H:%M:%S.%f') END")  # fmt: skip


def _member(column: Column, key: str, alias: str) -> str:
    return f"{_key(key)} || {column.json_sql(alias)}"


def _optional(key: str, value: str) -> str:
    """``,"key":value`` or nothing when the value is NULL."""
    return f"coalesce({literal(',' + orjson.dumps(key).decode() + ':')} || {value}, '')"


def _nullable(key: str, value: str) -> str:
    """``,"key":value`` with ``null`` for NULL."""
    return f"{literal(',' + orjson.dumps(key).decode() + ':')} || coalesce({value}, 'null')"


def _object(members: list[str]) -> str:
    if not members:
        return "'{}'"
    return "'{' || concat_ws(',', " + ", ".join(members) + ") || '}'"


@dataclass(frozen=True)
class Plan:
    """How one call table's rows become message lines in SQL."""

    table: str
    columns: tuple[Column, ...]

    @property
    def call(self) -> str:
        return CALLS.get(self.table, "track")

    def column(self, column: str) -> Column | None:
        return next((c for c in self.columns if c.name == column), None)

    def sort_columns(self) -> list[Column]:
        return [c for c in (self.column(n) for n in SORT_COLUMNS) if c is not None]

    def sortable(self, utc: bool) -> bool:
        return all(c.sortable(utc) for c in self.sort_columns())

    def order_sql(self, alias: str) -> str:
        """ORDER BY of the reference's row order (its stable sort keeps the scan order)."""
        keys = [f"{c.sort_sql(alias)} ASC NULLS LAST" for c in self.sort_columns()]
        return ", ".join([*keys, f"{alias}.rowid"])

    def supported(self, utc: bool) -> bool:
        """Whether SQL writes this table's lines (else the Python rules read it)."""
        return (
            all(c.supported(utc) for c in self.columns)
            and self.sortable(utc)
            and self._context_plan() is not None
            and self._event_columns_are_text()
        )

    def _event_columns_are_text(self) -> bool:
        # ``event_text or event`` is Python truthiness; for text it is "non-empty".
        return all(
            c.type in STRINGS for c in (self.column("event_text"), self.column("event")) if c
        )

    def odd_sql(self, alias: str) -> str:
        checks = [c.odd_sql(alias) for c in self.columns]
        present = [f"coalesce({check}, false)" for check in checks if check]
        return " OR ".join(present) if present else "false"

    def _context_plan(self) -> list[tuple[str, bool, list[tuple[Column, str]]]] | None:
        """Context entries in order of first column: (key, is a group, [(column, sub key)]).
        None when a key is both a group and a plain value (the reference then fails or
        overwrites: left to it)."""
        entries: dict[str, tuple[bool, list[tuple[Column, str]]]] = {}
        for column in self.columns:
            if not column.name.startswith("context_"):
                continue
            rest = column.name[len("context_") :]
            group = next((g for g in CONTEXT_GROUPS if rest.startswith(g + "_")), None)
            key, sub = (rest, "") if group is None else (group, rest[len(group) + 1 :])
            is_group, members = entries.setdefault(key, (group is not None, []))
            if is_group != (group is not None):
                return None
            members.append((column, sub))
        return [(key, is_group, members) for key, (is_group, members) in entries.items()]

    def _context_sql(self, alias: str) -> str:
        items: list[tuple[str, str]] = []  # (position in the row's object, member text)
        for key, is_group, members in self._context_plan() or []:
            if not is_group:
                column = members[0][0]
                items.append((str(self.columns.index(column)), _member(column, key, alias)))
                continue
            inner = "concat_ws(',', " + ", ".join(
                _member(column, sub, alias) for column, sub in members) + ")"  # fmt: skip
            # A group sits where its first non-null column is (the reference's setdefault).
            position = "least(" + ", ".join(
                f"CASE WHEN {alias}.{name(c.name)} IS NOT NULL THEN {self.columns.index(c)} END"
                for c, _ in members) + ")"  # fmt: skip
            items.append((position, f"{_key(key)} || '{{' || nullif({inner}, '') || '}}'"))
        if not items:
            return "NULL"
        entries = [entry for entry, _ in self._entry_runs()]
        if len(entries) == len(set(entries)):  # each entry's columns side by side: fixed order
            body = "concat_ws(',', " + ", ".join(text for _, text in items) + ")"
        else:
            structs = ", ".join(f"{{'p': {p}, 't': {t}}}" for p, t in items)
            body = (f"array_to_string(list_transform(list_sort(list_filter([{structs}], "
                    f"lambda x: x.t IS NOT NULL)), lambda x: x.t), ',')")  # fmt: skip
        return f"'{{' || nullif({body}, '') || '}}'"

    def _entry_runs(self) -> list[tuple[str, int]]:
        """Context columns as runs of the same entry (key or group), in column order."""
        runs: list[tuple[str, int]] = []
        for column in self.columns:
            if not column.name.startswith("context_"):
                continue
            rest = column.name[len("context_") :]
            entry = next((g for g in CONTEXT_GROUPS if rest.startswith(g + "_")), rest)
            if not runs or runs[-1][0] != entry:
                runs.append((entry, 1))
        return runs

    def extras_sql(self, alias: str) -> str:
        """The properties / traits object: every other column, in column order."""
        skip = NAMED if self.call in ("page", "screen") else frozenset()
        members = [
            _member(c, c.name, alias) for c in self.columns
            if c.name not in STANDARD and c.name not in skip and not c.name.startswith("context_")
        ]  # fmt: skip
        return _object(members)

    def _value(self, column: str, alias: str) -> str | None:
        found = self.column(column)
        return None if found is None else found.json_sql(alias)

    def head_sql(self, alias: str) -> str:
        """The line up to its last field (the properties of a track come after it)."""
        parts = [literal('{"type":' + orjson.dumps(self.call).decode())]
        ids = [v for v in (self._value("id", alias), self._value("message_id", alias)) if v]
        if ids:
            parts.append(_optional("messageId", "coalesce(" + ", ".join(ids) + ")"))
        for column, field in (("user_id", "userId"), ("anonymous_id", "anonymousId"),
                              ("timestamp", "timestamp"), ("received_at", "receivedAt"),
                              ("sent_at", "sentAt")):  # fmt: skip
            value = self._value(column, alias)
            if value:
                parts.append(_optional(field, value))
        parts.append(_optional("context", self._context_sql(alias)))
        call = self.call
        if call == "identify":
            parts.append(_nullable("traits", self.extras_sql(alias)))
        elif call == "group":
            parts.append(_nullable("groupId", self._value("group_id", alias) or "NULL"))
            parts.append(_nullable("traits", self.extras_sql(alias)))
        elif call == "alias":
            parts.append(_nullable("previousId", self._value("previous_id", alias) or "NULL"))
        elif call in ("page", "screen"):
            value = self._value("name", alias)
            if value:
                parts.append(_optional("name", value))
        else:
            parts.append(_nullable("event", self.event_sql(alias) or "NULL"))
        return " || ".join(parts)

    def event_sql(self, alias: str) -> str | None:
        """The JSON text of ``event_text or event`` (a track's event name)."""
        text, event = self.column("event_text"), self.column("event")
        if text and event:
            ref = f"{alias}.{name(text.name)}"
            return (f"CASE WHEN {ref} IS NOT NULL AND {ref} <> '' THEN {text.json_sql(alias)} "
                    f"ELSE {event.json_sql(alias)} END")  # fmt: skip
        if text:
            ref = f"{alias}.{name(text.name)}"
            return f"CASE WHEN {ref} <> '' THEN {text.json_sql(alias)} END"
        return event.json_sql(alias) if event else None

    def event_name_sql(self, alias: str) -> str:
        """``event_text or event`` as text (to find the event tables to read)."""
        text, event = self.column("event_text"), self.column("event")
        text_ref = f"{alias}.{name(text.name)}" if text else "NULL"
        event_ref = f"{alias}.{name(event.name)}" if event else "NULL"
        return f"CASE WHEN {text_ref} <> '' THEN {text_ref} ELSE {event_ref} END"

    def message_id_key_sql(self, alias: str) -> str:
        """``str(message["messageId"])`` of the reference ('None' when there is none)."""
        ids = [f"CAST({alias}.{name(c)} AS VARCHAR)" for c in ("id", "message_id")
               if self.column(c)]  # fmt: skip
        return "coalesce(" + ", ".join([*ids, "'None'"]) + ")"

    def id_types_ok(self) -> bool:
        """The message id's text in SQL equals Python's ``str`` (text or integer columns)."""
        return all(
            c.type in STRINGS or c.type in INTEGERS
            for c in (self.column("id"), self.column("message_id")) if c
        )  # fmt: skip
