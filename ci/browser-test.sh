#!/usr/bin/env bash
# The findings view in a real browser: starts the exporter on examples/demo.toml and
# Debian's chromedriver with headless Chromium, then ci/browser-walk.py walks landing ->
# source -> check -> account and back, then an empty check and an unknown account,
# screenshotting every page (kept in
# target/screenshots, or $IPE_SCREENSHOTS) and failing on errors, empty states, console
# errors and blank screenshots. Called by .ci/run; runs alone too: ci/browser-test.sh
#
# Needs chromium, chromedriver (Debian packages chromium, chromium-driver) and python3.
# Builds target/debug/identity-posture-exporter if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'browser: %s\n' "$*"; }
die() { printf 'browser: FAIL: %s\n' "$*" >&2; exit 1; }

command -v chromium >/dev/null || die "chromium not found (apt-get install chromium)"
command -v chromedriver >/dev/null || die "chromedriver not found (apt-get install chromium-driver)"
command -v python3 >/dev/null || die "python3 not found"
EXPORTER=${IPE_E2E_EXPORTER:-target/debug/identity-posture-exporter}
[ -x "$EXPORTER" ] || cargo build --locked --quiet
SHOTS=${IPE_SCREENSHOTS:-target/screenshots}
# The exporter refuses IPE_ variables that configure nothing: these two are this script's.
unset IPE_E2E_EXPORTER IPE_SCREENSHOTS
rm -rf "$SHOTS"
mkdir -p "$SHOTS"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ipe-browser.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] || continue
      printf '\n----- last lines of %s -----\n' "$(basename "$log")" >&2
      tail -n 20 "$log" >&2
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r EXPORTER_PORT DRIVER_PORT < <(python3 - <<'PY'
import socket
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)

say "$(chromium --version 2>/dev/null | head -1)"
"$EXPORTER" --config examples/demo.toml --listen "127.0.0.1:$EXPORTER_PORT" >"$WORK/exporter.log" 2>&1 &
PIDS+=($!)
chromedriver --port="$DRIVER_PORT" >"$WORK/chromedriver.log" 2>&1 &
PIDS+=($!)

ready() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
}
for _ in $(seq 240); do ready "http://127.0.0.1:$EXPORTER_PORT/-/ready" && break; sleep 0.25; done
ready "http://127.0.0.1:$EXPORTER_PORT/-/ready" || die "the exporter did not become ready"
for _ in $(seq 120); do ready "http://127.0.0.1:$DRIVER_PORT/status" && break; sleep 0.25; done
ready "http://127.0.0.1:$DRIVER_PORT/status" || die "chromedriver did not start"

python3 ci/browser-walk.py "http://127.0.0.1:$EXPORTER_PORT" "http://127.0.0.1:$DRIVER_PORT" \
  "$SHOTS" "$WORK/profile"
say "passed"
