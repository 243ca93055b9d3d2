"""`audience-pipeline`: thin commands over audience_pipeline.service.

Adding a command: decorate a function with `@command(...)` (it gets --definitions, -v/-q and
--debug), declare its own options with `click.option`, call one service function and return the
exit code. Mistakes raised by the service (DefinitionsError, ValueError, a missing file, a bad
query) are printed as one line by terminal.errors; stages announced with
`audience_pipeline.progress.Stages` are drawn by wrapping the call in `show_stages()`.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from audience_pipeline import service
from audience_pipeline.engine.memory import parse_size, set_memory_limit
from audience_pipeline.engines import ENGINES
from audience_pipeline.sql.dialects import DIALECTS
from audience_pipeline.terminal.errors import describe
from audience_pipeline.terminal.logs import configured_logging
from audience_pipeline.terminal.params import OUTPUT_DIR, OUTPUT_FILE, TIMESTAMP
from audience_pipeline.terminal.report import print_compute_summary, print_preview
from audience_pipeline.terminal.stages import show_stages

PROG = "audience-pipeline"
DEFAULT_EVENTS = "data/events"
DEFAULT_WAREHOUSE = "data/warehouse"
SCHEMA_HELP = (
    "read events from Segment's warehouse tables in this schema; --events is then a DuckDB "
    "database file or a PostgreSQL DSN"
)

# -v/-q/--debug may stand before or after the command word; both add up in ctx.meta (shared by
# the group's and the command's contexts).
_VERBOSITY = "audience_pipeline.verbosity"
_DEBUG = "audience_pipeline.debug"
# main() was called by the console script / `python -m` (not by a caller in the same process).
_PROCESS_ENTRY = "process_entry"


def _add_verbosity(sign: int) -> Callable[[click.Context, click.Parameter, int], None]:
    def callback(ctx: click.Context, _param: click.Parameter, count: int) -> None:
        ctx.meta[_VERBOSITY] = ctx.meta.get(_VERBOSITY, 0) + sign * count

    return callback


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta[_DEBUG] = ctx.meta.get(_DEBUG, False) or value


def _global_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = (
        click.option("-v", "--verbose", count=True, expose_value=False,
                     callback=_add_verbosity(1), help="Log more (-v info, -vv debug)."),
        click.option("-q", "--quiet", count=True, expose_value=False,
                     callback=_add_verbosity(-1), help="Errors only; no progress."),
        click.option("--debug", is_flag=True, expose_value=False, callback=_set_debug,
                     help="Show the traceback of a failure."),
    )  # fmt: skip
    for option in options:
        function = option(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_global_options
def cli() -> None:
    """Warehouse-native audiences: Segment-spec events in, traits and audiences out."""


def command(
    name: str, *, definitions: bool = True, log_level: int = logging.WARNING, **settings: Any
) -> Callable[[Callable[..., int]], click.Command]:
    """Register a subcommand whose body returns an exit code.

    It takes --definitions (unless `definitions=False`) and -v/-q/--debug; logging is set up
    around it at `log_level` (moved by -v/-q), and any exception becomes one line (terminal.errors).
    """

    def decorate(body: Callable[..., int]) -> click.Command:
        @functools.wraps(body)
        def run(**params: Any) -> int:
            ctx = click.get_current_context()
            with configured_logging(ctx.meta.get(_VERBOSITY, 0), default=log_level):
                return _guarded(body, params, debug=ctx.meta.get(_DEBUG, False))

        wrapped: Callable[..., Any] = _global_options(run)
        if definitions:
            wrapped = click.option(
                "--definitions", default="definitions", show_default=True,
                type=click.Path(file_okay=False), help="Definitions folder.",
            )(wrapped)  # fmt: skip
        return cli.command(name, **settings)(wrapped)

    return decorate


def _guarded(body: Callable[..., int], params: dict[str, Any], *, debug: bool) -> int:
    try:
        return body(**params)
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except BrokenPipeError:
        # `audience-pipeline compile ... | head`: the reader left; not an error of ours. Point
        # stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as error:
        if debug:
            traceback.print_exc()
        message, code = describe(error)
        click.echo(message, err=True)
        return code


def _verbose(ctx: click.Context | None = None) -> int:
    ctx = ctx or click.get_current_context()
    return int(ctx.meta.get(_VERBOSITY, 0))


def _now_if_none(as_of: datetime | None) -> datetime:
    return as_of if as_of is not None else service.parse_as_of(None)


# Options several commands share, declared once.
events_option = click.option(
    "--events", default=DEFAULT_EVENTS, show_default=True,
    help="Event file or folder (.jsonl, .jsonl.gz, Parquet).",
)  # fmt: skip
as_of_option = click.option(
    "--as-of", type=TIMESTAMP, default=None, help="ISO-8601 timestamp (default: now)."
)
events_schema_option = click.option("--events-schema", default=None, help=SCHEMA_HELP)
DSN_ENV = "AUDIENCE_PIPELINE_POSTGRES_DSN"
DSN_HELP = (
    f"--engine postgres: the PostgreSQL server that computes (default: ${DSN_ENV}); with "
    "--events-schema and no --events, events are read from it too."
)
OUT_SCHEMA_HELP = "--engine postgres: schema the run's tables are written to (replaced)."
warehouse_option = click.option(
    "--warehouse", default=DEFAULT_WAREHOUSE, show_default=True, help="Folder of computed tables."
)


@command("validate", help="Check every definition; exit 1 on problems.")
def validate(definitions: str) -> int:
    issues = service.validate(definitions)
    for issue in issues:
        click.echo(str(issue))
    for warning in service.validate_warnings(definitions):
        click.echo(f"warning: {warning}", err=True)
    if issues:
        click.echo(f"{len(issues)} problem(s)", err=True)
        return 1
    click.echo("definitions are valid")
    return 0


def _memory_limit(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@command("compute", help="Compute every table as of a timestamp.")
@click.option(
    "--events",
    default=None,
    help=f"Event file or folder (.jsonl, .jsonl.gz, Parquet) [default: {DEFAULT_EVENTS}].",
)
@as_of_option
@click.option(
    "--out",
    type=OUTPUT_DIR,
    default=DEFAULT_WAREHOUSE,
    show_default=True,
    help="Output folder for the tables.",
)
@click.option("--engine", type=click.Choice(ENGINES), default="polars", show_default=True)
@events_schema_option
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Write the run even if no event was read (every member exits).",
)
@click.option("--dsn", envvar=DSN_ENV, default=None, help=DSN_HELP)
@click.option("--out-schema", default="audience_pipeline", show_default=True, help=OUT_SCHEMA_HELP)
@click.option("--spark-master", default=None, help="--engine spark: master URL.")
@click.option("--spark-tables", default=None,
              help="--engine spark: also keep the tables in this database.")  # fmt: skip
@click.option("--incremental", is_flag=True,
              help="Refresh from the last run's state (Polars recomputes only what new events "
                   "can change) and keep what the next refresh needs.")  # fmt: skip
@click.option("--memory-limit", default="6GB", show_default=True, callback=_memory_limit,
              help="Memory the Polars engine plans for (e.g. 6GB, 512MB): it evaluates "
                   "profiles in as many buckets as keep within it (a local Spark: half of it "
                   "is the JVM heap).")  # fmt: skip
def compute(
    definitions: str,
    events: str | None,
    as_of: datetime | None,
    out: str,
    engine: str,
    events_schema: str | None,
    allow_empty: bool,
    dsn: str | None,
    out_schema: str,
    spark_master: str | None,
    spark_tables: str | None,
    incremental: bool,
    memory_limit: int,
) -> int:
    set_memory_limit(memory_limit)
    if engine == "spark":
        if incremental:
            raise ValueError("--incremental: the Spark engine computes in full; leave it out")
        from audience_pipeline.spark.command import spark_compute_command

        return spark_compute_command(
            events or DEFAULT_EVENTS, definitions, _now_if_none(as_of), out,
            master=spark_master, schema=events_schema, tables_database=spark_tables,
            allow_empty=allow_empty,
        )  # fmt: skip
    source = events or (dsn if events_schema and dsn else DEFAULT_EVENTS)
    with show_stages(enabled=_verbose() >= 0):
        summary = service.run_compute(
            source, definitions, _now_if_none(as_of), out, engine=engine, schema=events_schema,
            allow_empty=allow_empty, dsn=dsn, out_schema=out_schema, incremental=incremental,
        )  # fmt: skip
    print_compute_summary(summary)
    return 0


@command("preview", help="Size and a sample of an audience, computed and not saved.")
@click.argument("key")
@events_option
@as_of_option
@click.option("--sample", type=click.IntRange(min=0), default=10, show_default=True)
@events_schema_option
def preview(
    definitions: str,
    key: str,
    events: str,
    as_of: datetime | None,
    sample: int,
    events_schema: str | None,
) -> int:
    with show_stages(enabled=_verbose() >= 0):
        result = service.preview(
            key, events, definitions, _now_if_none(as_of), sample=sample, schema=events_schema
        )
    print_preview(result)
    return 0


@command("compile", help="Print an audience's SQL, or with --all the whole space's script.")
@click.argument("key", required=False)
@click.option("--dialect", type=click.Choice(list(DIALECTS)), default="duckdb", show_default=True)
@click.option("--all", "whole", is_flag=True, help="One script building every output table.")
@click.option("--columns", default=None, help="--all: CSV of Segment's columns (docs/sql.md).")
@click.option("--events", default=None, help="--all: DuckDB file or DSN to read columns from.")
@click.option(
    "--events-schema", default="segment", show_default=True, help="--all: Segment's schema."
)
@as_of_option
@click.option(
    "--out-schema", default="audiences", show_default=True, help="--all: schema of the outputs."
)
@click.option("--out", default=None, help="--all: write the script here.")  # fmt: skip
def compile_(
    definitions: str,
    key: str | None,
    dialect: str,
    whole: bool,
    columns: str | None,
    events: str | None,
    events_schema: str,
    as_of: datetime | None,
    out_schema: str,
    out: str | None,
) -> int:
    if whole:
        from audience_pipeline.compile_sql import compile_all_command

        return compile_all_command(
            definitions, dialect, columns=columns, events=events, schema=events_schema,
            as_of=_now_if_none(as_of), out_schema=out_schema, out=out,
        )  # fmt: skip
    if key is None:
        raise ValueError("compile: give an audience KEY, or --all for the whole space's script")
    from audience_pipeline.compile_sql import compile_audience

    click.echo(compile_audience(definitions, key, dialect))
    return 0


@command("sql", help="Query the warehouse tables with SQL (DuckDB; one view per table).")
@click.argument("query")
@warehouse_option
@click.option("--unsafe", is_flag=True, help="No read-only guards (power users).")
def sql(definitions: str, query: str, warehouse: str, unsafe: bool) -> int:
    from audience_pipeline.query import sql_command

    return sql_command(query, warehouse, unsafe=unsafe)


@command("sync", help="Send membership changes to one destination (definitions/destinations).")
@click.argument("destination")
@warehouse_option
@click.option("--approve", multiple=True, metavar="KEY",
              help="Send the changes the churn guard (max_change) held for this audience.")  # fmt: skip
def sync(definitions: str, destination: str, warehouse: str, approve: tuple[str, ...]) -> int:
    from audience_pipeline.destinations.command import sync_command

    return sync_command(destination, definitions, warehouse, list(approve))


@command("diff", help="What the definitions on disk would change against the last run.")
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@warehouse_option
@click.option("--json", "as_json", is_flag=True, help="A JSON list, one object per audience.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    show_default=True,
    help="Text for a terminal, markdown for a pull request.",
)
@click.option("--sample", type=click.IntRange(min=0), default=5, show_default=True,
              help="Entering/exiting entities listed per audience.")  # fmt: skip
def diff(
    definitions: str, keys: tuple[str, ...], warehouse: str, as_json: bool, fmt: str, sample: int
) -> int:
    from audience_pipeline.impact.command import diff_command

    return diff_command(list(keys), definitions, warehouse, as_json=as_json, fmt=fmt,
                        sample=sample)  # fmt: skip


@command("import-segment", help="Convert Segment audiences / computed traits (Public API JSON).")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Definitions folder to write into.")  # fmt: skip
def import_segment(definitions: str, file: str, out: str) -> int:
    from audience_pipeline.segment_import.command import import_command

    return import_command(file, out)


@command("export", help="Write an audience as CSV in one of Segment's three formats.")
@click.argument("key")
@click.option("--format", "format_", type=click.Choice(["unformatted", "formatted", "single"]),
              required=True)  # fmt: skip
@click.option("--id-type", default=None, help="single: the identifier type to write.")
@click.option("--raw", is_flag=True, help="single: do not hash the identifiers.")
@click.option("--out", type=OUTPUT_FILE, required=True, help="CSV file to write.")
@warehouse_option
def export(
    definitions: str,
    key: str,
    format_: str,
    id_type: str | None,
    raw: bool,
    out: str,
    warehouse: str,
) -> int:
    from audience_pipeline.destinations import export as export_audience

    done = export_audience(key, format_, id_type, raw, out, warehouse, definitions)
    click.echo(f"{done.key}: {done.members} members, {done.rows} rows -> {done.path}")
    return 0


@command("explain", help="Why a profile or account is (or is not) in an audience.")
@click.argument("key")
@click.argument("external_id", metavar="ID_TYPE:ID_VALUE")
@warehouse_option
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain(definitions: str, key: str, external_id: str, warehouse: str, as_json: bool) -> int:
    from audience_pipeline.explain.command import explain_command

    return explain_command(key, external_id, warehouse, definitions, as_json)


@command(
    "serve", log_level=logging.INFO,
    help="Serve the Profile API (token: AUDIENCE_PIPELINE_API_TOKEN).",
)  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@warehouse_option
@click.option("--events-days", type=click.IntRange(min=0), default=14, show_default=True,
              help="Days of events kept (0: none).")  # fmt: skip
@click.option("--poll", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds between warehouse checks (0: never reload).")  # fmt: skip
@click.option("--access-log", is_flag=True)
def serve(
    definitions: str,
    host: str,
    port: int,
    warehouse: str,
    events_days: int,
    poll: float,
    access_log: bool,
) -> int:
    from audience_pipeline.api.serve import ServeOptions
    from audience_pipeline.api.serve import serve as run_server

    options = ServeOptions(warehouse, definitions, host, port, events_days, poll, access_log)
    code = run_server(options)
    if click.get_current_context().obj.get(_PROCESS_ENTRY):
        # After uvicorn has run, the interpreter's finalization makes DuckDB's bindings print
        # about 50 "nanobind: leaked ..." lines. The server's process ends here anyway: flush
        # and leave without finalizing (in-process callers, such as tests, are not affected).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


@command("generate", definitions=False, log_level=logging.INFO,
         help="Write realistic Segment-spec demo events.")  # fmt: skip
@click.option("--events", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Lines to write.")  # fmt: skip
@click.option("--profiles", type=click.IntRange(min=1), default=None,
              help="People (default events // 10).")  # fmt: skip
@click.option("--accounts", type=click.IntRange(min=0), default=None,
              help="Accounts (default profiles // 20).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--as-of", type=TIMESTAMP, default="2026-03-01T00:00:00+00:00", show_default=True,
              help="End of the period.")  # fmt: skip
@click.option("--days", type=click.IntRange(min=1), default=120, show_default=True,
              help="Length of the period in days.")  # fmt: skip
@click.option("--files", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of files (time slices).")  # fmt: skip
@click.option("--no-gzip", is_flag=True, help="Write plain .jsonl.")
@click.option("--no-bad-lines", is_flag=True, help="Leave out the unusable lines.")
@click.option("--out", type=OUTPUT_DIR, default="data/events", show_default=True,
              help="Output folder.")  # fmt: skip
def generate(
    events: int,
    profiles: int | None,
    accounts: int | None,
    seed: int,
    as_of: datetime,
    days: int,
    files: int,
    no_gzip: bool,
    no_bad_lines: bool,
    out: str,
) -> int:
    from audience_pipeline.demo.generate import generate as generate_events

    stats = generate_events(
        Path(out), events=events, profiles=profiles, accounts=accounts, seed=seed, as_of=as_of,
        days=days, files=files, gzip=not no_gzip, bad_lines=not no_bad_lines,
    )  # fmt: skip
    click.echo(
        f"{stats.lines} lines in {len(stats.files)} file(s): {stats.files[0]} .. {stats.files[-1]}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run one command and return its exit code (never raises)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(
            args=arguments, prog_name=PROG, standalone_mode=False,
            obj={_PROCESS_ENTRY: argv is None},
        )  # fmt: skip
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx else "", err=True)
        return 2
    except click.UsageError as error:
        where = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        click.echo(f"error: {error.format_message()}{where}", err=True)
        return error.exit_code
    except click.ClickException as error:
        click.echo(f"error: {error.format_message()}", err=True)
        return error.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
