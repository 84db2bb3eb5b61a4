#!/usr/bin/env bash
# Creates the two virtual environments bench/lowtime_compare.py runs lowtime in:
#   .venv-lowtime-0.3  lowtime 0.3.0 (max flow in Rust), bench/requirements-lowtime-0.3.txt
#   .venv-lowtime-0.2  lowtime 0.2.0 (pure Python),      bench/requirements-lowtime-0.2.txt
# from $PYTHON (default /usr/bin/python3; lowtime 0.3.0's wheel is cp38..cp3xx manylinux).
# Every package is pinned exactly and installed with --no-deps, so the environments
# hold exactly those versions; pip check then proves the list is complete.
# Idempotent: an existing environment is reused and brought to the pins.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-/usr/bin/python3}
for version in 0.3 0.2; do
  venv=.venv-lowtime-$version
  if [[ ! -x $venv/bin/python ]]; then
    "$python" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    -r "bench/requirements-lowtime-$version.txt"
  "$venv/bin/python" -m pip check --disable-pip-version-check
  "$venv/bin/python" -c 'import lowtime, sys; print(sys.argv[1], "lowtime", lowtime.__version__)' "$venv"
done
