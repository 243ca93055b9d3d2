"""The IO manager: tables of the warehouse's committed run, and daily partitions.

The engine asset commits every table of a run at once (`membership.pipeline.engine_step`) and
hands `CommittedTable`s to the IO manager, which then writes nothing: it only reports them. A
plain frame for a whole table is committed as a run of its own (`warehouse.writer.amend_run`);
partitions are written one file each, atomically. (Trait and audience assets register their
views themselves; see assets.trait_assets.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from audience_pipeline.orchestration import warehouse as wh


@dataclass(frozen=True)
class CommittedTable:
    """A table already committed with its run: what the engine's outputs are."""

    name: str
    rows: int
    path: Path


def table_name(key: dg.AssetKey) -> str:
    """The warehouse name of an asset: its key path joined by `_` (audiences/x -> audiences_x)."""
    return "_".join(key.path)


class ParquetIOManager(dg.ConfigurableIOManager):
    """Tables of the committed run as `<warehouse>/<name>.parquet` (partitions:
    `<name>/<day>.parquet`, each written atomically), each a view in `warehouse.duckdb`."""

    warehouse_dir: str

    def handle_output(
        self, context: dg.OutputContext, obj: pl.DataFrame | CommittedTable | None
    ) -> None:
        if obj is None:
            return
        if isinstance(obj, CommittedTable):
            context.add_output_metadata(
                {
                    "rows": dg.MetadataValue.int(obj.rows),
                    "path": dg.MetadataValue.path(str(obj.path)),
                }
            )
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
