"""The Engage messages of outbox rows as JSON text, built column-wise with Polars.

Produces exactly the messages of :func:`payloads.render_change` (same fields, same order, same
messageIds), serialized without spaces as orjson does, for a whole batch at once: the calls of
each (audience, level, change) come from a small table joined in, the fan-out of multi-valued
identifiers is an explode over the longest list, the JSON is concatenated from escaped columns
and the messageIds are hashed in one pass. ``payloads.render_change`` stays the readable
definition; tests check that both agree.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import polars as pl

from audience_pipeline.destinations.hashing import sha256_hex
from audience_pipeline.destinations.jsontext import json_string, needs_escape
from audience_pipeline.destinations.payloads import (
    ENTERED_EVENT,
    EXITED_EVENT,
    MESSAGE_ID_FIELDS,
    AudienceInfo,
    PersonasContext,
    calls_for,
    render_change,
)

ROW_COLUMNS = ["audience_key", "level", "entity_id", "change", "ids", "as_of"]
_ENCODED = {"row": pl.UInt32, "json": pl.String}
# A key of the ids object: a quote cannot end a key inside an escaped value (it would follow a
# backslash), so this finds exactly the keys.
_KEY = re.compile(r'"([^"\\]+)":\[')


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _call_table(rows: pl.DataFrame, audiences: dict[str, AudienceInfo],
                personas: PersonasContext) -> pl.DataFrame:  # fmt: skip
    """Per (audience_key, level, change) its calls, in order, with the fixed JSON around them."""
    records = []
    for key, level, change in rows.select("audience_key", "level", "change").unique().iter_rows():
        info = audiences[key]
        value = "true" if change != "exited" else "false"
        personas_json = _dumps(personas.for_audience(key))
        k = _dumps(key)
        for order, call in enumerate(calls_for(info, level, change)):
            if call == "group":
                body = f',"traits":{{{k}:{value}}},"context":{{"personas":{personas_json}'
            elif call == "identify":
                body = f',"traits":{{{k}:{value}'
            else:
                event = ENTERED_EVENT if value == "true" else EXITED_EVENT
                body = (f',"event":{_dumps(event)},"properties":{{"audience_key":{k},'
                        f'"audience_name":{_dumps(info.name)},{k}:{value}')  # fmt: skip
            records.append((key, level, change, order, call, body,
                            f'}},"context":{{"personas":{personas_json},"externalIds":['))  # fmt: skip
    schema = {"audience_key": pl.String, "level": pl.String, "change": pl.String,
              "order": pl.Int64, "call": pl.String, "body": pl.String, "context": pl.String}  # fmt: skip
    return pl.DataFrame(records, schema=schema, orient="row")


def _id_types(ids: pl.Series) -> list[str] | None:
    """The id types of the ids objects in one order that agrees with every object's own key
    order (the space's priority order); None when objects disagree (planned under another
    configuration), and then the batch is rendered row by row."""
    sequences = ids.str.extract_all(_KEY.pattern).unique().to_list()  # distinct key sequences: few
    order: dict[str, None] = {}
    after: dict[str, set[str]] = {}
    for sequence in sequences:
        keys = [orjson.loads(_KEY.fullmatch(k).group(1).join('""')) for k in sequence or []]  # type: ignore[union-attr]
        for position, key in enumerate(keys):
            order.setdefault(key, None)
            after.setdefault(key, set()).update(keys[:position])
    result: list[str] = []
    pending = list(order)
    while pending:
        ready = [k for k in pending if after[k] <= set(result)]
        if not ready:
            return None
        result.append(ready[0])
        pending.remove(ready[0])
    return result


def encode_messages(
    destination: str,
    batch: pl.DataFrame,
    audiences: dict[str, AudienceInfo],
    personas: PersonasContext,
) -> list[str]:
    """The JSON text of every message of the outbox rows ``batch``, in the batch's order."""
    return encode_frame(destination, batch, audiences, personas)["json"].to_list()


def _reference(destination: str, rows: pl.DataFrame, audiences: dict[str, AudienceInfo],
               personas: PersonasContext) -> pl.DataFrame:  # fmt: skip
    """Row by row through ``render_change`` (ids planned under another configuration)."""
    out: list[tuple[int, str]] = []
    for number, row in enumerate(rows.select(ROW_COLUMNS).iter_rows()):
        for message in render_change(destination, row, audiences[row[0]], personas):
            out.append((number, orjson.dumps(message).decode()))
    return pl.DataFrame(out, schema=_ENCODED, orient="row")


def encode_frame(
    destination: str,
    batch: pl.DataFrame,
    audiences: dict[str, AudienceInfo],
    personas: PersonasContext,
) -> pl.DataFrame:
    """``row, json``: the messages of the outbox rows ``batch`` (``row``: the change's position
    in ``batch``), in the batch's order."""
    if batch.is_empty():
        return pl.DataFrame(schema=_ENCODED)
    rows = batch.select(ROW_COLUMNS).with_row_index("row")
    calls = rows.join(_call_table(rows, audiences, personas),
                      on=["audience_key", "level", "change"], how="inner")  # fmt: skip
    if calls.is_empty():
        return pl.DataFrame(schema=_ENCODED)
    # Identifier values that need escaping show as a backslash in their ids JSON.
    escape = needs_escape(pl.concat([rows["entity_id"], rows["as_of"]])) or bool(
        rows["ids"].str.contains("\\", literal=True).any()
    )
    q = {name: json_string(pl.col(name), escape) for name in ("entity_id", "as_of")}
    # messageId text: destination, the change, the call and the fan-out index (payloads.py)
    identity = [pl.lit(destination), "audience_key", "level", "entity_id", "change", "as_of",
                "ids", "call"]  # fmt: skip
    parts: list[pl.DataFrame] = []

    groups = calls.filter(pl.col("call") == "group")
    if groups.height:
        parts.append(groups.select(
            "row", "order", pl.lit(0, pl.Int64).alias("index"),
            pl.concat_str([*identity, pl.lit("0")], separator="\x1f").alias("mid_text"),
            pl.concat_str([
                pl.lit('{"type":"group","messageId":"'), pl.lit("MID"), pl.lit('","timestamp":'),
                *q["as_of"], pl.lit(',"anonymousId":'), *q["entity_id"], pl.lit(',"groupId":'),
                *q["entity_id"], "body", pl.lit("}}"),
            ]).alias("json"),
        ))  # fmt: skip

    people = calls.filter(pl.col("call") != "group")
    if people.height:
        types = _id_types(people["ids"])
        if types is None:
            return _reference(destination, batch, audiences, personas)
        parts.append(_people(people, types, identity, q, escape))
    messages = pl.concat(parts).sort("row", "order", "index")
    mid = pl.lit("ap-") + sha256_hex(messages["mid_text"]).str.slice(0, 32)
    # "MID" stands where the messageId goes; nothing before it can contain that text.
    return messages.select(
        pl.col("row").cast(pl.UInt32), pl.col("json").str.replace("MID", mid, literal=True)
    )


def _people(calls: pl.DataFrame, types: list[str], identity: list[Any],
            q: dict[str, list[pl.Expr]], escape: bool) -> pl.DataFrame:  # fmt: skip
    """identify / track messages, one per fan-out index (a value of each multi-valued type)."""
    dtype = pl.Struct({t: pl.List(pl.String) for t in types})
    parsed = pl.col("ids").str.json_decode(dtype)
    lists = calls.with_columns(parsed.struct.field(t).alias(f"l{n}") for n, t in enumerate(types))
    lengths = [pl.col(f"l{n}").list.len().fill_null(0) for n in range(len(types))]
    width = pl.max_horizontal(*lengths, pl.lit(1)) if types else pl.lit(1)
    fanned = lists.with_columns(pl.int_ranges(0, width).alias("index")).explode("index")
    picked = []
    for n in range(len(types)):
        values = pl.col(f"l{n}")
        picked.append(
            pl.when(values.list.len() == 1).then(values.list.first())
            .otherwise(values.list.get(pl.col("index"), null_on_oob=True)).alias(f"v{n}")
        )  # fmt: skip
    fanned = fanned.with_columns(picked)
    v = {t: pl.col(f"v{n}") for n, t in enumerate(types)}
    fields: list[pl.Expr] = []  # ,"userId":"u1" in id type order
    extras: list[pl.Expr] = []  # ,"email":"a@x.com"
    external: list[pl.Expr] = []  # {"id":..,"type":..,..}
    for t in types:
        value = json_string(v[t], escape)
        name = MESSAGE_ID_FIELDS.get(t)
        piece = pl.concat_str([pl.lit(f",{_dumps(name or t)}:"), *value])
        (fields if name else extras).append(piece)
        external.append(pl.concat_str([pl.lit('{"id":'), *value, pl.lit(f',"type":{_dumps(t)},'
                                       '"collection":"users","encoding":"none"}')]))  # fmt: skip
    has_person = pl.lit(False)
    for t in types:
        if t in MESSAGE_ID_FIELDS:
            has_person = has_person | v[t].is_not_null()
    fallback = pl.when(~has_person).then(
        pl.concat_str([pl.lit(',"anonymousId":'), *q["entity_id"]])
    )
    extra = pl.concat_str(extras, ignore_nulls=True) if extras else pl.lit("")
    context_traits = pl.when(extra != "").then(
        pl.concat_str([pl.lit(',"traits":{'), extra.str.slice(1), pl.lit("}")])
    )
    return fanned.select(
        "row", "order", pl.col("index").cast(pl.Int64),
        pl.concat_str([*identity, pl.col("index").cast(pl.String)], separator="\x1f")
        .alias("mid_text"),
        pl.concat_str([
            pl.lit('{"type":"'), "call", pl.lit('","messageId":"'), pl.lit("MID"),
            pl.lit('","timestamp":'), *q["as_of"],
            pl.concat_str([*fields, fallback], ignore_nulls=True),
            "body", extra, "context",
            pl.concat_str(external, separator=",", ignore_nulls=True) if external else pl.lit(""),
            pl.lit("]"), context_traits.fill_null(""), pl.lit("}}"),
        ]).alias("json"),
    )  # fmt: skip
