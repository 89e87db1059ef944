#!/usr/bin/env bash
# The Snakemake report's first page as a browser shows it: a screenshot by headless Chromium
# (Debian: apt-get install chromium) and the page's rendered DOM beside it.
#
#   .venv/bin/snakemake --report results/report.html
#   bash scripts/report_screenshot.sh results/report.html [results/report.png]
#
# Writes the PNG (default: the report's name with .png) and <png>.dom.html (the DOM after the
# report's scripts ran, for a test to search). SYNLLM_SCREENSHOT_SIZE sets the window
# (default 1600,1200).
set -euo pipefail
report="${1:?usage: report_screenshot.sh REPORT.html [OUT.png]}"
out="${2:-${report%.html}.png}"
[ -f "$report" ] || { echo "report_screenshot: no such file: $report" >&2; exit 1; }
browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || { echo "report_screenshot: chromium not found (apt-get install chromium)" >&2; exit 1; }
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# the report renders itself with React after loading: give its scripts virtual time to run
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile"
       --virtual-time-budget=15000 --window-size="${SYNLLM_SCREENSHOT_SIZE:-1600,1200}")
"$browser" "${flags[@]}" --screenshot="$out" "$url" 2>/dev/null
"$browser" "${flags[@]}" --dump-dom "$url" > "${out%.png}.dom.html" 2>/dev/null
[ -s "$out" ] || { echo "report_screenshot: chromium wrote no screenshot" >&2; exit 1; }
echo "report_screenshot: $out (${out%.png}.dom.html)"
