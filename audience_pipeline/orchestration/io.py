"""The IO manager: Polars frames as atomic Parquet in the warehouse, each with its DuckDB view.

(Trait and audience assets register their views themselves; see assets.trait_assets.)"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

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
