#!/usr/bin/env bash
# Quick start, step 1: installs what is missing (Debian packages with apt, the
# project's Python environment .venv with pip), builds Perseus into build/,
# installs the perseus package into .venv (`pip install .`) and runs
# `perseus demo` on the shipped profile.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake g++ pkg-config
  nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libssl-dev libsqlite3-dev sqlite3
  python3 python3-dev python3-venv
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The project's Python: Debian's interpreter in a virtual environment with the
# pinned requirements (torch 2.13.0 is the CPU build on the machine's disk).
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv" >&2
  /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r python/requirements-dev.txt \
  -c python/constraints.txt
nodeps=$(grep -v '^#' python/requirements-nodeps.txt)
have=$(.venv/bin/python -m pip freeze | grep -cxF "$nodeps" || true)
if [[ $have -ne $(grep -c . <<<"$nodeps") ]]; then
  echo "setup: installing megatron-core and deepspeed (deepspeed builds from source: minutes)" >&2
  DS_BUILD_OPS=0 DS_BUILD_SHM_COMM=1 .venv/bin/python -m pip install --quiet \
    --disable-pip-version-check --no-deps --no-build-isolation --no-cache-dir \
    -r python/requirements-nodeps.txt
fi
# torchtitan 0.3.0 beside the 0.2.2 in .venv (0.3.0 cannot train with torch
# 2.13: its train step passes arguments torch 2.13's schedule.step lacks; its
# schedule builder works): a --target folder the tests put first on PYTHONPATH.
overlay=.venv/overlays/torchtitan-0.3
if [[ ! -f $overlay/.done ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$overlay" -r python/requirements-torchtitan-0.3.txt
  touch "$overlay/.done"
fi

# The build the tests use (warnings are errors), for the .venv Python.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPERSEUS_WERROR=ON \
      -DPython3_EXECUTABLE="$PWD/.venv/bin/python" >/dev/null
cmake --build build -j"$(nproc)"

# The package as users install it: `pip install .` (its own build folder,
# build/pip-*, reused on later runs).
echo "setup: pip install . (into .venv)" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-build-isolation \
  --no-deps --force-reinstall .
echo
.venv/bin/perseus demo
