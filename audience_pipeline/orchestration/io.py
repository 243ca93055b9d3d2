"""IO managers: Polars frames as atomic Parquet in the warehouse, and views over them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
from sqlglot import exp

from audience_pipeline.orchestration import warehouse as wh


def table_name(key: dg.AssetKey) -> str:
    """The warehouse name of an asset: its key path joined by `_` (audiences/x -> audiences_x)."""
    return "_".join(key.path)


class ParquetIOManager(dg.ConfigurableIOManager):
    """Writes each asset as `<warehouse>/<name>.parquet` (partitions: `<name>/<day>.parquet`),
    atomically, and keeps a view of it in `<warehouse>/warehouse.duckdb`."""

    warehouse_dir: str

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | None) -> None:
        if obj is None:
            return
        warehouse = Path(self.warehouse_dir)
        name = table_name(context.asset_key)
        if context.has_asset_partitions:
            path = wh.write_partition(warehouse, name, context.asset_partition_key, obj)
        else:
            path = wh.write_whole(warehouse, name, obj)
        context.add_output_metadata(
            {"rows": dg.MetadataValue.int(obj.height), "path": dg.MetadataValue.path(str(path))}
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        warehouse = Path(self.warehouse_dir)
        name = table_name(context.asset_key)
        if context.has_asset_partitions:
            parts = wh.read_partitions(warehouse, name, list(context.asset_partition_keys))
            return pl.concat(parts, how="diagonal") if parts else pl.DataFrame()
        frame = wh.read_whole(warehouse, name)
        if frame is None:
            msg = f"table {name} has not been materialized in {warehouse}"
            raise FileNotFoundError(msg)
        return frame


@dataclass(frozen=True)
class TableView:
    """A view over a stored table: what per-audience and per-trait assets materialize."""

    query: exp.Expression
    source: str  # the table it reads
    audience_key: str | None = None
    columns: tuple[str, ...] | None = None


class ViewIOManager(dg.ConfigurableIOManager):
    """Stores nothing but a view in the DuckDB catalog; loading reads the source table."""

    warehouse_dir: str

    def handle_output(self, context: dg.OutputContext, obj: TableView) -> None:
        name = table_name(context.asset_key)
        wh.register_view(Path(self.warehouse_dir), name, obj.query)
        context.add_output_metadata({"view": dg.MetadataValue.text(name)})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        warehouse = Path(self.warehouse_dir)
        name = table_name(context.asset_key)
        path, _, key = name.partition("_")
        if path == "audiences":
            frame = wh.read_whole(warehouse, "memberships")
            return (
                frame.filter(pl.col("audience_key") == key) if frame is not None else pl.DataFrame()
            )
        return wh.query(warehouse, f'SELECT * FROM "{name}"')
