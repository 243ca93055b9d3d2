"""`audience-pipeline`: thin commands over audience_pipeline.service."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import polars as pl

from audience_pipeline import service
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.sql.dialects import DIALECTS

DEFAULT_EVENTS = "data/events"
DEFAULT_WAREHOUSE = "data/warehouse"
SCHEMA_HELP = (
    "read events from Segment's warehouse tables in this schema; --events is then a DuckDB "
    "database file or a PostgreSQL DSN"
)

DSN_ENV = "AUDIENCE_PIPELINE_POSTGRES_DSN"
DSN_HELP = (
    f"--engine postgres: the PostgreSQL server that computes (default: ${DSN_ENV}); with "
    "--events-schema and no --events, events are read from it too"
)
OUT_SCHEMA_HELP = "--engine postgres: schema the run's tables are written to (replaced)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audience-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--definitions", default="definitions", help="definitions folder")
        return p

    command("validate", "check every definition; exit 1 on problems")

    p = command("compute", "compute every table as of a timestamp")
    p.add_argument("--events", default=None, help="event file or folder")
    p.add_argument("--as-of", default=None, help="ISO-8601 timestamp (default: now)")
    p.add_argument("--out", default=DEFAULT_WAREHOUSE, help="output folder for the tables")
    p.add_argument("--engine", choices=["polars", "duckdb", "postgres", "spark"],
                   default="polars")  # fmt: skip
    p.add_argument("--events-schema", default=None, help=SCHEMA_HELP)
    p.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=DSN_HELP)
    p.add_argument("--out-schema", default="audience_pipeline", help=OUT_SCHEMA_HELP)
    p.add_argument("--spark-master", default=None, help="--engine spark: master URL")
    p.add_argument(
        "--spark-tables", default=None, help="--engine spark: also keep the tables in this database"
    )

    p = command("preview", "size and a sample of an audience, computed and not saved")
    p.add_argument("key")
    p.add_argument("--events", default=DEFAULT_EVENTS)
    p.add_argument("--as-of", default=None)
    p.add_argument("--sample", type=int, default=10)
    p.add_argument("--events-schema", default=None, help=SCHEMA_HELP)

    p = command("compile", "print an audience's SQL, or with --all the whole space's script")
    p.add_argument("key", nargs="?", default=None)
    p.add_argument("--dialect", choices=list(DIALECTS), default="duckdb")
    p.add_argument("--all", action="store_true", help="one script building every output table")
    p.add_argument("--columns", default=None, help="--all: CSV of Segment's columns (docs/sql.md)")
    p.add_argument("--events", default=None, help="--all: DuckDB file or DSN to read columns from")
    p.add_argument("--events-schema", default="segment", help="--all: Segment's schema")
    p.add_argument("--as-of", default=None, help="--all: ISO-8601 timestamp (default: now)")
    p.add_argument("--out-schema", default="audiences", help="--all: schema of the outputs")
    p.add_argument("--out", default=None, help="--all: write the script here")

    p = command("sql", "query the warehouse tables with SQL (DuckDB)")
    p.add_argument("query")
    p.add_argument("--warehouse", default=DEFAULT_WAREHOUSE)

    p = command("sync", "send membership changes to one destination (definitions/destinations)")
    p.add_argument("destination")
    p.add_argument("--warehouse", default=DEFAULT_WAREHOUSE)

    p = command("export", "write an audience as CSV in one of Segment's three formats")
    p.add_argument("key")
    p.add_argument("--format", choices=["unformatted", "formatted", "single"], required=True)
    p.add_argument("--id-type", default=None)
    p.add_argument("--raw", action="store_true", help="single: do not hash the identifiers")
    p.add_argument("--out", required=True)
    p.add_argument("--warehouse", default=DEFAULT_WAREHOUSE)

    p = command("explain", "why a profile or account is (or is not) in an audience")
    p.add_argument("key", help="audience key")
    p.add_argument("id", help="ID_TYPE:ID_VALUE (user_id:u1, email:..., group_id:... for accounts)")
    p.add_argument("--warehouse", default=DEFAULT_WAREHOUSE)
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")

    p = command("serve", "serve the Profile API (token: AUDIENCE_PIPELINE_API_TOKEN)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--warehouse", default=DEFAULT_WAREHOUSE)
    p.add_argument("--events-days", type=int, default=14, help="days of events kept (0: none)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between warehouse checks")
    p.add_argument("--access-log", action="store_true")

    # Listed for --help only: main() hands `generate ...` to the generator's own parser.
    sub.add_parser(
        "generate", help="write realistic demo events (Segment spec; see generate --help)"
    )
    return parser


def _print_frame(frame: pl.DataFrame) -> None:
    with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=60, tbl_width_chars=160):
        print(frame)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["generate"]:
        # The generator owns its options (and its --help); argparse.REMAINDER would not pass
        # a leading "--events" through, so hand everything after the word over untouched.
        from audience_pipeline.demo.generate import main as generate_main

        return generate_main([a for a in arguments[1:] if a != "--"])
    args = _parser().parse_args(arguments)
    try:
        return _run(args)
    except DefinitionsError as error:
        print(str(error), file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `audience-pipeline compile ... | head`: the reader left; not an error of ours. Point
        # stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "validate":
        issues = service.validate(args.definitions)
        for issue in issues:
            print(issue)
        if issues:
            print(f"{len(issues)} problem(s)", file=sys.stderr)
            return 1
        print("definitions are valid")
        return 0
    if args.command == "compute":
        as_of = service.parse_as_of(args.as_of)
        if args.engine == "spark":
            from audience_pipeline.spark.command import spark_compute_command

            return spark_compute_command(
                args.events or DEFAULT_EVENTS, args.definitions, as_of, args.out,
                master=args.spark_master, schema=args.events_schema,
                tables_database=args.spark_tables,
            )  # fmt: skip
        events = args.events or (args.dsn if args.events_schema and args.dsn else DEFAULT_EVENTS)
        summary = service.run_compute(
            events, args.definitions, as_of, args.out, engine=args.engine,
            schema=args.events_schema, dsn=args.dsn, out_schema=args.out_schema,
        )  # fmt: skip
        print(f"as of {summary.as_of.isoformat()} -> {summary.out}")
        for name, rows in summary.tables.items():
            print(f"  {name}: {rows} rows")
        print(f"  quarantined messages: {summary.quarantined}")
        for key, size in summary.audience_sizes.items():
            print(f"  audience {key}: {size} (+{summary.entered[key]} / -{summary.exited[key]})")
        timing = ", ".join(f"{k} {v:.2f}s" for k, v in summary.seconds.items())
        print(f"  time: {timing}")
        return 0
    if args.command == "preview":
        as_of = service.parse_as_of(args.as_of)
        result = service.preview(args.key, args.events, args.definitions, as_of,
                                 sample=args.sample, schema=args.events_schema)  # fmt: skip
        print(f"{result.key} ({result.level}): {result.size} of {result.universe}")
        _print_frame(result.sample)
        return 0
    if args.command == "compile":
        if args.all:
            from audience_pipeline.sql.script.command import compile_all_command

            return compile_all_command(
                args.definitions, args.dialect, columns=args.columns, events=args.events,
                schema=args.events_schema, as_of=service.parse_as_of(args.as_of),
                out_schema=args.out_schema, out=args.out,
            )  # fmt: skip
        if args.key is None:
            raise ValueError("compile: give an audience KEY, or --all for the whole space")
        from audience_pipeline.sql import compile_audience

        print(compile_audience(args.definitions, args.key, args.dialect))
        return 0
    if args.command == "sql":
        _print_frame(service.query(args.query, args.warehouse))
        return 0
    if args.command == "sync":
        from audience_pipeline.destinations import sync

        report = sync(args.destination, args.definitions, args.warehouse)
        print(
            f"{report.destination}: {report.status}; sent {report.sent}, failed {report.failed}, "
            f"pending {report.pending}, requests {report.requests}, retries {report.retries}"
        )
        for key in sorted(set(report.entered) | set(report.exited)):
            print(f"  {key}: +{report.entered.get(key, 0)} / -{report.exited.get(key, 0)}")
        return 0 if report.status == "ok" else 1
    if args.command == "export":
        from audience_pipeline.destinations import export

        exported = export(args.key, args.format, args.id_type, args.raw, args.out, args.warehouse,
                          args.definitions)  # fmt: skip
        print(
            f"{exported.key}: {exported.members} members, {exported.rows} rows -> {exported.path}"
        )
        return 0
    if args.command == "explain":
        from audience_pipeline.explain.command import explain_command

        return explain_command(args.key, args.id, args.warehouse, args.definitions, args.json)
    if args.command == "serve":
        from audience_pipeline.api.serve import ServeOptions, serve

        return serve(ServeOptions(args.warehouse, args.definitions, args.host, args.port,
                                  args.events_days, args.poll, args.access_log))  # fmt: skip
    return 2


if __name__ == "__main__":
    sys.exit(main())
