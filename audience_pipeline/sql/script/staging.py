"""Segment's warehouse tables -> the run's messages, quarantine and trait updates, in SQL.

The same rules as `ingest.segment_warehouse` on the same rows: each call table's rows in the order
(timestamp, received_at, id), numbered like the lines of a file; a row without a usable identifier,
without a time, a track without an event or a group without a groupId is quarantined with
SPEC's reason; copies of a message id are dropped (earliest received_at, then first read); then
the as-of cut. Properties and context come from the flattened columns (``context_<group>_<rest>``
is ``context.<group>.<rest>``); a track's properties from its event's own table, by message id.
Each value is tagged by its column's SQL type (see `values`): the compiled space reads it as the
engine does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import condition_exprs, iter_conditions, refs
from audience_pipeline.segment_tables import CALL_TABLES, CONTEXT_GROUPS, NAMED, STANDARD, slug
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sql.dialects import SqlDialect
from audience_pipeline.sql.script.astutil import (
    coalesce,
    concat,
    first_present,
    lit,
    qcol,
    select,
    text_null,
)
from audience_pipeline.sql.script.catalog import Catalog
from audience_pipeline.sql.script.program import Table
from audience_pipeline.sql.typed import number_text

CALL_TYPES = {"identifies": "identify", "groups": "group", "aliases": "alias", "tracks": "track",
              "pages": "page", "screens": "screen"}  # fmt: skip
PAGE_EVENTS = {"pages": "Page Viewed", "screens": "Screen Viewed"}

NO_IDENTIFIER = "no identifier"
MISSING_TIMESTAMP = "missing timestamp"
TRACK_WITHOUT_EVENT = "track without event"
GROUP_WITHOUT_GROUP_ID = "group without groupId"


@dataclass(frozen=True)
class IdPath:
    """One `from` path of an identifier type: its column in the staged messages."""

    column: str  # _id<i>
    trank: int
    id_type: str
    path: str
    lower: bool


@dataclass
class Staging:
    """What the staging SQL needs to know: the warehouse's columns, the space's identifier paths
    and the property/context paths the compiled space reads."""

    catalog: Catalog
    space: SpaceConfig
    dialect: SqlDialect
    flat_paths: list[tuple[str, str]]  # (properties|context, dotted path)
    events: set[str]
    id_paths: list[IdPath] = field(default_factory=list)

    def __post_init__(self) -> None:
        ordered = sorted(self.space.identifiers, key=lambda s: s.priority)
        for trank, spec in enumerate(ordered):
            for path in spec.paths:
                self.id_paths.append(IdPath(f"_id{len(self.id_paths)}", trank, spec.type, path,
                                            spec.type == "email"))  # fmt: skip

    @property
    def schema(self) -> str:
        return self.catalog.schema

    def tables(self) -> list[str]:
        return [t for t in CALL_TABLES if self.catalog.has(t)]

    # --- column readings ------------------------------------------------------------------------

    def column(self, table: str, name: str, alias: str = "r") -> exp.Expr | None:
        return qcol(name, alias) if self.catalog.has(table, name) else None

    def tag(self, table: str, name: str, alias: str = "r") -> exp.Expr | None:
        """The column's value as tagged text (`values`), by its SQL type."""
        value = self.column(table, name, alias)
        if value is None:
            return None
        d = self.dialect
        kind = self.catalog.columns(table)[name]
        if kind == "n":
            return concat(lit("n"), number_text(d, d.to_double(value)))
        if kind == "b":
            return exp.Case().when(value, lit("btrue")).when(exp.not_(value.copy()), lit("bfalse"))
        if kind == "t":
            iso = exp.func("REPLACE", d.to_text(value), lit(" "), lit("T"))
            return concat(lit("s"), iso)
        return concat(lit("s"), d.to_text(value))

    def _is_extra(self, table: str, name: str) -> bool:
        """A property/trait column: not one of the message's own fields, not context."""
        return (
            self.catalog.has(table, name)
            and name not in STANDARD
            and not name.startswith("context_")
        )

    def trait_columns(self, table: str) -> list[str]:
        return [c for c in self.catalog.columns(table) if self._is_extra(table, c)]

    def context_column(self, dotted: str) -> str:
        first, _, rest = dotted.partition(".")
        if first in CONTEXT_GROUPS and rest:
            return f"context_{first}_{rest}"
        return f"context_{dotted}"

    def identifier_value(self, table: str, path: str) -> exp.Expr | None:
        """The raw text of one identifier path on a table's row (None: never present)."""
        if path == "userId":
            name: str | None = "user_id"
        elif path == "anonymousId":
            name = "anonymous_id"
        elif path.startswith("traits.") and path.count(".") == 1:
            # traits.* is read on identify calls only (a group's traits are the account's).
            key = path.split(".", 1)[1]
            name = key if table == "identifies" and self._is_extra(table, key) else None
        elif path.startswith("context."):
            name = self.context_column(path.split(".", 1)[1])
        else:
            name = None
        if name is None or self.catalog.columns(table).get(name) != "s":
            return None
        return self.column(table, name)

    def normalized(self, value: exp.Expr, lower: bool) -> exp.Expr:
        """Trimmed, blocked values (case-insensitive) NULL, emails lower-cased."""
        trimmed = exp.Trim(this=value)
        blocked = sorted({v.lower() for v in self.space.blocked_values} | {""})
        is_blocked = exp.In(this=exp.Lower(this=trimmed.copy()),
                            expressions=[lit(v) for v in blocked])  # fmt: skip
        kept = exp.Lower(this=trimmed.copy()) if lower else trimmed.copy()
        return exp.Case().when(is_blocked, exp.null()).else_(kept)

    # --- the staged rows --------------------------------------------------------------------------

    def _flat(self, table: str, source: str, dotted: str, joins: list[str]) -> exp.Expr:
        if source == "context":
            return self.tag(table, self.context_column(dotted)) or text_null()
        if table in PAGE_EVENTS:
            own = self.tag(table, dotted) if self._is_extra(table, dotted) and dotted not in NAMED \
                else None  # fmt: skip
            if dotted == "name":
                own = self.tag(table, "name")
            elif dotted in ("url", "path"):
                fill = self.tag(table, f"context_page_{dotted}")
                own = coalesce(*[v for v in (own, fill) if v is not None]) if own or fill else None
            return own or text_null()
        if table == "tracks":
            found = [self.tag(t, dotted, f"e{i}") for i, t in enumerate(joins)
                     if self._is_extra(t, dotted)]  # fmt: skip
            if self._is_extra(table, dotted):
                found.append(self.tag(table, dotted))
            values = [v for v in found if v is not None]
            return coalesce(*values) if values else text_null()
        return text_null()

    def event_tables(self) -> list[tuple[str, list[str]]]:
        """The event tables the space reads properties from, with the names mapped to each."""
        by_table: dict[str, list[str]] = {}
        for name in sorted(self.events):
            table_name = slug(name)
            if table_name and table_name not in CALL_TABLES and self.catalog.has(table_name):
                by_table.setdefault(table_name, []).append(name)
        return sorted(by_table.items())

    def _line(self, table: str) -> exp.Window:
        """A row's line: its place in (timestamp, received_at, id) order, as Python reads it."""
        order = [exp.Ordered(this=(self.column(table, c) or exp.null()).copy(), nulls_first=False)
                 for c in ("timestamp", "received_at", "id")]  # fmt: skip
        return exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=order))

    def _source(self, table: str, alias: str | None = "r") -> exp.Table:
        return exp.table_(exp.to_identifier(table, quoted=True),
                          db=exp.to_identifier(self.schema, quoted=True), alias=alias)  # fmt: skip

    def numbered(self) -> list[Table]:
        """Identifies and groups with their line numbers, read twice (messages and traits)."""
        return [
            Table(
                f"ap_rows_{table}",
                exp.select(exp.Star())
                .from_(self._source(table, "r"))
                .select(exp.alias_(self._line(table).copy(), "_line")),
            )  # fmt: skip
            for table in ("identifies", "groups")
            if self.catalog.has(table)
        ]

    def _row_select(self, index: int, table: str) -> exp.Select:
        d = self.dialect
        if table in ("identifies", "groups"):
            source = exp.table_(f"ap_rows_{table}", alias="r")
            line: exp.Expr = exp.column("_line", "r")
        else:
            source = self._source(table)
            line = self._line(table)
        col = self.column
        call = CALL_TYPES[table]
        message_id = first_present(*[d.to_text(c) if c is not None else None
                                     for c in (col(table, "id"), col(table, "message_id"))])  # fmt: skip
        ts = col(table, "timestamp") or exp.null()
        received = col(table, "received_at") or exp.null()
        if table == "tracks":
            text = col(table, "event_text")
            plain = col(table, "event")
            # Python's `event_text or event`: an empty event_text falls back to event.
            blank = exp.Nullif(this=text, expression=lit("")) if text is not None else None
            event: exp.Expr = first_present(blank, plain)
        elif table in PAGE_EVENTS:
            event = lit(PAGE_EVENTS[table])
        else:
            event = text_null()
        group = col(table, "group_id")
        group_id = d.to_text(group) if table == "groups" and group is not None else text_null()
        previous = col(table, "previous_id")
        previous_id = self.normalized(d.to_text(previous), False) if table == "aliases" and \
            previous is not None else text_null()  # fmt: skip
        ids = []
        for p in self.id_paths:
            raw = self.identifier_value(table, p.path)
            ids.append(exp.alias_(self.normalized(raw, p.lower) if raw is not None
                                  else text_null(), p.column))  # fmt: skip
        joins = [t for t, _ in self.event_tables()] if table == "tracks" else []
        flats = [exp.alias_(self._flat(table, s, p, joins), flat_column(i))
                 for i, (s, p) in enumerate(self.flat_paths)]  # fmt: skip
        query = exp.select(
            exp.alias_(lit(index), "_tix"), exp.alias_(line, "_line"),
            exp.alias_(lit(f"warehouse:{self.schema}.{table}"), "source"),
            exp.alias_(message_id, "message_id"), exp.alias_(lit(call), "type"),
            exp.alias_(event, "event"), exp.alias_(d.cast(ts, d.timestamp_type), "_ts"),
            exp.alias_(d.cast(received, d.timestamp_type), "received_at"),
            exp.alias_(group_id, "group_id"), exp.alias_(previous_id, "previous_id"),
            *ids, *flats,
        ).from_(source)  # fmt: skip
        for i, (event_table, names) in enumerate(self.event_tables() if table == "tracks" else []):
            alias = f"e{i}"
            on = exp.and_(
                exp.EQ(this=qcol("id", alias), expression=qcol("id", "r")),
                exp.In(this=event.copy(), expressions=[lit(n) for n in names]),
            )
            query = query.join(self._last_per_id(event_table).subquery(alias), on=on,
                               join_type="left")  # fmt: skip
        return query

    def _last_per_id(self, table: str) -> exp.Select:
        """An event table's rows, one per message id: the last in line order (as the Python
        reader's dict of properties by id keeps it)."""
        order = [exp.Ordered(this=(self.column(table, c) or exp.null()).copy(), desc=True,
                             nulls_first=True) for c in ("timestamp", "received_at", "id")]  # fmt: skip
        last = exp.Window(this=exp.RowNumber(), partition_by=[qcol("id", "r")],
                          order=exp.Order(expressions=order))  # fmt: skip
        ranked = (
            exp.select(exp.Star()).from_(self._source(table)).select(exp.alias_(last, "_ap_last"))
        )
        return (
            exp.select(exp.Star())
            .from_(ranked.subquery("r"))
            .where(exp.EQ(this=exp.column("_ap_last"), expression=lit(1)))
        )

    def staged(self) -> Table:
        """Every row of every call table, with its quarantine reason (NULL: usable)."""
        parts = [self._row_select(i, t) for i, t in enumerate(self.tables())]
        union: exp.Query = parts[0]
        for part in parts[1:]:
            union = exp.union(union, part, distinct=False)
        any_id = exp.or_(*[exp.not_(exp.Is(this=exp.column(p.column), expression=exp.null()))
                           for p in self.id_paths]) if self.id_paths else exp.false()  # fmt: skip
        reason = (
            exp.Case()
            .when(exp.not_(exp.paren(any_id)), lit(NO_IDENTIFIER))
            .when(select("SELECT _ts IS NULL AND received_at IS NULL").selects[0],
                  lit(MISSING_TIMESTAMP))
            .when(select("SELECT type = 'track' AND (event IS NULL OR event = '')").selects[0],
                  lit(TRACK_WITHOUT_EVENT))
            .when(select("SELECT type = 'group' AND (group_id IS NULL OR group_id = '')")
                  .selects[0], lit(GROUP_WITHOUT_GROUP_ID))
        )  # fmt: skip
        seq = exp.Window(this=exp.RowNumber(), order=exp.Order(
            expressions=[exp.Ordered(this=exp.column("_tix")),
                         exp.Ordered(this=exp.column("_line"))]))  # fmt: skip
        query = exp.select(
            exp.Star(), exp.alias_(exp.Sub(this=seq, expression=lit(1)), "seq"),
            exp.alias_(exp.Coalesce(this=exp.column("_ts"), expressions=[exp.column("received_at")]),
                       "timestamp"),
            exp.alias_(reason, "reason"),
        ).from_(union.subquery("u"))  # fmt: skip
        return Table("ap_staged", query)

    def steps(self) -> list[Table]:
        """ap_staged, ap_quarantine, ap_msgs (usable, deduped, cut at as-of)."""
        flats = [exp.column(flat_column(i)) for i in range(len(self.flat_paths))]
        ids = [exp.column(p.column) for p in self.id_paths]
        quarantine = select(
            "SELECT message_id AS raw, source, _line AS line, reason FROM ap_staged "
            "WHERE reason IS NOT NULL"
        )
        ranked = select(
            "SELECT *, ROW_NUMBER() OVER (PARTITION BY message_id ORDER BY "
            "received_at IS NULL, received_at, seq) AS _copy FROM ap_staged WHERE reason IS NULL"
        )
        msgs = select(
            "SELECT seq, message_id, type, event, timestamp, group_id, previous_id, _tix, _line "
            "FROM ranked WHERE (message_id IS NULL OR _copy = 1) "
            "AND timestamp <= (SELECT as_of FROM ap_params)"
        )
        msgs = msgs.select(*ids, *flats).from_(ranked.subquery("ranked"))
        return [*self.numbered(), self.staged(), Table("ap_quarantine", quarantine),
                Table("ap_msgs", msgs)]  # fmt: skip

    # --- custom traits ----------------------------------------------------------------------------

    def trait_updates(self) -> Table | None:
        """kind, seq, key, tagged, raw of every non-null custom trait of a usable message."""
        parts: list[exp.Select] = []
        for table, kind in (("identifies", "user"), ("groups", "account")):
            if not self.catalog.has(table):
                continue
            index = self.tables().index(table)
            keys: dict[str, list[str]] = {}
            for column in self.trait_columns(table):
                keys.setdefault(column, []).append(column)
            if table == "identifies":
                for column in self.catalog.columns(table):
                    if column.startswith("context_traits_") and len(column) > 15:
                        keys.setdefault(column[15:], []).append(column)
            for key, columns in sorted(keys.items()):
                # traits over context.traits (a warehouse null is an absent key, never an override)
                tagged = coalesce(*[t for c in columns if (t := self.tag(table, c)) is not None])
                raw = coalesce(*[self.raw_json(table, c) for c in columns])
                part = (
                    exp.select(
                        exp.alias_(lit(kind), "kind"), exp.column("seq", "m"),
                        exp.alias_(lit(key), "key"), exp.alias_(tagged, "tagged"),
                        exp.alias_(raw, "raw"),
                    )
                    .from_(exp.table_(f"ap_rows_{table}", alias="r"))
                    .join(exp.table_("ap_msgs", alias="m"),
                          on=exp.and_(exp.EQ(this=exp.column("_tix", "m"), expression=lit(index)),
                                      exp.EQ(this=exp.column("_line", "m"),
                                             expression=exp.column("_line", "r"))))
                    .where(exp.not_(exp.Is(this=tagged.copy(), expression=exp.null())))
                )  # fmt: skip
                parts.append(part)
        if not parts:
            return None
        union: exp.Query = parts[0]
        for part in parts[1:]:
            union = exp.union(union, part, distinct=False)
        return Table("ap_trait_updates", exp.select(exp.Star()).from_(union.subquery("t")))

    def raw_json(self, table: str, name: str) -> exp.Expr:
        """The column's value as JSON text (what a mixed-type trait column keeps)."""
        value = self.column(table, name)
        assert value is not None
        d = self.dialect
        kind = self.catalog.columns(table)[name]
        if kind == "n":
            return number_text(d, d.to_double(value))
        if kind == "b":
            return exp.Case().when(value, lit("true")).when(exp.not_(value.copy()), lit("false"))
        text = d.to_text(value)
        if kind == "t":
            text = exp.func("REPLACE", text, lit(" "), lit("T"))
        escaped = exp.func("REPLACE", exp.func("REPLACE", text, lit("\\"), lit("\\\\")),
                           lit('"'), lit('\\"'))  # fmt: skip
        return concat(lit('"'), escaped, lit('"'))

    def trait_kinds(self, table: str) -> dict[str, set[str]]:
        """Per custom trait key, the JSON kinds its columns can hold."""
        kinds: dict[str, set[str]] = {}
        for column in self.trait_columns(table):
            kinds.setdefault(column, set()).add(_json_kind(self.catalog.columns(table)[column]))
        if table == "identifies":
            for column, kind in self.catalog.columns(table).items():
                if column.startswith("context_traits_") and len(column) > 15:
                    kinds.setdefault(column[15:], set()).add(_json_kind(kind))
        return kinds


def _json_kind(kind: str) -> str:
    return "s" if kind in ("t", "d") else kind


def flat_name(source: str, dotted: str) -> str:
    """The compiler's name for a stored path column (`relations`)."""
    return ("c." if source == "context" else "p.") + dotted


def flat_column(index: int) -> str:
    # Our own name for it: dotted names are paths in BigQuery even when quoted.
    return f"_fp{index}"


def referenced_paths(space: ir.Space) -> list[tuple[str, str]]:
    """(properties|context, dotted) of every event property and context path the space reads."""
    found: list[ir.Ref] = []
    for trait in space.traits:
        if trait.property is not None:
            found.append(trait.property)
        found += refs(trait.where)
    for audience in space.audiences:
        for node in iter_conditions(audience.condition):
            if not isinstance(node, ir.TraitsCond):
                for expr in condition_exprs(node):
                    found += refs(expr)
    paths = []
    for ref in found:
        if ref.scope == "trait":
            continue
        source = "context" if ref.scope in ("context", "parent_context") else "properties"
        if (source, ref.dotted) not in paths:
            paths.append((source, ref.dotted))
    return paths


def referenced_events(space: ir.Space) -> set[str]:
    names: set[str] = set()
    for trait in space.traits:
        names.update(trait.events)
    for audience in space.audiences:
        for node in iter_conditions(audience.condition):
            if isinstance(node, ir.EventCond):
                names.update(node.events)
            elif isinstance(node, ir.Funnel):
                for step in node.steps:
                    names.update(step.events)
    return names
