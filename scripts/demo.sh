#!/usr/bin/env bash
# The main command: demo events -> one materialization of everything -> Dagster UI on
# http://127.0.0.1:3000 (Ctrl-C stops it). Data lands in data/landing, tables in data/warehouse.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh   # .venv (created if missing), first on PATH; sets PY
"$PY" -m pip install -q --disable-pip-version-check -e .
export DAGSTER_HOME="$PWD/dagster_home"
export AUDIENCE_PIPELINE_DEFINITIONS="${AUDIENCE_PIPELINE_DEFINITIONS:-definitions}"
export AUDIENCE_PIPELINE_LANDING="${AUDIENCE_PIPELINE_LANDING:-data/landing}"
export AUDIENCE_PIPELINE_WAREHOUSE="${AUDIENCE_PIPELINE_WAREHOUSE:-data/warehouse}"
export DAGSTER_PORT="${DAGSTER_PORT:-3000}"
# The definitions sensor reloads the code location through it when a YAML file changes.
export AUDIENCE_PIPELINE_DAGSTER_URL="${AUDIENCE_PIPELINE_DAGSTER_URL:-http://127.0.0.1:$DAGSTER_PORT}"
"$PY" -m audience_pipeline.orchestration.demo --events "${DEMO_EVENTS:-50000}" --days "${DEMO_DAYS:-60}"
# `dagster dev` still works in 1.13; it only points to its optional successor `dg dev`.
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore:Function \`dev_command\` is superseded}"
exec "$VIRTUAL_ENV/bin/dagster" dev -w workspace.yaml -h 127.0.0.1 -p "$DAGSTER_PORT"
