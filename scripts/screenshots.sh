#!/usr/bin/env bash
# Regenerates the screenshots in docs/screenshots/ with headless Chromium:
#   report-demo.png           `perseus report` of the demo job (the paper's emulation setting)
#   schedule-interleaved.png  `perseus show-schedule --svg` of interleaved 1F1B (4 ranks, 2 chunks)
# Installs chromium with apt if it is missing. Needs build/bin/perseus (scripts/setup.sh builds it).
# CI does not run this.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${PERSEUS_BIN:-build/bin/perseus}
if [[ ! -x $bin ]]; then
  echo "screenshots: $bin is missing: run scripts/setup.sh (or cmake --build build) first" >&2
  exit 1
fi
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z $browser ]]; then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "screenshots: installing chromium" >&2
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
  browser=$(command -v chromium)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=docs/screenshots
mkdir -p "$out"

shot() {  # shot URL WIDTH HEIGHT PNG
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size="$2,$3" --screenshot="$4" "$1" >/dev/null 2>&1
}

"$bin" report --out "$tmp/report" >/dev/null
shot "file://$tmp/report/report.html" 1100 2330 "$out/report-demo.png"

"$bin" show-schedule --schedule interleaved-1f1b --stages 4 --microbatches 8 --virtual-stages 2 \
  --svg "$tmp/schedule.svg" >/dev/null
# The page is the SVG itself: its width and height are the window's.
size=$(sed -n 's/.*<svg[^>]* width="\([0-9.]*\)" height="\([0-9.]*\)".*/\1 \2/p' "$tmp/schedule.svg" | head -1)
read -r w h <<<"$size"
shot "file://$tmp/schedule.svg" "$(printf '%.0f' "$w")" "$(printf '%.0f' "$h")" "$out/schedule-interleaved.png"

ls -l "$out"/*.png
