#!/usr/bin/env bash
# End-to-end check of the shipped monitoring files against a real Prometheus and
# Alertmanager (issue 5). Called by .ci/run; runs alone too:  ci/e2e-prometheus.sh
#
# 1. Static checks: promtool check config / check rules / test rules, amtool check-config
#    and routing by severity, the Kubernetes PrometheusRule in sync with the rule files,
#    `kubectl kustomize` and `systemd-analyze verify` where those tools exist.
# 2. Starts, all on loopback ports with temporary data directories: the exporter on
#    examples/demo.toml, Alertmanager with deploy/alertmanager/alertmanager.yml, and
#    Prometheus (1 s scrape and evaluation interval) with the shipped rules, alerting to
#    that Alertmanager.
# 3. Through their HTTP APIs, fails unless:
#    (a) the exporter target is up;
#    (b) every PromQL expression of every dashboard panel and template variable returns at
#        least one series (template variables substituted), and every identity_posture_*
#        metric the exporter exposes appears in a dashboard;
#    (c) the alerts the demo data must trigger are firing in Prometheus and present in
#        Alertmanager's /api/v2/alerts under the receiver for their severity, and those it
#        must not trigger are absent; every alert's view_url is an absolute link built
#        from server.external_url that opens a page of the findings view.
#
# Installs nothing: it needs promtool, prometheus, prometheus-alertmanager (or
# alertmanager) and python3 (stdlib only) on PATH; amtool is used when present. It builds
# target/debug/identity-posture-exporter with `cargo build` if it is missing (override
# with IPE_E2E_EXPORTER=path). Every process it starts is stopped on exit; IPE_E2E_KEEP=1
# keeps the temporary directory (logs, generated configs) for a post-mortem.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf 'e2e: %s\n' "$*"; }
die() { printf 'e2e: FAIL: %s\n' "$*" >&2; exit 1; }

# ----------------------------------------------------------------------------- tools
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH ($2)"; }
need python3 "needed for the JSON checks"
need promtool "Debian package prometheus"
need prometheus "Debian package prometheus"
ALERTMANAGER=$(command -v prometheus-alertmanager || command -v alertmanager || true)
[ -n "$ALERTMANAGER" ] || die "prometheus-alertmanager (or alertmanager) not found on PATH (Debian package prometheus-alertmanager)"
AMTOOL=$(command -v amtool || true)
say "$(promtool --version 2>&1 | head -1)"
say "$("$ALERTMANAGER" --version 2>&1 | head -1)"

EXPORTER=${IPE_E2E_EXPORTER:-target/debug/identity-posture-exporter}
KEEP=${IPE_E2E_KEEP:-}
# The exporter refuses IPE_ variables that configure nothing: these are the script's own.
unset IPE_E2E_EXPORTER IPE_E2E_KEEP
if [ ! -x "$EXPORTER" ]; then
  say "building $EXPORTER (cargo build)"
  cargo build --locked --quiet
fi
[ -x "$EXPORTER" ] || die "$EXPORTER missing after cargo build"
EXPORTER=$(cd "$(dirname "$EXPORTER")" && pwd)/$(basename "$EXPORTER")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ipe-e2e.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] || continue
      printf '\n----- last lines of %s -----\n' "$(basename "$log")" >&2
      tail -n 25 "$log" >&2
    done
  fi
  if [ "$KEEP" = 1 ]; then
    say "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------------------------- 1. static checks
say "promtool check rules"
promtool check rules deploy/prometheus/rules.yml deploy/prometheus/alerts.yml >"$WORK/promtool.out" \
  || { cat "$WORK/promtool.out"; die "promtool check rules"; }
say "promtool test rules"
(cd deploy/prometheus && promtool test rules alerts.test.yml) >"$WORK/promtool.out" 2>&1 \
  || { cat "$WORK/promtool.out"; die "promtool test rules"; }
say "promtool check config (shipped prometheus.yml)"
promtool check config deploy/prometheus/prometheus.yml >"$WORK/promtool.out" 2>&1 \
  || { cat "$WORK/promtool.out"; die "promtool check config deploy/prometheus/prometheus.yml"; }

if [ -n "$AMTOOL" ]; then
  say "amtool check-config and routing by severity"
  "$AMTOOL" check-config deploy/alertmanager/alertmanager.yml >"$WORK/amtool.out" 2>&1 \
    || { cat "$WORK/amtool.out"; die "amtool check-config"; }
  for pair in critical:security-oncall warning:security-team info:security-digest; do
    got=$("$AMTOOL" config routes test --config.file=deploy/alertmanager/alertmanager.yml \
            "severity=${pair%%:*}" alertname=IdentityPostureX source=demo 2>/dev/null)
    [ "$got" = "${pair#*:}" ] || die "severity=${pair%%:*} routes to '$got', expected '${pair#*:}'"
  done
else
  say "amtool not found: skipping amtool check-config (Alertmanager still loads the file below)"
fi

say "Kubernetes PrometheusRule matches the rule files"
deploy/kubernetes/generate-prometheusrule.sh | diff -u deploy/kubernetes/prometheusrule.yaml - \
  || die "deploy/kubernetes/prometheusrule.yaml is out of date: run deploy/kubernetes/generate-prometheusrule.sh > deploy/kubernetes/prometheusrule.yaml"

if command -v kubectl >/dev/null 2>&1; then
  say "kubectl kustomize deploy/kubernetes"
  kubectl kustomize deploy/kubernetes >"$WORK/kustomize.out" 2>&1 \
    || { cat "$WORK/kustomize.out"; die "kubectl kustomize deploy/kubernetes"; }
  say "kubectl kustomize deploy/kubernetes-two-shards (two Deployments, one source each, one ConfigMap)"
  kubectl kustomize deploy/kubernetes-two-shards >"$WORK/kustomize-shards.out" 2>&1 \
    || { cat "$WORK/kustomize-shards.out"; die "kubectl kustomize deploy/kubernetes-two-shards"; }
  [ "$(grep -c '^kind: Deployment$' "$WORK/kustomize-shards.out")" = 2 ] \
    && [ "$(grep -c '^kind: ConfigMap$' "$WORK/kustomize-shards.out")" = 1 ] \
    && grep -A1 'name: IPE_SOURCES' "$WORK/kustomize-shards.out" | grep -q 'value: okta-prod' \
    && grep -A1 'name: IPE_SOURCES' "$WORK/kustomize-shards.out" | grep -q 'value: entra-prod' \
    || { cat "$WORK/kustomize-shards.out"; die "deploy/kubernetes-two-shards: expected two Deployments (IPE_SOURCES okta-prod, entra-prod) over one ConfigMap"; }
fi
if command -v systemd-analyze >/dev/null 2>&1; then
  say "systemd-analyze verify deploy/systemd/identity-posture-exporter.service"
  # verify wants ExecStart= to exist: point it at the binary under test, in a copy.
  mkdir -p "$WORK/systemd"
  sed "s#/usr/local/bin/identity-posture-exporter#$EXPORTER#" deploy/systemd/identity-posture-exporter.service \
    >"$WORK/systemd/identity-posture-exporter.service"
  systemd-analyze verify "$WORK/systemd/identity-posture-exporter.service" >"$WORK/systemd.out" 2>&1 \
    || { cat "$WORK/systemd.out"; die "systemd-analyze verify"; }
  [ ! -s "$WORK/systemd.out" ] || { cat "$WORK/systemd.out"; die "systemd-analyze verify printed warnings"; }
fi

# ----------------------------------------------------------------------------- 2. start everything
read -r EXPORTER_PORT PROM_PORT AM_PORT < <(python3 - <<'PY'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)
EXPORTER_URL=http://127.0.0.1:$EXPORTER_PORT
PROM_URL=http://127.0.0.1:$PROM_PORT
AM_URL=http://127.0.0.1:$AM_PORT

fetch() { # url: body to stdout, non-zero unless HTTP 2xx
  python3 -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=5).read())' "$1"
}
wait_http() { # url, seconds, what
  local i
  for i in $(seq $(($2 * 4))); do
    if fetch "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  die "$3 did not answer $1 within $2 s"
}

say "starting the exporter on $EXPORTER_URL (examples/demo.toml)"
"$EXPORTER" --config examples/demo.toml --listen "127.0.0.1:$EXPORTER_PORT" >"$WORK/exporter.log" 2>&1 &
PIDS+=($!)
wait_http "$EXPORTER_URL/-/ready" 60 "the exporter"
fetch "$EXPORTER_URL/metrics" >"$WORK/exporter.metrics" || die "GET $EXPORTER_URL/metrics failed"
promtool check metrics <"$WORK/exporter.metrics" >"$WORK/promtool.out" 2>&1 \
  || { cat "$WORK/promtool.out"; die "promtool check metrics on the exporter's /metrics"; }

say "starting Alertmanager on $AM_URL (deploy/alertmanager/alertmanager.yml)"
"$ALERTMANAGER" --config.file="$ROOT/deploy/alertmanager/alertmanager.yml" \
  --storage.path="$WORK/alertmanager" --web.listen-address="127.0.0.1:$AM_PORT" \
  --cluster.listen-address= --log.level=warn >"$WORK/alertmanager.log" 2>&1 &
PIDS+=($!)
wait_http "$AM_URL/-/ready" 30 "Alertmanager"

# The shipped alerts wait 5 minutes to 1 hour (`for:`) before they fire, far longer than a
# CI run. Prometheus gets a copy of alerts.yml with every `for:` set to 0s; the shipped
# file is untouched and its `for:` durations are covered by alerts.test.yml.
mkdir -p "$WORK/rules"
cp deploy/prometheus/rules.yml "$WORK/rules/rules.yml"
sed -E 's/^([[:space:]]+)for:[[:space:]]*[0-9a-z]+[[:space:]]*$/\1for: 0s/' deploy/prometheus/alerts.yml >"$WORK/rules/alerts.yml"
[ "$(grep -cE '^[[:space:]]+for: 0s$' "$WORK/rules/alerts.yml")" = "$(grep -c -- '- alert:' deploy/prometheus/alerts.yml)" ] \
  || die "could not shorten every for: in the copy of alerts.yml"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $WORK/rules/rules.yml
  - $WORK/rules/alerts.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$AM_PORT"]
scrape_configs:
  - job_name: identity-posture-exporter
    static_configs:
      - targets: ["127.0.0.1:$EXPORTER_PORT"]
EOF
promtool check config "$WORK/prometheus.yml" >"$WORK/promtool.out" 2>&1 \
  || { cat "$WORK/promtool.out"; die "promtool check config (e2e prometheus.yml)"; }

say "starting Prometheus on $PROM_URL"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
wait_http "$PROM_URL/-/ready" 30 "Prometheus"

# ----------------------------------------------------------------------------- 3. API checks
say "checking through the HTTP APIs"
# In the background with `wait`, so that an interrupt reaches the cleanup trap at once.
python3 - "$PROM_URL" "$AM_URL" "$ROOT" "$EXPORTER_URL" <<'PY' &
import json, re, sys, time, urllib.parse, urllib.request

PROM, AM, ROOT, EXPORTER = sys.argv[1:5]
# examples/demo.toml's server.external_url: alert links must be absolute and built from it.
EXTERNAL_URL = "http://localhost:9863"
JOB = "identity-posture-exporter"
SOURCE = "demo"

# What the demo organisation (examples/demo.toml) must and must not trigger. Every alert in
# alerts.yml is in exactly one of these lists; extra label matchers are checked too.
MUST_FIRE = {
    "IdentityPosturePrivilegedAccountWithoutMFA": {},
    "IdentityPosturePrivilegedAccountWeakMFA": {},
    "IdentityPostureMFACoverageLow": {},
    "IdentityPostureMFAPolicyGap": {},
    "IdentityPostureDormantPrivilegedAccounts": {},
    "IdentityPostureLeaverStillActive": {},
    "IdentityPostureRoleNotAllowed": {},
    "IdentityPostureSuperAdminCountOutOfRange": {"check": "tenant.too_many_super_admins"},
    "IdentityPostureUnrotatedCredentials": {"credential_type": "access_key"},
    "IdentityPostureCredentialsExpired": {},
    "IdentityPostureCredentialsExpiring": {},
    # The demo's sign-in event stream (examples/demo-events.ndjson): every attack ends just
    # before the first read, so its detection is open when the exporter starts; the new
    # country arrives 30 s later, at the second poll.
    "IdentityPosturePasswordSpray": {},
    "IdentityPostureBruteForce": {},
    "IdentityPostureMFAFatigue": {},
    "IdentityPostureImpossibleTravel": {},
    "IdentityPostureNewCountrySignIn": {},
    "IdentityPostureInactiveAccountSignIn": {},
    "IdentityPosturePrivilegedSignInWithoutMFA": {},
}
MUST_NOT_FIRE = {
    "IdentityPostureSourceDown": {},
    "IdentityPostureDataStale": {},
    "IdentityPostureSourceDataUnavailable": {},
    "IdentityPostureExporterAbsent": {},
    # The demo's brute force ends without a success; its event stream reads fine.
    "IdentityPostureBruteForceSucceeded": {},
    "IdentityPostureActivityStreamDown": {},
    # The demo has 5 super admins: too many, never too few.
    "IdentityPostureSuperAdminCountOutOfRange": {"check": "tenant.too_few_super_admins"},
}
RECEIVER = {"critical": "security-oncall", "warning": "security-team", "info": "security-digest"}

failures = []
def fail(msg):
    failures.append(msg)
    print(f"e2e: FAIL: {msg}", file=sys.stderr)

def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)

def prom(path, **params):
    body = get(f"{PROM}{path}?{urllib.parse.urlencode(params)}")
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {body}")
    return body["data"]

def instant(expr):
    return prom("/api/v1/query", query=expr)["result"]

def wait_for(what, probe, seconds):
    deadline = time.time() + seconds
    while True:
        last = probe()
        if last is True:
            return True
        if time.time() > deadline:
            fail(f"{what} (after {seconds} s: {last})")
            return False
        time.sleep(0.5)

# ---- (a) the scrape target is up, and the demo source has been polled.
def target_up():
    ts = [t for t in prom("/api/v1/targets")["activeTargets"] if t["labels"].get("job") == JOB]
    if ts and all(t["health"] == "up" for t in ts):
        return True
    return [(t["scrapeUrl"], t["health"], t.get("lastError")) for t in ts] or "no target"
wait_for("(a) exporter target up", target_up, 30)
wait_for("(a) up{job=...} == 1 and the demo source polled",
         lambda: bool(instant(f'up{{job="{JOB}"}} == 1')) and
                 bool(instant(f'identity_posture_source_up{{source="{SOURCE}"}} == 1')) or "not yet", 30)
# rate() and increase() need two samples inside their window; let a few scrapes land.
time.sleep(5)
if failures:
    sys.exit(1)
print("e2e: (a) target up")

# ---- (b) every dashboard expression returns at least one series.
SUBST = [
    (r"\$\{source(:[a-z]+)?\}|\[\[source\]\]|\$source\b", ".+"),
    (r"\$\{__rate_interval\}|\$__rate_interval\b", "1m"),
    (r"\$\{__interval\}|\$__interval\b", "15s"),
    (r"\$\{__range\}|\$__range\b", "1h"),
    (r"\$\{__range_s\}|\$__range_s\b", "3600"),
]
def substitute(expr):
    for pat, rep in SUBST:
        expr = re.sub(pat, rep, expr)
    left = re.findall(r"\$\{?[A-Za-z_]\w*", expr)   # $1, $2 of label_replace are fine
    if left:
        raise ValueError(f"unsubstituted template variable(s) {left}")
    return expr

def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))

used_text = ""
checked = 0
for name in ("identity-posture-overview.json", "identity-posture-source.json",
             "identity-posture-auth-health.json"):
    path = f"{ROOT}/grafana/dashboards/{name}"
    d = json.load(open(path))
    used_text += json.dumps(d)
    ids = [p["id"] for p in walk(d["panels"])]
    if len(ids) != len(set(ids)):
        fail(f"{name}: duplicate panel ids")
    names = [v["name"] for v in d["templating"]["list"]]
    if names[:2] != ["datasource", "source"]:
        fail(f"{name}: template variables are {names}, expected datasource and source first")
    queries = []
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            queries.append((f"variable ${v['name']}", q))
    for p in walk(d["panels"]):
        if p["type"] == "row":
            continue
        if not p.get("description"):
            fail(f"{name}: panel {p['title']!r} has no description")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"{name}: panel {p['title']!r} does not use the $datasource variable")
        if not p.get("targets"):
            fail(f"{name}: panel {p['title']!r} has no query")
        for t in p.get("targets", []):
            queries.append((f"panel {p['title']!r} query {t['refId']}", t["expr"]))
    for where, q in queries:
        checked += 1
        try:
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q, re.S)
            if m:
                series = instant(substitute(m.group(1)))
                series = [s for s in series if m.group(2) in s["metric"]]
            else:
                series = instant(substitute(q))
        except Exception as e:  # a PromQL error is a failure like an empty result
            fail(f"(b) {name}: {where}: {e}")
            continue
        if not series:
            fail(f"(b) {name}: {where} returned no series: {q}")
print(f"e2e: (b) {checked} dashboard and variable queries checked")

exposed = [n for n in prom("/api/v1/label/__name__/values") if n.startswith("identity_posture_")]
for n in exposed:
    if n not in used_text:
        fail(f"(b) metric {n} is exposed but appears in no dashboard")

# ---- (c) alerts: firing in Prometheus, present in Alertmanager, the others absent.
alerts_yml = open(f"{ROOT}/deploy/prometheus/alerts.yml").read()
defined = set(re.findall(r"^\s*- alert:\s*(\S+)", alerts_yml, re.M))
classified = set(MUST_FIRE) | set(MUST_NOT_FIRE)
if defined != classified:
    fail(f"(c) alerts.yml and this script disagree: unclassified {sorted(defined - classified)}, "
         f"unknown {sorted(classified - defined)}")

def matches(labels, name, extra):
    return labels.get("alertname") == name and all(labels.get(k) == v for k, v in extra.items())

def prom_alerts():
    return prom("/api/v1/alerts")["alerts"]

def all_firing():
    got = prom_alerts()
    missing = [n for n, extra in MUST_FIRE.items()
               if not any(matches(a["labels"], n, extra) and a["state"] == "firing" for a in got)]
    return True if not missing else f"not firing: {missing}"
wait_for("(c) expected alerts firing in Prometheus", all_firing, 90)

anchors = set()
for line in open(f"{ROOT}/docs/alerts.md"):
    m = re.match(r"#+\s+(.*)", line)
    if m:
        a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        anchors.add(a)

for a in prom_alerts():
    lab, ann = a["labels"], a["annotations"]
    for key in ("summary", "description", "runbook_url"):
        if not ann.get(key):
            fail(f"(c) {lab['alertname']}: no {key} annotation")
    text = ann.get("summary", "") + " " + ann.get("description", "")
    if "<no value>" in text or "{{" in text:
        fail(f"(c) {lab['alertname']}: template not rendered: {text}")
    if lab.get("source") and lab["source"] not in ann.get("summary", "") + ann.get("description", ""):
        fail(f"(c) {lab['alertname']}: annotations do not name the source {lab['source']}")
    view = ann.get("view_url", "")
    if not view.startswith(EXTERNAL_URL + "/"):
        fail(f"(c) {lab['alertname']}: view_url {view!r} is not an absolute link built from server.external_url")
    else:
        try:
            with urllib.request.urlopen(EXPORTER + view[len(EXTERNAL_URL):], timeout=10) as r:
                page = r.read().decode()
            if 'class="error"' in page:
                fail(f"(c) {lab['alertname']}: view_url {view} shows an error")
        except Exception as e:
            fail(f"(c) {lab['alertname']}: view_url {view} does not open: {e}")
    anchor = ann.get("runbook_url", "").partition("#")[2]
    if anchor not in anchors:
        fail(f"(c) {lab['alertname']}: runbook_url anchor #{anchor} is not a heading in docs/alerts.md")
    if lab.get("severity") not in RECEIVER:
        fail(f"(c) {lab['alertname']}: severity {lab.get('severity')!r} has no route")

def am_alerts():
    return get(f"{AM}/api/v2/alerts?active=true&silenced=true&inhibited=true")

def all_in_am():
    got = am_alerts()
    missing = [n for n, extra in MUST_FIRE.items() if not any(matches(a["labels"], n, extra) for a in got)]
    return True if not missing else f"missing: {missing}"
wait_for("(c) expected alerts present in Alertmanager /api/v2/alerts", all_in_am, 30)

# Routing by severity, as the running Alertmanager computed it.
for g in get(f"{AM}/api/v2/alerts/groups"):
    for a in g["alerts"]:
        want = RECEIVER.get(a["labels"].get("severity"))
        if g["receiver"]["name"] != want:
            fail(f"(c) {a['labels']['alertname']} (severity {a['labels'].get('severity')}) went to "
                 f"receiver {g['receiver']['name']}, expected {want}")

# Give the quiet alerts a few more evaluations to show up if they were going to.
time.sleep(3)
pa, aa = prom_alerts(), am_alerts()
for n, extra in MUST_NOT_FIRE.items():
    for a in pa:
        if matches(a["labels"], n, extra):
            fail(f"(c) {n} {extra or ''} must not fire on the demo, but is {a['state']} in Prometheus: {a['labels']}")
    for a in aa:
        if matches(a["labels"], n, extra):
            fail(f"(c) {n} {extra or ''} must not fire on the demo, but is in Alertmanager: {a['labels']}")

firing = sorted({a["labels"]["alertname"] for a in pa if a["state"] == "firing"})
print(f"e2e: (c) {len(firing)} alerts firing in Prometheus and Alertmanager: {', '.join(firing)}")
sys.exit(1 if failures else 0)
PY
PIDS+=($!)
wait $! || die "the API checks failed (messages above)"
say "passed"
