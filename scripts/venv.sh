#!/usr/bin/env bash
# Sourced by demo.sh and test.sh: create the project's virtual environment `.venv` when it is
# missing and put it first on PATH, so `python`, `dagster` and `audience-pipeline` are this
# checkout's (another checkout installing into the system Python cannot take the package over).
# PYTHON picks the interpreter that creates it (default python3).
VENV_DIR="${VENV_DIR:-$PWD/.venv}"
if [ ! -x "$VENV_DIR/bin/python" ]; then
  echo "creating $VENV_DIR"
  if ! "${PYTHON:-python3}" -m venv "$VENV_DIR" 2>/dev/null; then
    # Debian/Ubuntu ship venv's pip bootstrap separately.
    echo "installing python3-venv (apt-get)"
    rm -rf "$VENV_DIR"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null) \
      || { echo "error: cannot create $VENV_DIR (install python3-venv)" >&2; exit 1; }
    "${PYTHON:-python3}" -m venv "$VENV_DIR"
  fi
fi
export VIRTUAL_ENV="$VENV_DIR"
export PATH="$VENV_DIR/bin:$PATH"
PY="$VENV_DIR/bin/python"
