#!/usr/bin/env bash
# Prowler's IAM checks and the exporter's `collect` (aws_iam source) on the same seeded moto
# account, one after the other in one run: wall and CPU time of each from outside
# (/usr/bin/time -v), the ratio, and both verdicts account by account (BENCHMARKS.md).
#
# Needs TEST_MOTO_VENV (a virtualenv with moto[server]==5.2.5 and boto3, as .ci/run makes),
# PROWLER (a prowler executable: `pip install prowler` into its own virtualenv; it is not part
# of CI) and a built binary (BIN, default target/release/identity-posture-exporter).
# Usage: PROWLER=/path/to/bin/prowler TEST_MOTO_VENV=... benches/aws-prowler.sh [collect runs, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
BIN=${BIN:-target/release/identity-posture-exporter}
OUT=${OUT:-target/aws-prowler-bench}
: "${TEST_MOTO_VENV:?set TEST_MOTO_VENV to a virtualenv with moto[server] (see .ci/run)}"
: "${PROWLER:?set PROWLER to a prowler executable (pip install prowler)}"
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 2; }

# Prowler 5.x check ids for the topics the aws_iam source covers (MFA, root, key rotation,
# unused credentials, admin policies); the privilege-escalation checks are left out (they
# fail to parse their own action list in 5.46 and pass everything).
CHECKS=(iam_root_mfa_enabled iam_root_hardware_mfa_enabled iam_no_root_access_key iam_avoid_root_usage
  iam_user_mfa_enabled_console_access iam_user_hardware_mfa_enabled iam_rotate_access_key_90_days
  iam_user_accesskey_unused iam_user_console_access_unused iam_user_two_active_access_key
  iam_user_no_setup_initial_access_key iam_user_administrator_access_policy
  iam_group_administrator_access_policy iam_administrator_access_with_mfa
  iam_aws_attached_policy_no_administrative_privileges
  iam_customer_attached_policy_no_administrative_privileges
  iam_inline_policy_no_administrative_privileges iam_policy_attached_only_to_group_or_roles)

rm -rf "$OUT"; mkdir -p "$OUT"
mkfifo "$OUT/moto.stdin"
exec 3<>"$OUT/moto.stdin"          # held open: the seed serves until its stdin closes
"$TEST_MOTO_VENV/bin/python" tests/data/aws/seed.py --serve --summary "$OUT/seed.json" \
  <"$OUT/moto.stdin" >"$OUT/moto.out" 2>"$OUT/moto.log" &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true; wait $MOTO_PID 2>/dev/null || true; exec 3>&-' EXIT
for _ in $(seq 1 360); do
  grep -q '^MOTO_URL=' "$OUT/moto.out" 2>/dev/null && break
  kill -0 $MOTO_PID 2>/dev/null || { cat "$OUT/moto.log" >&2; exit 1; }
  sleep 0.5
done
URL=$(sed -n 's/^MOTO_URL=//p' "$OUT/moto.out")
[ -n "$URL" ] || { echo "moto not ready" >&2; exit 1; }
echo "moto seeded at $URL"

cat >"$OUT/ipe.toml" <<TOML
[[sources]]
name = "aws-moto"
type = "aws_iam"
endpoint_url = "$URL"
TOML
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

# "wall cpu" of one /usr/bin/time -v file.
times() {
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); w = 0; for (i = 1; i <= n; i++) w = w * 60 + p[i] }
              /User time/ { u = $2 } /System time/ { s = $2 }
              END { printf "%.3f %.3f\n", w, u + s }' "$1"
}

# One warm-up collect (moto's first GenerateCredentialReport says STARTED), then RUNS timed.
"$BIN" collect --config "$OUT/ipe.toml" --format json >"$OUT/collect.json"
: >"$OUT/collect.runs"
for i in $(seq 1 "$RUNS"); do
  /usr/bin/time -v -o "$OUT/collect.$i.time" "$BIN" collect --config "$OUT/ipe.toml" --format json >"$OUT/collect.json"
  times "$OUT/collect.$i.time" >>"$OUT/collect.runs"
done

AWS_ENDPOINT_URL="$URL" /usr/bin/time -v -o "$OUT/prowler.time" "$PROWLER" aws --checks "${CHECKS[@]}" \
  --region us-east-1 -M csv -o "$OUT/prowler" -F prowler --no-banner --log-level ERROR -z \
  >"$OUT/prowler.log" 2>&1
read -r P_WALL P_CPU < <(times "$OUT/prowler.time")
read -r C_WALL C_CPU < <(sort -n "$OUT/collect.runs" | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')

echo
echo "collect runs (wall s, cpu s): $(tr '\n' ';' <"$OUT/collect.runs")"
printf '| | wall s | CPU s (user+sys) |\n|---|---|---|\n'
printf '| Prowler, %d IAM checks | %.2f | %.2f |\n' "${#CHECKS[@]}" "$P_WALL" "$P_CPU"
printf '| exporter `collect` (median of %d) | %.3f | %.3f |\n' "$RUNS" "$C_WALL" "$C_CPU"
awk -v pw="$P_WALL" -v cw="$C_WALL" -v pc="$P_CPU" -v cc="$C_CPU" \
  'BEGIN { printf "| ratio Prowler / exporter | **%.0f×** | %.0f× |\n", pw / cw, pc / (cc > 0 ? cc : 0.001) }'
echo
"$TEST_MOTO_VENV/bin/python" benches/aws-prowler-compare.py "$OUT/collect.json" "$OUT"/prowler/prowler.csv
