"""JSON-typed values as sqlglot expressions (SPEC section 5's typing rules), the SQL chokepoint.

Mirrors `audience_pipeline.engine.typed`: a name has no type of its own; the comparison it stands
in decides whether it is read as a number, a string or a boolean. Event properties, context and
custom traits are flat-tagged text (see `audience_pipeline.values`): the first character is the
JSON kind (``s``, ``n``, ``b``, ``o``) and the rest the value's text, so every reading is a
SUBSTRING and a CASE.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from sqlglot import exp

from audience_pipeline.sql.dialects import SqlDialect
from audience_pipeline.values import NUMERIC_STRING_PATTERN

KIND_NUMBER, KIND_STRING, KIND_BOOL, KIND_OTHER = "n", "s", "b", "o"


def lit(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def null_of(dialect: SqlDialect, type_name: str) -> exp.Expr:
    return dialect.cast(exp.null(), type_name)


def null_bool(dialect: SqlDialect) -> exp.Expr:
    return null_of(dialect, "BOOLEAN")


def case(*whens: tuple[exp.Expr, exp.Expr],
         default: exp.Expr | None = None) -> exp.Expr:  # fmt: skip
    result = exp.Case()
    for condition, value in whens:
        result = result.when(condition, value)
    if default is not None:
        result = result.else_(default)
    return result


def is_numeric_text(dialect: SqlDialect, text: exp.Expr) -> exp.Expr:
    """SPEC 5a: a numeric string is exactly -?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?."""
    del dialect  # one regex syntax suffices for this pattern in every target
    return exp.RegexpLike(this=text, expression=lit(NUMERIC_STRING_PATTERN))


def number_text(dialect: SqlDialect, value: exp.Expr) -> exp.Expr:
    """SPEC 3's number text of a double: whole numbers without `.0`, else the engine's text.

    Whole numbers below `integral_text_limit` print exactly through BIGINT; other values use the
    engine's own double-to-text, which is the shortest round-trip text in DuckDB, Spark and
    Snowflake (so `0.5`, `1.25`), as Python's repr is.
    """
    whole = exp.and_(
        exp.EQ(this=value.copy(), expression=exp.Floor(this=value.copy())),
        exp.LT(this=exp.Abs(this=value.copy()),
               expression=exp.Literal.number(repr(dialect.integral_text_limit))),
    )  # fmt: skip
    return case(
        (whole, dialect.to_text(dialect.cast(value.copy(), "BIGINT"))),
        default=dialect.to_text(value.copy()),
    )


class Typed(ABC):
    """A value whose reading depends on context."""

    def __init__(self, dialect: SqlDialect) -> None:
        self.dialect = dialect

    @abstractmethod
    def num(self) -> exp.Expr: ...

    @abstractmethod
    def text(self) -> exp.Expr:
        """String reading: a string as itself, a number as its text; else null."""

    @abstractmethod
    def boolean(self) -> exp.Expr: ...

    @abstractmethod
    def kind(self) -> exp.Expr:
        """JSON kind: n, s, b, o (object/array), or null when missing/null."""

    @abstractmethod
    def is_null(self) -> exp.Expr:
        """True for a missing key or JSON null (never null itself)."""

    def distinct_text(self) -> exp.Expr:
        """Text used by unique_list / most_frequent / count(distinct): booleans as true/false."""
        return case(
            (exp.EQ(this=self.kind(), expression=lit(KIND_BOOL)),
             case((self.boolean(), lit("true")), default=lit("false"))),
            default=self.text(),
        )  # fmt: skip


class TaggedValue(Typed):
    """A flat-tagged text value: first character the kind, the rest its text."""

    def __init__(self, dialect: SqlDialect, expr: exp.Expr) -> None:
        super().__init__(dialect)
        self.expr = expr

    def tag(self) -> exp.Expr:
        return exp.Substring(this=self.expr.copy(), start=exp.Literal.number(1),
                             length=exp.Literal.number(1))  # fmt: skip

    def body(self) -> exp.Expr:
        return exp.Substring(this=self.expr.copy(), start=exp.Literal.number(2))

    def num(self) -> exp.Expr:
        numeric = exp.or_(
            exp.EQ(this=self.tag(), expression=lit(KIND_NUMBER)),
            exp.and_(
                exp.EQ(this=self.tag(), expression=lit(KIND_STRING)),
                is_numeric_text(self.dialect, self.body()),
            ),
        )
        return case((numeric, self.dialect.to_double(self.body())))

    def text(self) -> exp.Expr:
        kinds = exp.In(this=self.tag(), expressions=[lit(KIND_STRING), lit(KIND_NUMBER)])
        return case((kinds, self.body()))

    def boolean(self) -> exp.Expr:
        is_bool = exp.EQ(this=self.tag(), expression=lit(KIND_BOOL))
        return case((is_bool, exp.EQ(this=self.body(), expression=lit("true"))))

    def kind(self) -> exp.Expr:
        return self.tag()

    def is_null(self) -> exp.Expr:
        return exp.Is(this=self.expr.copy(), expression=exp.null())

    def distinct_text(self) -> exp.Expr:
        # strings as themselves, numbers as their text, booleans true/false, containers as JSON
        return self.body()


class CachedValue(TaggedValue):
    """A tagged column whose readings are columns computed once upstream (`register`)."""

    def __init__(self, dialect: SqlDialect, table: str | None, column: str,
                 register: Callable[[str, str, exp.Expr], str]) -> None:  # fmt: skip
        super().__init__(dialect, exp.column(column, table))
        self.table = table
        self.column_name = column
        self.register = register

    def _reading(self, reading: str) -> exp.Expr:
        # The reading is defined over the bare column, in the relation that adds it.
        bare = TaggedValue(self.dialect, exp.column(self.column_name))
        readers = {"num": bare.num, "text": bare.text, "boolean": bare.boolean, "kind": bare.kind}
        name = self.register(self.column_name, reading, readers[reading]())
        return exp.column(name, self.table)

    def num(self) -> exp.Expr:
        return self._reading("num")

    def text(self) -> exp.Expr:
        return self._reading("text")

    def boolean(self) -> exp.Expr:
        return self._reading("boolean")

    def kind(self) -> exp.Expr:
        return self._reading("kind")


class NumberValue(Typed):
    """A native double column (count, sum, avg, min, max traits; aggregates)."""

    def __init__(self, dialect: SqlDialect, expr: exp.Expr) -> None:
        super().__init__(dialect)
        self.expr = expr

    def num(self) -> exp.Expr:
        return self.dialect.to_double(self.expr.copy())

    def text(self) -> exp.Expr:
        return number_text(self.dialect, self.num())

    def boolean(self) -> exp.Expr:
        return null_bool(self.dialect)

    def kind(self) -> exp.Expr:
        return case((exp.not_(self.is_null()), lit(KIND_NUMBER)))

    def is_null(self) -> exp.Expr:
        return exp.Is(this=self.expr.copy(), expression=exp.null())


class TextValue(Typed):
    """A native text column (most_frequent traits)."""

    def __init__(self, dialect: SqlDialect, expr: exp.Expr) -> None:
        super().__init__(dialect)
        self.expr = expr

    def num(self) -> exp.Expr:
        ok = is_numeric_text(self.dialect, self.expr.copy())
        return case((ok, self.dialect.to_double(self.expr.copy())))

    def text(self) -> exp.Expr:
        return self.expr.copy()

    def boolean(self) -> exp.Expr:
        return null_bool(self.dialect)

    def kind(self) -> exp.Expr:
        return case((exp.not_(self.is_null()), lit(KIND_STRING)))

    def is_null(self) -> exp.Expr:
        return exp.Is(this=self.expr.copy(), expression=exp.null())


class OtherValue(Typed):
    """A list (unique_list traits): neither number, string nor boolean."""

    def __init__(self, dialect: SqlDialect, expr: exp.Expr) -> None:
        super().__init__(dialect)
        self.expr = expr

    def num(self) -> exp.Expr:
        return null_of(self.dialect, self.dialect.double_type)

    def text(self) -> exp.Expr:
        return null_of(self.dialect, self.dialect.text_type)

    def boolean(self) -> exp.Expr:
        return null_bool(self.dialect)

    def kind(self) -> exp.Expr:
        return case((exp.not_(self.is_null()), lit(KIND_OTHER)))

    def is_null(self) -> exp.Expr:
        return exp.Is(this=self.expr.copy(), expression=exp.null())


class CoalesceValue(Typed):
    """coalesce(a, b, ...) of untyped names: each reading coalesces the same reading of the args."""

    def __init__(self, dialect: SqlDialect, args: Sequence[Typed]) -> None:
        super().__init__(dialect)
        self.args = list(args)

    def _coalesce(self, parts: list[exp.Expr]) -> exp.Expr:
        return exp.Coalesce(this=parts[0], expressions=parts[1:])

    def num(self) -> exp.Expr:
        return self._coalesce([a.num() for a in self.args])

    def text(self) -> exp.Expr:
        return self._coalesce([a.text() for a in self.args])

    def boolean(self) -> exp.Expr:
        return self._coalesce([a.boolean() for a in self.args])

    def kind(self) -> exp.Expr:
        return self._coalesce([a.kind() for a in self.args])

    def is_null(self) -> exp.Expr:
        return exp.and_(*[a.is_null() for a in self.args])


class NullValue(Typed):
    """Literal NULL, or a name that can hold nothing here."""

    def num(self) -> exp.Expr:
        return null_of(self.dialect, self.dialect.double_type)

    def text(self) -> exp.Expr:
        return null_of(self.dialect, self.dialect.text_type)

    def boolean(self) -> exp.Expr:
        return null_bool(self.dialect)

    def kind(self) -> exp.Expr:
        return null_of(self.dialect, self.dialect.text_type)

    def is_null(self) -> exp.Expr:
        return exp.true()
