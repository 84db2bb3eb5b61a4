#!/usr/bin/env bash
# Quick start, step 2: builds (warnings are errors) and runs every test, C++
# (GoogleTest) and Python (pytest, with the .venv that scripts/setup.sh made).
#   scripts/test.sh             the normal build in build/
#   scripts/test.sh --sanitize  an AddressSanitizer + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  echo "test: .venv is missing: run scripts/setup.sh first" >&2
  exit 1
fi
dir=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPERSEUS_WERROR=ON -DPython3_EXECUTABLE="$PWD/.venv/bin/python")
if [[ ${1:-} == "--sanitize" ]]; then
  dir=build-asan
  # A sanitized extension module cannot load into an unsanitized Python: the
  # Python tests run in the normal build.
  flags=(-DCMAKE_BUILD_TYPE=Debug -DPERSEUS_WERROR=ON -DPERSEUS_SANITIZE=ON -DPERSEUS_BUILD_BENCH=OFF
         -DPERSEUS_BUILD_PYTHON=OFF)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" --output-on-failure -j"$(nproc)"
