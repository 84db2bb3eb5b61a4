#!/usr/bin/env bash
# Quick start, step 2: builds (warnings are errors) and runs every test.
#   scripts/test.sh             the normal build in build/
#   scripts/test.sh --sanitize  an AddressSanitizer + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPERSEUS_WERROR=ON)
if [[ ${1:-} == "--sanitize" ]]; then
  dir=build-asan
  flags=(-DCMAKE_BUILD_TYPE=Debug -DPERSEUS_WERROR=ON -DPERSEUS_SANITIZE=ON -DPERSEUS_BUILD_BENCH=OFF
         -DPERSEUS_BUILD_PYTHON=OFF)  # a sanitized extension cannot load into /usr/bin/python3
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" --output-on-failure -j"$(nproc)"
