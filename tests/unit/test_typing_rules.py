"""SPEC section 5's typing decisions (`ir.typing_rules`), which both backends render."""

from __future__ import annotations

import itertools

from audience_pipeline.engine import typed as polars_typed
from audience_pipeline.ir.typing_rules import (
    FUNCTIONS,
    SAME_KIND_READINGS,
    coalesce_type,
    comparison,
    reading,
)
from audience_pipeline.sql import typed as sql_typed

TYPES = ("num", "str", "bool", "null")


def test_a_value_reads_as_itself_and_only_numbers_and_numeric_text_convert() -> None:
    for have, want in itertools.product(TYPES, TYPES):
        got = reading(have, want)  # type: ignore[arg-type]
        if have == want:
            assert got == "as_is"
        elif (have, want) == ("str", "num"):
            assert got == "parse_number"
        elif (have, want) == ("num", "str"):
            assert got == "number_text"
        else:
            assert got == "null", (have, want)


def test_comparisons_follow_spec_section_5() -> None:
    assert comparison(None, None) == "by_kinds"
    assert comparison(None, "str") == comparison("str", None) == "str"
    assert comparison("num", "str") == comparison("str", "num") == "num"
    assert comparison("bool", "num") == comparison("str", "bool") == "null"
    for other in (None, *TYPES):
        assert comparison("null", other) == comparison(other, "null") == "null"  # type: ignore[arg-type]
    for same in ("num", "str", "bool"):
        assert comparison(same, same) == same  # type: ignore[arg-type]


def test_coalesce_takes_the_first_static_type() -> None:
    assert coalesce_type([None, "null", "str", "num"]) == "str"
    assert coalesce_type([None, "null"]) is None
    assert set(FUNCTIONS) == {"lower", "upper", "length", "abs"}


def test_both_backends_tag_kinds_as_the_rules_do() -> None:
    tags = [kind for kind, _ in SAME_KIND_READINGS]
    for typed in (polars_typed, sql_typed):
        assert tags == [typed.KIND_NUMBER, typed.KIND_STRING, typed.KIND_BOOL]
