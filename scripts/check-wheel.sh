#!/usr/bin/env bash
# CI: `pip wheel .` makes a wheel that installs into a fresh virtual
# environment, where `import perseus` and the `perseus` command work.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/wheelhouse
rm -rf "$out"
# With build isolation, as a user's pip does: the build requirements come from
# PyPI at pyproject.toml's pins; a separate build folder keeps it from setup's.
.venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$out" \
  --config-settings=build-dir=build/wheel .
wheel=$(ls "$out"/perseus_energy-*.whl)
echo "check-wheel: built $wheel ($(du -h "$wheel" | cut -f1))"

env_dir=$(mktemp -d)
trap 'rm -rf "$env_dir"' EXIT
/usr/bin/python3 -m venv "$env_dir/venv"
"$env_dir/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"
cd "$env_dir"  # away from the source tree: only the installed package is seen
version=$("$env_dir/venv/bin/python" -c "import perseus; print(perseus.__version__)")
expected=$(sed -n 's/^project(perseus VERSION \([0-9.]*\).*/\1/p' "$OLDPWD/CMakeLists.txt")
[[ $version == "$expected" ]] || { echo "check-wheel: version $version, expected $expected" >&2; exit 1; }
"$env_dir/venv/bin/perseus" demo | tee "$env_dir/demo.txt"
grep -q "T_min (same speed)" "$env_dir/demo.txt"
"$env_dir/venv/bin/python" - <<'PY'
import perseus, pathlib
profile = pathlib.Path(perseus.__file__).parent / "data" / "profiles" / "gpt3-175b+a100_sxm_bf16.csv"
f = perseus.plan(str(profile), stages=8, microbatches=12, blocking_power_w=83.64)
assert len(f) > 100, len(f)
print("check-wheel: import perseus", perseus.__version__, "plans", len(f), "frontier points")
PY
echo "check-wheel: ok"
