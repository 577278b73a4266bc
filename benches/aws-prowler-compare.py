#!/usr/bin/env python3
"""Prints Prowler's and the exporter's verdicts side by side, account by account, for
benches/aws-prowler.sh: Prowler's FAIL results per IAM user (and its group- and policy-level
results below), the exporter's findings per account from `collect --format json`.

Usage: aws-prowler-compare.py collect.json prowler.csv
"""
import collections
import csv
import json
import sys

SHORT = {
    "iam_root_mfa_enabled": "root-MFA",
    "iam_root_hardware_mfa_enabled": "root-HW-MFA",
    "iam_no_root_access_key": "root-keys",
    "iam_avoid_root_usage": "root-used",
    "iam_user_mfa_enabled_console_access": "console-MFA",
    "iam_user_hardware_mfa_enabled": "HW-MFA",
    "iam_rotate_access_key_90_days": "rotate-90",
    "iam_user_accesskey_unused": "key-unused-45",
    "iam_user_console_access_unused": "console-unused-45",
    "iam_user_two_active_access_key": "two-keys",
    "iam_user_no_setup_initial_access_key": "initial-key",
    "iam_user_administrator_access_policy": "AdminAccess-on-user",
    "iam_policy_attached_only_to_group_or_roles": "policy-on-user",
}


def account_of(uid):
    """The login of an ARN Prowler reports on, or None for groups and policies."""
    if uid.endswith(":root"):
        return "<root_account>"
    if ":user/" in uid:
        return uid.split(":user/", 1)[1].split("/")[-1]
    return None


def main():
    collect = json.load(open(sys.argv[1]))
    exporter = collections.defaultdict(set)
    for src in collect["sources"]:
        for f in src["findings"]:
            if f.get("login"):
                exporter[f["login"]].add(f["check"])
    prowler_fail = collections.defaultdict(set)
    prowler_seen = set()
    other = []
    for r in csv.DictReader(open(sys.argv[2]), delimiter=";"):
        acct = account_of(r["RESOURCE_UID"])
        if acct is None:
            other.append((r["CHECK_ID"], r["RESOURCE_NAME"], r["STATUS"]))
            continue
        prowler_seen.add(acct)
        if r["STATUS"] == "FAIL":
            prowler_fail[acct].add(SHORT.get(r["CHECK_ID"], r["CHECK_ID"]))
    accounts = sorted(set(exporter) | prowler_seen, key=lambda a: (a != "<root_account>", a))
    print("| account | Prowler FAIL | exporter findings |")
    print("|---|---|---|")
    for a in accounts:
        p = ", ".join(sorted(prowler_fail[a])) or ("PASS" if a in prowler_seen else "(no result)")
        e = ", ".join(sorted(exporter[a])) or "none"
        print(f"| {a} | {p} | {e} |")
    print()
    print("Prowler's group- and policy-level results:")
    for check, name, status in sorted(other):
        print(f"  {status:4} {check} {name}")
    tenant = [f["check"] for s in collect["sources"] for f in s["findings"] if not f.get("login")]
    print("exporter tenant findings:", ", ".join(tenant) or "none")


if __name__ == "__main__":
    main()
