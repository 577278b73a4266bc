#!/usr/bin/env bash
# Soak test (issue #14): runs `serve` with short poll intervals over two file sources (the
# JSON demo and a 2,000-account NDJSON file) while a client scrapes /metrics, pages through
# the findings API (JSON and CSV), reads the other API views, and keeps a few connections
# that never send a request (closed by the header-read timeout). It samples the server's
# RSS and open file descriptors every 5 s and FAILS when, after the warm-up (the first
# quarter of the run, at least 20 s):
#   - RSS grows beyond the bound: last-minute median > warm-up median × 1.25 + 16 MiB;
#   - open files grow beyond the bound: any sample > warm-up maximum + 32;
#   - any request fails (connection error or 5xx), or the server exits.
# Usage:  ci/soak.sh [SECONDS]     (default 600 = 10 minutes; CI runs a 75 s variant)
# Needs python3 (stdlib only). Uses target/debug/identity-posture-exporter (built with
# `cargo build` if missing; override with IPE_SOAK_EXPORTER=path). Loopback only; every
# process it starts is stopped on exit; IPE_SOAK_KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-600}
say() { printf 'soak: %s\n' "$*"; }
command -v python3 >/dev/null || { say "python3 not found"; exit 1; }

EXPORTER=${IPE_SOAK_EXPORTER:-target/debug/identity-posture-exporter}
KEEP=${IPE_SOAK_KEEP:-}
# The exporter refuses IPE_ variables that configure nothing: these are the script's own.
unset IPE_SOAK_EXPORTER IPE_SOAK_KEEP
if [ ! -x "$EXPORTER" ]; then
  say "building $EXPORTER (cargo build)"
  cargo build --locked --quiet
fi
EXPORTER=$(cd "$(dirname "$EXPORTER")" && pwd)/$(basename "$EXPORTER")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ipe-soak.XXXXXX")
PID=
cleanup() {
  local rc=$?
  if [ -n "$PID" ]; then
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$WORK/serve.log" ]; then
    printf '\n----- last lines of serve.log -----\n' >&2
    tail -n 25 "$WORK/serve.log" >&2
  fi
  if [ "$KEEP" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$EXPORTER" generate-demo --accounts 2000 --seed 3 --format ndjson --now 2026-11-28T00:00:00Z > "$WORK/big.ndjson"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/soak.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
header_read_timeout = "2s"
idle_timeout = "5s"
max_connections = 64

[policy]
exclude_accounts = ["breakglass-*@example.com"]
service_account_patterns = ["svc-*"]

[[sources]]
name = "demo"
type = "file"
path = "$PWD/examples/demo-identities.json"
time_anchor = "2026-11-28T00:00:00Z"
interval = "2s"

[[sources]]
name = "big"
type = "file"
path = "$WORK/big.ndjson"
time_anchor = "2026-11-28T00:00:00Z"
interval = "3s"
TOML

"$EXPORTER" serve --config "$WORK/soak.toml" --log-level warn > "$WORK/serve.log" 2>&1 &
PID=$!
say "exporter pid $PID on 127.0.0.1:$PORT for ${DURATION}s"

python3 - "$PORT" "$PID" "$DURATION" "$WORK/samples.csv" <<'PY'
import http.client, os, socket, statistics, sys, time, urllib.request

port, pid, duration, samples_path = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
base = f"http://127.0.0.1:{port}"

def fail(msg):
    print(f"soak: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)

def sample():
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        fail("the exporter exited")
    return rss, fds

for _ in range(300):
    try:
        if urllib.request.urlopen(base + "/-/ready", timeout=2).status == 200:
            break
    except Exception:
        time.sleep(0.1)
else:
    fail("not ready after 30 s")

keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
def get(path, fresh=False):
    global keep
    try:
        if fresh:
            with urllib.request.urlopen(base + path, timeout=10) as r:
                body, status, hdrs = r.read(), r.status, r.headers
        else:
            try:
                keep.request("GET", path)
                r = keep.getresponse()
            except (http.client.HTTPException, ConnectionError, OSError):
                # The server closes keep-alive connections idle longer than idle_timeout.
                keep.close()
                keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                keep.request("GET", path)
                r = keep.getresponse()
            body, status, hdrs = r.read(), r.status, r.headers
    except Exception as e:
        fail(f"GET {path}: {e!r}")
    if status >= 500:
        fail(f"GET {path}: HTTP {status}")
    return body, hdrs

start = time.monotonic()
warmup = max(20.0, duration / 4)
samples, requests, silent = [], 0, []
next_sample = 0.0
with open(samples_path, "w") as out:
    out.write("seconds,rss_mib,open_fds,requests\n")
    while (now := time.monotonic() - start) < duration:
        get("/metrics"); get("/metrics", fresh=True)
        cursor, pages = None, 0
        while pages < 5:
            body, _ = get("/api/v1/findings?limit=500" + (f"&cursor={cursor}" if cursor else ""))
            cursor = __import__("json").loads(body)["next_cursor"]; pages += 1
            if not cursor: break
        _, h = get("/api/v1/findings?format=csv&limit=1000&source=big")
        get("/api/v1/sources"); get("/api/v1/summary"); get("/")
        get("/api/v1/accounts/demo/00u00001000")
        requests += 11 + pages
        # A few connections that never send anything: the header timeout must close them.
        silent = [s for s in silent if s.fileno() != -1]
        if len(silent) < 8:
            s = socket.create_connection(("127.0.0.1", port)); silent.append(s)
        if len(silent) >= 8:
            silent.pop(0).close()
        if now >= next_sample:
            rss, fds = sample()
            samples.append((now, rss, fds))
            out.write(f"{now:.1f},{rss:.1f},{fds},{requests}\n"); out.flush()
            next_sample = now + 5
        time.sleep(0.05)

for s in silent: s.close()
rss, fds = sample()
samples.append((time.monotonic() - start, rss, fds))
warm = [s for s in samples if s[0] <= warmup]
late = [s for s in samples if s[0] > warmup]
if len(warm) < 2 or len(late) < 2:
    fail(f"too short to judge: {len(samples)} samples")
last_min = [s for s in late if s[0] >= samples[-1][0] - 60] or late[-3:]
warm_rss = statistics.median(s[1] for s in warm)
last_rss = statistics.median(s[1] for s in last_min)
rss_bound = warm_rss * 1.25 + 16
warm_fds = max(s[2] for s in warm)
max_fds = max(s[2] for s in late)
fd_bound = warm_fds + 32
print(f"soak: {requests} requests in {samples[-1][0]:.0f} s; RSS warm-up median {warm_rss:.1f} MiB, "
      f"last-minute median {last_rss:.1f} MiB (bound {rss_bound:.1f}); open files warm-up max {warm_fds}, "
      f"later max {max_fds} (bound {fd_bound}); samples in {os.path.basename(samples_path)}")
if last_rss > rss_bound:
    fail(f"RSS grew from {warm_rss:.1f} to {last_rss:.1f} MiB (bound {rss_bound:.1f})")
if max_fds > fd_bound:
    fail(f"open files grew from {warm_fds} to {max_fds} (bound {fd_bound})")
PY
grep -q "panicked" "$WORK/serve.log" && { say "FAIL: the exporter logged a panic"; exit 1; }
say "passed"
