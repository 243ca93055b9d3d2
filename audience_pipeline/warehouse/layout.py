"""Names of a warehouse folder's parts, and the settings of its commit point.

```
<warehouse>/
  current -> runs/<run_id>        the commit point: a relative symlink, swapped atomically
  runs/<run_id>/                  one run: run.json and every table and input it wrote
  <table>.parquet -> current/<table>.parquet   fixed relative links (SPEC section 6 paths)
  _normalized -> current/_normalized
  warehouse.duckdb                one view per table, over the fixed links
  raw_events/, raw_trait_updates/, quarantine/   Dagster's daily partitions (inputs)
  _destinations/, _ingested_files.json           sync ledgers, the landing sensor's ledger
```
"""

from __future__ import annotations

import os

RUNS = "runs"
CURRENT = "current"
RUN_FILE = "run.json"
NORMALIZED = "_normalized"
STATE = "_state"
INPUTS = "_inputs"
CATALOG = "warehouse.duckdb"
CATALOG_STALE = ".catalog-stale"  # a run could not update the catalog's views (file busy)
LOCK = ".writer.lock"
LEGACY_MANIFEST = "_manifest.json"
FORMAT = 2

# How many committed runs stay on disk (the current one included): older ones are removed by
# the next run. A reader that resolved a run reads it whole while up to KEEP_RUNS - 1 newer runs
# commit; the Profile API and explain hold their files open, so they never lose them.
KEEP_RUNS_ENV = "AUDIENCE_PIPELINE_KEEP_RUNS"
KEEP_RUNS_DEFAULT = 3

# The normalized inputs of a `compute` run (relative to the run folder).
NORMALIZED_INPUTS = {
    "events": f"{NORMALIZED}/events.parquet",
    "trait_updates": f"{NORMALIZED}/trait_updates.parquet",
    "message_profiles": f"{NORMALIZED}/message_profiles.parquet",
}
# The Dagster pipeline's inputs: daily partitions (hard-linked into the run) and the state's
# message -> profile map.
PARTITIONED_INPUTS = ("raw_events", "raw_trait_updates")
STATE_MESSAGES = f"{STATE}/messages.parquet"


def keep_runs(value: int | None = None) -> int:
    """The number of committed runs to keep (at least 2: the current run and its base)."""
    if value is None:
        text = os.environ.get(KEEP_RUNS_ENV, "")
        value = int(text) if text.strip().isdigit() else KEEP_RUNS_DEFAULT
    return max(2, value)


def table_file(name: str) -> str:
    return f"{name}.parquet"


def is_table_name(name: str) -> bool:
    """Names a view can take (table files of our own making)."""
    return bool(name) and name.replace("_", "").isalnum()
