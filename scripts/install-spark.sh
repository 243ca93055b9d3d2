#!/usr/bin/env bash
# pip-install pyspark 4.x when it is missing (the SQL backend's Spark test needs it; Java 17+).
set -euo pipefail
PY=${PYTHON:-python3}
if "$PY" -c "import pyspark, sys; sys.exit(0 if pyspark.__version__.startswith('4.') else 1)" 2>/dev/null; then
  exit 0
fi
echo "installing pyspark 4.x (about 1 minute)"
"$PY" -m pip install -q --disable-pip-version-check "pyspark>=4.0,<5"
