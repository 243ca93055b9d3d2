"""The compiled space's input relations, its level frames, and the output tables, as steps.

The input relations are those `relations` describes (with every property path a stored flat
column, so no JSON is parsed); the frames are the compiler's own SQL (`compiler`); the output
tables have the columns and types of the Polars engine's (`docs/tables.md`), written to
``<out_schema>.<table>``; changes and history diff against the previous run's tables there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlglot import exp

from audience_pipeline.ir import nodes as ir
from audience_pipeline.segment_tables import slug
from audience_pipeline.sql.compiler import build_space_sql
from audience_pipeline.sql.dialects import SqlDialect
from audience_pipeline.sql.level import audience_column, computed_column
from audience_pipeline.sql.relations import ENTITY, bind_as_of
from audience_pipeline.sql.script.astutil import concat, lit, qcol, select
from audience_pipeline.sql.script.program import Statement, Step, Table
from audience_pipeline.sql.script.staging import PAGE_EVENTS, Staging, flat_column, flat_name

AS_OF = "(SELECT as_of FROM ap_params)"
KNOWN_TYPES = ("user_id", "email")


class _Everything(set[str]):
    """Every path is a stored flat column of the events relation."""

    def __contains__(self, item: object) -> bool:
        return True

    def __bool__(self) -> bool:
        return True


def params_step(dialect: SqlDialect, as_of: datetime) -> Table:
    stamp = dialect.timestamp(as_of.isoformat(sep=" "))
    return Table("ap_params", exp.select(exp.alias_(stamp, "as_of")))


def input_steps(staging: Staging) -> list[Step]:
    flats = [exp.column(flat_column(i), "m") for i in range(len(staging.flat_paths))]
    events = select(
        "SELECT p.profile_id, m.timestamp, m.message_id, m.seq, m.event FROM ap_msgs m "
        "JOIN ap_msg_profiles p ON p.seq = m.seq WHERE m.type IN ('track', 'page', 'screen')"
    ).select(*flats)
    known = ", ".join(f"'{t}'" for t in KNOWN_TYPES)
    latest = (
        "SELECT kind, owner, key, tagged, raw FROM (SELECT u.kind, o.owner, u.key, u.tagged, "
        "u.raw, ROW_NUMBER() OVER (PARTITION BY u.kind, o.owner, u.key ORDER BY o.timestamp "
        "DESC, o.message_id IS NULL DESC, o.message_id DESC, o.seq DESC) AS rn "
        "FROM ap_trait_updates u JOIN (SELECT m.seq, m.timestamp, m.message_id, CASE WHEN "
        "m.type = 'group' THEN m.group_id ELSE p.profile_id END AS owner FROM ap_msgs m "
        "JOIN ap_msg_profiles p ON p.seq = m.seq) o ON o.seq = u.seq) r WHERE rn = 1"
    )
    steps: list[Step] = [
        Table("ap_events", events),
        Table("ap_profiles", select(
            "SELECT o.profile_id, COALESCE(k.known, FALSE) AS known FROM (SELECT DISTINCT "
            "profile_id FROM ap_msg_profiles) o LEFT JOIN (SELECT profile_id, "
            f"MAX(CASE WHEN id_type IN ({known}) THEN 1 ELSE 0 END) = 1 AS known "
            "FROM ap_identities GROUP BY profile_id) k ON k.profile_id = o.profile_id")),
        Table("ap_groups", select(
            "SELECT m.group_id AS account_id, p.profile_id FROM ap_msgs m JOIN ap_msg_profiles p "
            "ON p.seq = m.seq WHERE m.type = 'group' AND m.group_id IS NOT NULL")),
        Table("ap_accounts", select("SELECT DISTINCT account_id FROM ap_groups")),
        Table("ap_account_members", select(
            "SELECT DISTINCT account_id, profile_id FROM ap_groups")),
    ]  # fmt: skip
    if staging.trait_updates() is not None:
        steps.append(Table("ap_latest", select(latest)))
    else:
        steps.append(
            Table(
                "ap_latest",
                select(
                    "SELECT CAST(NULL AS TEXT) AS kind, CAST(NULL AS TEXT) AS owner, CAST(NULL AS TEXT) "
                    "AS key, CAST(NULL AS TEXT) AS tagged, CAST(NULL AS TEXT) AS raw WHERE 1 = 0"
                ),
            )
        )
    steps += [
        Table("ap_user_traits", select(
            "SELECT owner AS profile_id, key, tagged FROM ap_latest WHERE kind = 'user'")),
        Table("ap_account_traits", select(
            "SELECT owner AS account_id, key, tagged FROM ap_latest WHERE kind = 'account'")),
    ]  # fmt: skip
    return steps


def _renamed_paths(tree: exp.Expr, staging: Staging) -> exp.Expr:
    """The compiler's stored path columns (``p.price``) under the staged names (``_fp0``)."""
    names = {flat_name(s, p): flat_column(i) for i, (s, p) in enumerate(staging.flat_paths)}

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and node.name in names:
            return exp.column(names[node.name], node.table or None)
        return node

    return tree.transform(swap)


def frame_steps(space: ir.Space, staging: Staging) -> tuple[list[Step], dict[str, str]]:
    """The level frames (the account level reads the user frame by name)."""
    dialect = staging.dialect
    compiled = build_space_sql(space, dialect, flat_columns=_Everything())
    as_of = select(f"SELECT {AS_OF}").selects[0]
    steps: list[Step] = []
    frames: dict[str, str] = {}
    for level, frame in (("user", compiled.user_frame), ("account", compiled.account_frame)):
        if frame is None:
            continue
        query = bind_as_of(compiled.level_query(level), as_of)  # type: ignore[arg-type]
        steps.append(Table(frame, _renamed_paths(query, staging)))
        frames[level] = frame
    return steps, frames


# --- output tables ------------------------------------------------------------------------------


def _native(dialect: SqlDialect, tagged: exp.Expr, kinds: set[str]) -> exp.Expr:
    """Tagged text -> the column's native value when it has one JSON kind, else JSON text."""
    body = exp.Substring(this=tagged.copy(), start=lit(2))
    if kinds <= {"s"}:
        return body
    if kinds == {"n"}:
        return dialect.to_double(body)
    if kinds == {"b"}:
        return exp.EQ(this=body, expression=lit("true"))
    escaped = exp.func("REPLACE", exp.func("REPLACE", body.copy(), lit("\\"), lit("\\\\")),
                       lit('"'), lit('\\"'))  # fmt: skip
    kind = exp.Substring(this=tagged.copy(), start=lit(1), length=lit(1))
    return exp.Case().when(exp.EQ(this=kind, expression=lit("s")),
                           concat(lit('"'), escaped, lit('"'))).else_(body.copy())  # fmt: skip


def property_kinds(staging: Staging, trait: ir.Trait) -> set[str]:
    """JSON kinds a first/last trait's property can hold, from the columns it is read from."""
    assert trait.property is not None
    dotted = trait.property.dotted
    kinds: set[str] = set()
    for name in trait.events:
        if trait.property.scope in ("context", "parent_context"):
            tables = [PAGE_EVENTS_TABLE.get(name, "tracks")]
            column = staging.context_column(dotted)
        else:
            tables = (
                [PAGE_EVENTS_TABLE[name]] if name in PAGE_EVENTS_TABLE else [slug(name), "tracks"]
            )
            column = dotted
        for table in tables:
            kind = staging.catalog.columns(table).get(column)
            if kind is not None:
                kinds.add("s" if kind in ("t", "d") else kind)
    return kinds or {"s"}


PAGE_EVENTS_TABLE = {event: table for table, event in PAGE_EVENTS.items()}


def _traits_table(staging: Staging, space: ir.Space, level: str, frame: str | None,
                  audiences: list[ir.Audience]) -> exp.Select:  # fmt: skip
    d = staging.dialect
    owner = "profile_id" if level == "user" else "account_id"
    base = frame or ("ap_profiles" if level == "user" else "ap_accounts")
    entity = qcol(ENTITY if frame else owner, "f")
    traits = [t for t in space.traits if t.level == level]
    computed_keys = {t.key for t in traits}
    kinds = staging.trait_kinds("identifies" if level == "user" else "groups")
    custom = sorted(set(kinds) - computed_keys)
    columns: list[exp.Expr] = [exp.alias_(entity, owner)]
    pivots: list[exp.Expr] = []
    for index, key in enumerate(custom):
        source = "raw" if len(kinds[key]) > 1 else "tagged"
        picked = exp.Max(this=exp.Case().when(
            exp.EQ(this=exp.column("key"), expression=lit(key)), exp.column(source)))  # fmt: skip
        pivots.append(exp.alias_(picked, f"_c{index}"))
        value: exp.Expr = exp.column(f"_c{index}", "c")
        if source == "tagged":
            value = _native(d, value, kinds[key])
        columns.append(exp.alias_(value, key, quoted=True))
    for trait in traits:
        value = qcol(computed_column(trait.key), "f")
        if trait.kind in ("first", "last"):
            value = _native(d, value, property_kinds(staging, trait))
        columns.append(exp.alias_(value, trait.key, quoted=True))
    taken = computed_keys | set(custom) | {ENTITY}
    for audience in audiences:
        if audience.key not in taken:
            columns.append(exp.alias_(qcol(audience_column(audience.key), "f"), audience.key,
                                      quoted=True))  # fmt: skip
    query = exp.select(*columns).from_(exp.table_(base, alias="f"))
    if pivots:
        # One pivot of the latest custom traits (one row per entity), joined once.
        latest = (
            exp.select(exp.column("owner"), *pivots)
            .from_("ap_latest")
            .where(exp.EQ(this=exp.column("kind"), expression=lit(level)))
            .group_by(exp.column("owner"))
        )
        query = query.join(latest.subquery("c"), join_type="left",
                           on=exp.EQ(this=exp.column("owner", "c"), expression=entity.copy()))  # fmt: skip
    return query


def _memberships(space: ir.Space, frames: dict[str, str]) -> exp.Query:
    parts: list[exp.Expr] = []
    for audience in space.audiences:
        frame = frames.get(audience.level)
        if frame is None:
            continue
        parts.append(
            exp.select(
                exp.alias_(lit(audience.key), "audience_key"),
                exp.alias_(lit(audience.level), "level"),
                exp.alias_(qcol(ENTITY, "f"), "entity_id"),
                exp.alias_(select(f"SELECT {AS_OF}").selects[0], "as_of"),
            )
            .from_(exp.table_(frame, alias="f"))
            .where(qcol(audience_column(audience.key), "f"))
        )
    if not parts:
        return select(
            f"SELECT CAST(NULL AS TEXT) AS audience_key, CAST(NULL AS TEXT) AS level, "
            f"CAST(NULL AS TEXT) AS entity_id, {AS_OF} AS as_of WHERE 1 = 0"
        )
    union: exp.Query = parts[0]  # type: ignore[assignment]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    return union


def output_steps(staging: Staging, space: ir.Space, frames: dict[str, str],
                 out_schema: str) -> list[Step]:  # fmt: skip
    """The output schema's tables from the staged level frames: memberships against the
    previous run's (changes, history), traits, identities; memberships written last."""

    def out(name: str) -> str:
        return f"{out_schema}.{name}"

    return [
        *_schema_steps(staging.dialect, out_schema, out),
        *_change_steps(staging.dialect, space, frames, out),
        *_table_steps(staging, space, frames, out),
    ]


def _schema_steps(d: SqlDialect, out_schema: str, out: Callable[[str], str]) -> list[Step]:
    """The output schema, and the two tables a run reads back (created empty the first time)."""
    ts = d.timestamp_type
    create_schema = exp.Create(this=exp.to_table(out_schema), kind="SCHEMA", exists=True)
    keep: list[Step] = [Statement(create_schema)]
    for name, columns in (
        ("memberships", f"audience_key TEXT, level TEXT, entity_id TEXT, as_of {ts}"),
        ("membership_history",
         f"audience_key TEXT, level TEXT, entity_id TEXT, valid_from {ts}, valid_to {ts}"),
    ):  # fmt: skip
        schema = exp.Schema(this=exp.to_table(out(name)), expressions=[
            exp.ColumnDef(this=exp.to_identifier(n), kind=exp.DataType.build(t, dialect=d.sqlglot_dialect))
            for n, t in (part.split(" ", 1) for part in columns.split(", "))])  # fmt: skip
        keep.append(Statement(exp.Create(this=schema, kind="TABLE", exists=True)))
    return keep


def _change_steps(d: SqlDialect, space: ir.Space, frames: dict[str, str],
                  out: Callable[[str], str]) -> list[Step]:  # fmt: skip
    """This run's memberships (``ap_members``), its changes and the history they extend."""
    ts = d.timestamp_type
    return [
        Table("ap_prev_members", exp.select("audience_key", "level", "entity_id")
              .from_(exp.to_table(out("memberships")))),
        Table("ap_prev_history", exp.select("audience_key", "level", "entity_id", "valid_from",
                                            "valid_to").from_(exp.to_table(out("membership_history")))),
        Table("ap_members", exp.select(exp.Star()).from_(_memberships(space, frames).subquery("u"))),
        Table("ap_changes", select(
            f"SELECT n.audience_key, n.level, n.entity_id, 'entered' AS change, {AS_OF} AS as_of "
            "FROM ap_members n LEFT JOIN ap_prev_members p ON p.audience_key = n.audience_key "
            "AND p.level = n.level AND p.entity_id = n.entity_id WHERE p.entity_id IS NULL "
            f"UNION ALL SELECT p.audience_key, p.level, p.entity_id, 'exited' AS change, {AS_OF} "
            "AS as_of FROM ap_prev_members p LEFT JOIN ap_members n ON p.audience_key = "
            "n.audience_key AND p.level = n.level AND p.entity_id = n.entity_id "
            "WHERE n.entity_id IS NULL")),
        Table("ap_history", select(
            "SELECT h.audience_key, h.level, h.entity_id, h.valid_from, CASE WHEN x.entity_id "
            f"IS NOT NULL AND h.valid_to IS NULL THEN {AS_OF} ELSE h.valid_to END AS valid_to "
            "FROM ap_prev_history h LEFT JOIN (SELECT * FROM ap_changes WHERE change = 'exited') "
            "x ON x.audience_key = h.audience_key AND x.level = h.level AND x.entity_id = "
            f"h.entity_id UNION ALL SELECT audience_key, level, entity_id, {AS_OF} AS valid_from, "
            f"CAST(NULL AS {ts}) AS valid_to FROM ap_changes WHERE change = 'entered'",
        )),
    ]  # fmt: skip


def _table_steps(staging: Staging, space: ir.Space, frames: dict[str, str],
                 out: Callable[[str], str]) -> list[Step]:  # fmt: skip
    """The output tables, each written whole."""
    user_audiences = [a for a in space.audiences if a.level == "user"]
    account_audiences = [a for a in space.audiences if a.level == "account"]
    return [
        Table(out("identities"), select("SELECT profile_id, id_type, id_value FROM ap_identities"),
              temporary=False),
        Table(out("user_traits"), _traits_table(staging, space, "user", frames.get("user"),
                                                user_audiences), temporary=False),
        Table(out("account_traits"), _traits_table(staging, space, "account",
                                                   frames.get("account"), account_audiences),
              temporary=False),
        Table(out("account_user_memberships"), select(
            "SELECT m.audience_key, m.entity_id AS account_id, a.profile_id FROM ap_members m "
            "JOIN ap_account_members a ON a.account_id = m.entity_id WHERE m.level = 'account'"),
            temporary=False),
        Table(out("quarantine"), select("SELECT raw, source, line, reason FROM ap_quarantine"),
              temporary=False),
        Table(out("membership_changes"), select("SELECT * FROM ap_changes"), temporary=False),
        Table(out("membership_history"), select("SELECT * FROM ap_history"), temporary=False),
        # Memberships last: a reader that sees this run's memberships sees its other tables.
        Table(out("memberships"), select("SELECT * FROM ap_members"), temporary=False),
    ]  # fmt: skip
