"""A whole-space SQL script as steps, rendered per dialect, and read back.

A script is a list of steps: plain statements, "replace this table with this query", loops that
run their body until a condition holds (identity needs two: label propagation and SPEC's
sequential rule where a limit bites), and checks that fail the run when a condition does not
hold. Loops are each dialect's own procedural block (Snowflake Scripting, BigQuery scripting,
PL/pgSQL, Spark SQL scripting); DuckDB has none, so its loops are unrolled a fixed number of
times and followed by a check that they finished (a round past the end changes nothing).

`read_script` splits a rendered script back into statements (each parsed by sqlglot in its
dialect) and loops; `run_on_duckdb` runs what it read, transpiled to DuckDB.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

LOOP_DUCKDB_ROUNDS = 24


@dataclass(frozen=True)
class Statement:
    tree: exp.Expr


@dataclass(frozen=True)
class Table:
    """Replace table `name` (``schema.name`` allowed) with the rows of `query`."""

    name: str
    query: exp.Expr
    temporary: bool = True


@dataclass(frozen=True)
class Check:
    """Fails the script with `message` when `failing` (a query) returns a row."""

    failing: exp.Select
    message: str


@dataclass(frozen=True)
class Loop:
    """Run `body` until `done` (a boolean expression, usually EXISTS/NOT EXISTS) holds."""

    body: tuple[Statement | Table, ...]
    done: exp.Expr
    name: str
    rounds: int = LOOP_DUCKDB_ROUNDS  # DuckDB: unrolled this many times, then checked


Step = Statement | Table | Check | Loop


@dataclass
class Script:
    dialect: str
    header: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def add(self, *steps: Step) -> None:
        self.steps.extend(steps)

    def render(self) -> str:
        lines = [f"-- {line}" if line else "--" for line in self.header]
        for step in self.steps:
            lines += render_step(step, self.dialect)
        return "\n".join(lines) + "\n"


def _sql(tree: exp.Expr, dialect: str) -> str:
    return tree.sql(dialect=dialect)


def _table_id(name: str) -> exp.Table:
    return exp.to_table(name)


def _replace(step: Table, dialect: str) -> list[str]:
    target = _table_id(step.name)
    if dialect in ("postgres", "spark"):
        # No CREATE OR REPLACE TABLE: drop, then create; a query that reads its own target
        # (a counter) is built under a new name first and renamed.
        temporary = step.temporary and dialect == "postgres"
        reads_itself = any(t.name == target.name and t.db == target.db
                           for t in step.query.find_all(exp.Table))  # fmt: skip
        built = _table_id(step.name + "__new") if reads_itself else target
        lines = [_sql(exp.Drop(tables=[built.copy()], kind="TABLE", exists=True), dialect) + ";"]
        create = exp.Create(this=built.copy(), kind="TABLE", expression=step.query,
                            properties=_properties(temporary, dialect))  # fmt: skip
        lines.append(_sql(create, dialect) + ";")
        if reads_itself:
            rename = exp.Alter(this=built.copy(), kind="TABLE", actions=[
                exp.AlterRename(this=exp.to_table(target.name))])  # fmt: skip
            lines += [_sql(exp.Drop(tables=[target.copy()], kind="TABLE", exists=True), dialect)
                      + ";", _sql(rename, dialect) + ";"]  # fmt: skip
        return lines
    create = exp.Create(this=target, kind="TABLE", replace=True, expression=step.query,
                        properties=_properties(step.temporary, dialect))  # fmt: skip
    return [_sql(create, dialect) + ";"]


def _properties(temporary: bool, dialect: str) -> exp.Properties | None:
    found: list[exp.Expr] = []
    if temporary:
        found.append(exp.TemporaryProperty())
    if dialect == "spark":
        found.append(exp.FileFormatProperty(this=exp.Var(this="PARQUET")))
    return exp.Properties(expressions=found) if found else None


def _check(step: Check, dialect: str) -> str:
    # A cast of text that is not a number fails every engine; it is only evaluated when the
    # failing query has a row (its text depends on the row, so no planner folds it early).
    count = exp.Count(this=exp.Star())
    message = exp.DPipe(
        this=exp.Literal.string(f"{step.message}: "),
        expression=exp.Cast(this=count.copy(), to=exp.DataType.build("TEXT")),
    )
    query = (
        exp.select(exp.Cast(this=message, to=exp.DataType.build("INT")))
        .from_(step.failing.subquery("failing"))
        .having(exp.GT(this=count, expression=exp.Literal.number(0)))
    )
    return _sql(query, dialect) + ";"


def render_step(step: Step, dialect: str) -> list[str]:
    if isinstance(step, Statement):
        return [_sql(step.tree, dialect) + ";"]
    if isinstance(step, Table):
        return _replace(step, dialect)
    if isinstance(step, Check):
        return [_check(step, dialect)]
    return _render_loop(step, dialect)


def _body(step: Loop, dialect: str) -> list[str]:
    return [line for inner in step.body for line in render_step(inner, dialect)]


def _render_loop(step: Loop, dialect: str) -> list[str]:
    done = _sql(step.done, dialect)
    body = ["  " + line for line in _body(step, dialect)]
    if dialect == "duckdb":
        lines = []
        for index in range(step.rounds):
            lines.append(f"-- {step.name}: round {index + 1}")
            lines += _body(step, dialect)
        failing = exp.select(exp.Literal.number(1)).where(exp.not_(step.done.copy()))
        lines.append(_check(Check(failing, f"{step.name} did not finish in {step.rounds} rounds"),
                            dialect))  # fmt: skip
        return lines
    if dialect == "bigquery":
        return [f"-- loop: {step.name}", "LOOP", f"  IF {done} THEN LEAVE; END IF;", *body,
                "END LOOP;"]  # fmt: skip
    if dialect == "snowflake":
        return [f"-- loop: {step.name}", "EXECUTE IMMEDIATE $$", "DECLARE ap_done BOOLEAN;",
                "BEGIN", "  LOOP", f"  SELECT {done} INTO :ap_done;",
                "  IF (ap_done) THEN BREAK; END IF;", *body, "  END LOOP;", "END;", "$$;"]  # fmt: skip
    if dialect == "postgres":
        return [f"-- loop: {step.name}", "DO $$", "BEGIN", "  LOOP", f"  EXIT WHEN {done};",
                *body, "  END LOOP;", "END $$;"]  # fmt: skip
    if dialect == "spark":
        return [f"-- loop: {step.name}", "BEGIN", f"  WHILE NOT ({done}) DO", *body,
                "  END WHILE;", "END;"]  # fmt: skip
    msg = f"no loop rendering for dialect {dialect!r}"
    raise ValueError(msg)


# --- reading a rendered script back ------------------------------------------------------------

_LOOP_START = {
    "bigquery": re.compile(r"^LOOP$"),
    "snowflake": re.compile(r"^EXECUTE IMMEDIATE \$\$$"),
    "postgres": re.compile(r"^DO \$\$$"),
    "spark": re.compile(r"^BEGIN$"),
}
_DONE = {
    "bigquery": re.compile(r"^IF (.*) THEN LEAVE; END IF;$"),
    "snowflake": re.compile(r"^SELECT (.*) INTO :ap_done;$"),
    "postgres": re.compile(r"^EXIT WHEN (.*);$"),
    "spark": re.compile(r"^WHILE NOT \((.*)\) DO$"),
}
_LOOP_END = {"bigquery": "END LOOP;", "snowflake": "$$;", "postgres": "END $$;", "spark": "END;"}
_CONTROL = {"DECLARE ap_done BOOLEAN;", "BEGIN", "LOOP", "IF (ap_done) THEN BREAK; END IF;",
            "END LOOP;", "END;", "END WHILE;"}  # fmt: skip


@dataclass
class ReadLoop:
    done: exp.Expr
    body: list[exp.Expr]


def read_script(text: str, dialect: str) -> list[exp.Expr | ReadLoop]:
    """Statements (parsed by sqlglot in `dialect`) and loops of a rendered script."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("--")]
    out: list[exp.Expr | ReadLoop] = []
    index = 0
    while index < len(lines):
        start = _LOOP_START.get(dialect)
        if start is not None and start.match(lines[index]):
            end = lines.index(_LOOP_END[dialect], index + 1)
            out.append(_read_loop(lines[index + 1 : end], dialect))
            index = end + 1
            continue
        out.append(_parse(lines[index], dialect))
        index += 1
    return out


def _read_loop(lines: list[str], dialect: str) -> ReadLoop:
    done: exp.Expr | None = None
    body: list[exp.Expr] = []
    for line in lines:
        matched = _DONE[dialect].match(line)
        if matched and done is None:
            parsed = sqlglot.parse_one(f"SELECT {matched.group(1)}", read=dialect)
            assert isinstance(parsed, exp.Select)
            done = parsed.selects[0]
        elif line not in _CONTROL:
            body.append(_parse(line, dialect))
    if done is None:
        msg = "a loop without its condition"
        raise ValueError(msg)
    return ReadLoop(done, body)


def _parse(line: str, dialect: str) -> exp.Expr:
    parsed = sqlglot.parse(line, read=dialect)
    if len(parsed) != 1 or parsed[0] is None or isinstance(parsed[0], exp.Command):
        msg = f"not one {dialect} statement: {line[:200]}"
        raise ValueError(msg)
    return parsed[0]


def iter_statements(read: list[exp.Expr | ReadLoop]) -> Iterator[exp.Expr]:
    for item in read:
        if isinstance(item, ReadLoop):
            yield item.done
            yield from item.body
        else:
            yield item


def _is_session_setting(tree: exp.Expr) -> bool:
    """The script's first statement (UTC for the session) in another engine's words."""
    return isinstance(tree, exp.Set) or (
        isinstance(tree, exp.Alter) and "SESSION" in tree.sql().upper()
    )


def run_on_duckdb(con: object, read: list[exp.Expr | ReadLoop], max_rounds: int = 10_000) -> None:
    """Run a script read by `read_script`, each statement transpiled to DuckDB (tests use it to
    check the Snowflake and BigQuery scripts)."""
    execute = con.execute  # type: ignore[attr-defined]
    execute("SET TimeZone = 'UTC'")
    for item in read:
        if not isinstance(item, ReadLoop):
            if not _is_session_setting(item):
                execute(item.sql(dialect="duckdb"))
            continue
        condition = exp.select(item.done.copy()).sql(dialect="duckdb")
        for _ in range(max_rounds):
            if execute(condition).fetchall()[0][0]:
                break
            for statement in item.body:
                execute(statement.sql(dialect="duckdb"))
        else:
            msg = f"loop did not finish in {max_rounds} rounds"
            raise RuntimeError(msg)
