#!/usr/bin/env bash
# Fails if any C++ file differs from clang-format's output (.clang-format), or
# if mypy finds a type error in the Python package or its tests (pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cc' '*.h')
bad=0
for f in $files; do
  if ! clang-format --style=file "$f" | cmp -s - "$f"; then
    echo "not clang-formatted: $f (run: clang-format -i $f)" >&2
    bad=1
  fi
done
if ! .venv/bin/mypy --config-file pyproject.toml python/perseus python/tests; then
  echo "mypy found type errors (above)" >&2
  bad=1
fi
exit $bad
