#!/usr/bin/env bash
# Install everything the test suite needs (Python packages, PostgreSQL, pyspark) and run it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing PostgreSQL server (apt-get)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "warning: could not install PostgreSQL; its tests will fail" >&2
fi
source scripts/venv.sh   # .venv (created if missing), first on PATH; sets PY
"$PY" -m pip install -q --disable-pip-version-check -e '.[dev]'
if [ -x scripts/install-spark.sh ]; then PYTHON="$PY" scripts/install-spark.sh; fi

"$PY" -m pytest -q -p no:cacheprovider "$@"
