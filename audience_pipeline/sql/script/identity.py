"""Identity as script steps: SPEC section 2 in SQL alone, for warehouses that run no Python.

As in `sql.identity`: messages in processing order (timestamp, messageId with a missing one last,
read order), identifiers numbered by (type priority, value), an alias's previousId typed by its
earliest holder; components by min-label propagation with pointer jumping (a loop until no edge
joins two labels); a component that respects every limit is one profile. Components where a limit
bites take SPEC's rule message by message: a second loop whose every round links the next
message of every such component at once (set-based across components), one identifier position
after the other, merging profiles only when the merged counts fit the limits.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from audience_pipeline.identity.result import alias_fallback_type, type_limits, type_ranks
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sql.dialects import SqlDialect
from audience_pipeline.sql.script.astutil import case_of, concat, fill, lit, select
from audience_pipeline.sql.script.program import Loop, Statement, Step, Table
from audience_pipeline.sql.script.staging import IdPath

SEQUENTIAL_LOOP = "identity where a limit bites"

# sha256 as lower-case hex, per dialect (`_1` is the text).
_SHA256_HEX = {
    "duckdb": "SHA256(_1)",
    "snowflake": "SHA2(_1, 256)",
    "bigquery": "TO_HEX(SHA256(_1))",
    "postgres": "ENCODE(SHA256(CONVERT_TO(_1, 'UTF8')), 'hex')",
    "spark": "SHA2(_1, 256)",
}


def profile_id(dialect: SqlDialect, id_type: exp.Expr, id_value: exp.Expr) -> exp.Expr:
    """'p_' + the first 20 hex digits of sha256('<type>:<value>') (`identity.result`)."""
    key = concat(id_type, lit(":"), id_value)
    digest = dialect.template(_SHA256_HEX[dialect.name], key)
    return concat(lit("p_"), exp.Substring(this=digest, start=lit(1), length=lit(20)))


def _count_is_zero(query: str) -> exp.Expr:
    """(SELECT COUNT(*) ...) = 0: a loop's end, as every engine's procedural IF accepts it."""
    return exp.EQ(this=exp.Subquery(this=select(query)), expression=lit(0))


def identity_steps(space: SpaceConfig, dialect: SqlDialect, id_paths: list[IdPath]) -> list[Step]:
    """From ``ap_msgs`` to ``ap_msg_profiles`` (seq, profile_id) and ``ap_identities``."""
    ranks = type_ranks(space)
    limits = type_limits(space)
    types = {rank: lit(t) for t, rank in ranks.items()}
    limit_of = {rank: lit(limits[t]) for t, rank in ranks.items()}
    fallback = lit(ranks[alias_fallback_type(space)])
    return [
        *_link_steps(id_paths, fallback),
        *_node_steps(types),
        *_component_steps(),
        *_whole_steps(dialect, limit_of),
        *_sequential_steps(dialect, limit_of, len(id_paths) + 1),
        *_profile_steps(),
    ]


def _link_steps(id_paths: list[IdPath], fallback: exp.Expr) -> list[Step]:
    """Each message's identifiers (``ap_id_occ``) and aliases' previousIds as typed links
    (``ap_id_links``: rank of the message, type rank, value)."""
    occurrences = [
        select(
            "SELECT seq, __t AS trank, __v AS value FROM ap_msgs WHERE __v IS NOT NULL",
            __t=lit(p.trank),
            __v=exp.column(p.column),
        )  # fmt: skip
        for p in id_paths
    ]
    union: exp.Query = occurrences[0]
    for part in occurrences[1:]:
        union = exp.union(union, part, distinct=True)
    return [
        Table("ap_id_rank", select(
            "SELECT seq, type, previous_id, ROW_NUMBER() OVER (ORDER BY timestamp, "
            "message_id IS NULL, message_id, seq) - 1 AS rank FROM ap_msgs")),
        Table("ap_id_occ", select(
            "SELECT r.rank, o.trank, o.value FROM (SELECT DISTINCT * FROM __u) o "
            "JOIN ap_id_rank r ON r.seq = o.seq", __u=union.subquery("u"))),
        # An alias's previousId: the type of its earliest holder before the alias, else the
        # fallback type (an alias holding it first counts as a holder of the fallback type).
        Table("ap_id_alias", select(
            "SELECT rank, __f AS trank, previous_id AS value FROM ap_id_rank "
            "WHERE type = 'alias' AND previous_id IS NOT NULL", __f=fallback)),
        Table("ap_id_links", select(
            "WITH held AS (SELECT o.rank, o.trank, o.value FROM ap_id_occ o WHERE o.value IN "
            "(SELECT value FROM ap_id_alias) UNION ALL SELECT rank, trank, value FROM ap_id_alias),"
            " first AS (SELECT value, MIN(rank) AS rank FROM held GROUP BY value),"
            " typed AS (SELECT h.value, MIN(h.trank) AS trank, MIN(h.rank) AS rank FROM held h "
            "JOIN first f ON f.value = h.value AND f.rank = h.rank GROUP BY h.value) "
            "SELECT rank, trank, value FROM ap_id_occ UNION ALL "
            "SELECT a.rank, CASE WHEN t.rank < a.rank THEN t.trank ELSE a.trank END AS trank, "
            "a.value FROM ap_id_alias a JOIN typed t ON t.value = a.value")),
    ]  # fmt: skip


def _node_steps(types: Mapping[int, exp.Expr]) -> list[Step]:
    """One node per distinct identifier, and the edges between the nodes of one message."""
    return [
        Table("ap_id_nodes", select(
            "SELECT DENSE_RANK() OVER (ORDER BY trank, value) AS node, trank, __types AS id_type, "
            "value AS id_value FROM (SELECT DISTINCT trank, value FROM ap_id_links) d",
            __types=case_of(exp.column("trank"), types))),
        Table("ap_id_link_nodes", select(
            "SELECT DISTINCT l.rank, n.node, n.trank FROM ap_id_links l JOIN ap_id_nodes n "
            "ON n.trank = l.trank AND n.id_value = l.value")),
        Table("ap_id_messages", select(
            "SELECT r.rank, r.seq, MIN(l.node) AS first FROM ap_id_rank r "
            "JOIN ap_id_link_nodes l ON l.rank = r.rank GROUP BY r.rank, r.seq")),
        Table("ap_id_edges", select(
            "SELECT DISTINCT a, b FROM (SELECT m.first AS a, l.node AS b FROM ap_id_link_nodes l "
            "JOIN ap_id_messages m ON m.rank = l.rank UNION ALL SELECT l.node AS a, m.first AS b "
            "FROM ap_id_link_nodes l JOIN ap_id_messages m ON m.rank = l.rank) e WHERE a <> b")),
    ]  # fmt: skip


def _component_steps() -> list[Step]:
    """Connected components of the identifier graph (``ap_id_label``: node, label)."""
    return [
        Table("ap_id_label", select("SELECT node, node AS label FROM ap_id_nodes")),
        Loop(
            body=(
                Table("ap_id_next", select(
                    "WITH hooked AS (SELECT l.node, LEAST(l.label, COALESCE(MIN(n.label), "
                    "l.label)) AS label FROM ap_id_label l LEFT JOIN ap_id_edges e ON e.a = l.node "
                    "LEFT JOIN ap_id_label n ON n.node = e.b GROUP BY l.node, l.label) "
                    "SELECT h.node, j.label FROM hooked h JOIN hooked j ON j.node = h.label")),
                Table("ap_id_label", select("SELECT node, label FROM ap_id_next")),
            ),
            done=_count_is_zero(
                "SELECT COUNT(*) FROM ap_id_edges e JOIN ap_id_label x ON x.node = e.a "
                "JOIN ap_id_label y ON y.node = e.b WHERE x.label <> y.label"),
            name="identity components",
            rounds=16,  # min-label with pointer jumping: a handful of rounds on real data
        ),
    ]  # fmt: skip


def _whole_steps(dialect: SqlDialect, limit_of: Mapping[int, exp.Expr]) -> list[Step]:
    """The components no limit bites (``ap_id_bitten``) get one profile each (``ap_id_whole``)."""
    return [
        Table("ap_id_bitten", select(
            "SELECT DISTINCT comp FROM (SELECT l.label AS comp, n.trank, COUNT(*) AS n "
            "FROM ap_id_nodes n JOIN ap_id_label l ON l.node = n.node GROUP BY l.label, n.trank) c "
            "WHERE n > __limit", __limit=case_of(exp.column("trank"), limit_of))),
        Table("ap_id_whole", select(
            "WITH msgs AS (SELECT m.rank, m.first, l.label AS comp FROM ap_id_messages m "
            "JOIN ap_id_label l ON l.node = m.first WHERE l.label NOT IN "
            "(SELECT comp FROM ap_id_bitten)), firsts AS (SELECT comp, first, ROW_NUMBER() OVER "
            "(PARTITION BY comp ORDER BY rank) AS k FROM msgs) "
            "SELECT f.comp, __pid AS profile_id FROM firsts f JOIN ap_id_nodes n "
            "ON n.node = f.first WHERE f.k = 1",
            __pid=profile_id(dialect, exp.column("id_type", "n"), exp.column("id_value", "n")))),
    ]  # fmt: skip


def _profile_steps() -> list[Step]:
    """Every message's profile and every profile's identifiers, from whole and bitten
    components alike."""
    return [
        Table("ap_msg_profiles", select(
            "SELECT m.seq, w.profile_id FROM ap_id_messages m JOIN ap_id_label l "
            "ON l.node = m.first JOIN ap_id_whole w ON w.comp = l.label "
            "UNION ALL SELECT m.seq, p.profile_id FROM ap_id_messages m "
            "JOIN ap_sq_owner o ON o.node = m.first JOIN ap_sq_pids p ON p.comp = o.comp "
            "AND p.prof = o.prof")),
        Table("ap_identities", select(
            "SELECT w.profile_id, n.id_type, n.id_value FROM ap_id_nodes n JOIN ap_id_label l "
            "ON l.node = n.node JOIN ap_id_whole w ON w.comp = l.label "
            "UNION ALL SELECT p.profile_id, n.id_type, n.id_value FROM ap_sq_owner o "
            "JOIN ap_id_nodes n ON n.node = o.node JOIN ap_sq_pids p ON p.comp = o.comp "
            "AND p.prof = o.prof")),
    ]  # fmt: skip


def _sequential_steps(dialect: SqlDialect, limit_of: Mapping[int, exp.Expr],
                      positions: int) -> list[Step]:  # fmt: skip
    """SPEC's rule over the components where a limit bites (see the module's docstring)."""
    steps: list[Step] = [
        # One step per message of a bitten component, its identifiers in (priority, value)
        # order; a profile is known by the step that created it (creation order).
        # A message whose identifiers equal an earlier one's changes nothing (counts only grow,
        # so what failed then fails again): only the first of each list takes a step.
        Table("ap_sq_steps", select(
            "WITH all_msgs AS (SELECT m.rank, l.label AS comp FROM ap_id_messages m "
            "JOIN ap_id_label l ON l.node = m.first JOIN ap_id_bitten b ON b.comp = l.label), "
            "lists AS (SELECT a.rank, a.comp, STRING_AGG(CAST(k.node AS TEXT), ',' ORDER BY "
            "k.node NULLS FIRST) AS ids FROM all_msgs a JOIN (SELECT DISTINCT rank, node FROM "
            "ap_id_link_nodes) k ON k.rank = a.rank GROUP BY a.rank, a.comp), "
            "msgs AS (SELECT comp, MIN(rank) AS rank FROM lists GROUP BY comp, ids) "
            "SELECT m.comp, DENSE_RANK() OVER (PARTITION BY m.comp ORDER BY m.rank) AS step, "
            "ROW_NUMBER() OVER (PARTITION BY m.rank ORDER BY k.node) AS pos, k.node, k.trank "
            "FROM msgs m JOIN ap_id_link_nodes k ON k.rank = m.rank")),
        Table("ap_sq_owner", select(
            "SELECT comp, node, trank, step AS prof FROM ap_sq_steps WHERE 1 = 0")),
        Table("ap_sq_k", select("SELECT 0 AS k")),
        Loop(
            body=(
                Table("ap_sq_k", select("SELECT k + 1 AS k FROM ap_sq_k")),
                *_round_steps(limit_of, positions, dialect.name == "spark"),
                Table("ap_sq_owner", select("SELECT comp, node, trank, prof FROM ap_sq_next")),
            ),
            done=_count_is_zero(
                "SELECT COUNT(*) FROM ap_sq_steps s JOIN ap_sq_k k ON s.step > k.k"),
            name=SEQUENTIAL_LOOP,
        ),
        Table("ap_sq_pids", select(
            "SELECT s.comp, s.step AS prof, __pid AS profile_id FROM ap_sq_steps s "
            "JOIN ap_id_nodes n ON n.node = s.node WHERE s.pos = 1",
            __pid=profile_id(dialect, exp.column("id_type", "n"), exp.column("id_value", "n")))),
    ]  # fmt: skip
    return steps


def _link_round(limit_of: Mapping[int, exp.Expr],
                positions: int) -> list[tuple[str, exp.Expr]]:  # fmt: skip
    """One message of every bitten component: its first identifier picks (or creates) the
    profile, each next one joins it unless a limit would break (`identity.sequential`)."""
    ctes: list[tuple[str, exp.Expr]] = [
        ("cur", select("SELECT s.comp, s.pos, s.node, s.trank FROM ap_sq_steps s "
                       "JOIN ap_sq_k k ON s.step = k.k")),
        ("o0", select("SELECT comp, node, trank, prof FROM ap_sq_owner")),
        ("o1", select(
            "SELECT comp, node, trank, prof FROM o0 UNION ALL SELECT c.comp, c.node, c.trank, "
            "k.k AS prof FROM cur c CROSS JOIN ap_sq_k k LEFT JOIN o0 o ON o.comp = c.comp "
            "AND o.node = c.node WHERE c.pos = 1 AND o.node IS NULL")),
        ("p1", select("SELECT c.comp, o.prof AS p FROM cur c JOIN o1 o ON o.comp = c.comp "
                      "AND o.node = c.node WHERE c.pos = 1")),
    ]  # fmt: skip
    for j in range(2, positions + 1):
        prev_o, prev_p = f"o{j - 1}", f"p{j - 1}"
        limit = case_of(exp.column("trank", "x"), limit_of)
        ctes += [
            (f"x{j}", _named(
                "SELECT c.comp, c.node, c.trank, p.p, o.prof AS q FROM cur c JOIN PREV_P p "
                "ON p.comp = c.comp LEFT JOIN PREV_O o ON o.comp = c.comp AND o.node = c.node "
                "WHERE c.pos = __j", prev_o, prev_p, j)),
            (f"n{j}", _named(
                "SELECT x.comp, o.trank, SUM(CASE WHEN o.prof = x.p THEN 1 ELSE 0 END) AS np, "
                "SUM(CASE WHEN o.prof = x.q THEN 1 ELSE 0 END) AS nq FROM X x JOIN PREV_O o "
                "ON o.comp = x.comp GROUP BY x.comp, o.trank", prev_o, prev_p, j)),
            # An unseen identifier joins unless its type is full.
            (f"add{j}", _named(
                "SELECT x.comp, x.node, x.trank, x.p AS prof FROM X x LEFT JOIN N n "
                "ON n.comp = x.comp AND n.trank = x.trank "
                "WHERE x.q IS NULL AND COALESCE(n.np, 0) + 1 <= __limit",
                prev_o, prev_p, j, __limit=limit)),
            # Another profile's identifier merges the two unless the merged counts break a limit.
            (f"bad{j}", _named(
                "SELECT DISTINCT x.comp FROM N x WHERE x.np + x.nq > __limit",
                prev_o, prev_p, j, __limit=limit)),
            (f"m{j}", _named(
                "SELECT x.comp, LEAST(x.p, x.q) AS keep, GREATEST(x.p, x.q) AS gone FROM X x "
                "LEFT JOIN BAD b ON b.comp = x.comp WHERE x.q IS NOT NULL AND x.q <> x.p "
                "AND b.comp IS NULL", prev_o, prev_p, j)),
            (f"o{j}", _named(
                "SELECT o.comp, o.node, o.trank, CASE WHEN o.prof = m.gone THEN m.keep "
                "ELSE o.prof END AS prof FROM PREV_O o LEFT JOIN M m ON m.comp = o.comp "
                "UNION ALL SELECT comp, node, trank, prof FROM ADD", prev_o, prev_p, j)),
            (f"p{j}", _named(
                "SELECT p.comp, COALESCE(m.keep, p.p) AS p FROM PREV_P p "
                "LEFT JOIN M m ON m.comp = p.comp", prev_o, prev_p, j)),
        ]  # fmt: skip
    return ctes


def _round_steps(limit_of: Mapping[int, exp.Expr], positions: int,
                 as_tables: bool) -> list[Table]:  # fmt: skip
    """The round as one query of CTEs, or (Spark, which inlines every CTE where it is read, so
    that a chain read three times per position grows exponentially) one table per CTE."""
    ctes = _link_round(limit_of, positions)
    final = exp.select("comp", "node", "trank", "prof").from_(f"o{positions}")
    if not as_tables:
        for name, query in ctes:
            final = final.with_(name, as_=query, copy=False)
        return [Table("ap_sq_next", final)]
    names = {name for name, _ in ctes}

    def prefixed(tree: exp.Expr) -> exp.Expr:
        def swap(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Table) and not node.db and node.name in names:
                return exp.table_(f"ap_sq_{node.name}", alias=node.alias or None)
            return node

        return tree.transform(swap)

    steps = [Table(f"ap_sq_{name}", prefixed(query)) for name, query in ctes]
    return [*steps, Table("ap_sq_next", prefixed(final))]


def _named(text: str, prev_o: str, prev_p: str, j: int, **nodes: exp.Expr) -> exp.Expr:
    """A round's query with this position's relation names (ours) and literals put in."""
    names = {"PREV_O": prev_o, "PREV_P": prev_p, "X": f"x{j}", "N": f"n{j}", "BAD": f"bad{j}",
             "M": f"m{j}", "ADD": f"add{j}"}  # fmt: skip
    tree = fill(text, __j=lit(j), **nodes)

    def rename(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and node.name in names:
            return exp.table_(names[node.name], alias=node.alias or None)
        return node

    return tree.transform(rename)


__all__ = ["Statement", "identity_steps", "profile_id"]
