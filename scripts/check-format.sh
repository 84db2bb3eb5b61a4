#!/usr/bin/env bash
# Fails if any C++ file differs from clang-format's output (.clang-format).
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
exit $bad
