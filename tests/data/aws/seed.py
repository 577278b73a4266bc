#!/usr/bin/env python3
"""Seeds a fixed IAM account into moto for the aws_iam tests and the Prowler benchmark:
ten users with passwords, keys, MFA devices, groups and admin policies; with --serve, moto
runs in this process with backdated dates and a <root_account> row (see docs/aws-iam.md).

Usage:
    python seed.py http://127.0.0.1:PORT [--reset] [--report out.csv]
        seed a running moto (started with MOTO_IAM_LOAD_MANAGED_POLICIES=true); every date is
        "now" (moto has no backdating API); JSON summary on stdout
    python seed.py --serve [--port 0] [--summary FILE] [--moto-report] [--root-password-enabled true]
        start moto here, seed it with backdated data, print "MOTO_URL=http://127.0.0.1:PORT"
        on stdout once ready (the JSON summary goes to FILE, or stderr), serve until stdin
        closes or SIGTERM/SIGINT

Needs boto3 and moto[server] (cryptography comes with it, for the signing certificate).
Dummy credentials ("testing" unless AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are set), region
us-east-1, account 123456789012. Every name is fixed so tests can assert exact results.

Backdating (--serve only): moto's IAM clock (moto.iam.models.utcnow) is shifted while each
object is created, so users, keys, certificates and key "last used" dates get the ages below;
password_last_used is set on moto's user objects directly; the credential report gets a
<root_account> first row (moto has none) and the forms real AWS writes where moto differs:
N/A for password_last_changed without a password, N/A for the last_used_region/_service of an
unused key, the certificate date in cert_N_last_rotated (--moto-report keeps moto's own forms,
root row excepted). Root: password last used 3 days ago, virtual MFA (serial
arn:aws:iam::123456789012:mfa/root-account-mfa-device, listed by ListVirtualMFADevices), no
access keys; AccountMFAEnabled=1. These patches rely on moto 5.2.5's internals (.ci/run pins it).

Dataset (user -> what it has) [ages in --serve mode, days ago: c=user created, k=key created,
u=key last used, p=password last used]:
  alice        password, virtual MFA, 1 active key (used), group `admins` (AdministratorAccess)  [c400 k30 u2 p1]
  bob          password, no MFA, AdministratorAccess attached, 2 active keys never used         [c500 k200,k10 p100]
  carol        password, hardware MFA (serial GAHT12345678), IAMFullAccess attached             [c300 p50]
  dave         password, FIDO-shaped serial (arn:...:u2f/user/dave/...), group `readers`       [c200, never signed in]
  erin         password, no MFA, group `iam-admins` (IAMFullAccess + inline group policy *:*)   [c10, never signed in]
  frank        password, no MFA, 1 signing certificate, inline s3:GetObject policy (not admin)  [c400 cert400 p5]
  svc-deploy   no password, 1 active key + 1 inactive, customer-managed StarStar (v2 = *:*)     [c800 k700 u300, inactive k20]
  svc-inline   no password, 1 active key (used), inline user policy `everything` (*:*)          [c100 k100 u1]
  svc-ci       no password, 1 active key (used), customer-managed CiLimited, group `readers`    [c60 k60 u50]
  gina         no password, no keys, no MFA, nothing                                            [c1000]
"""
import argparse
import json
import os
import sys
import urllib.request

import boto3
from botocore.config import Config

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
IAMFULL = "arn:aws:iam::aws:policy/IAMFullAccess"
READONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"

STAR = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
NARROW = {"Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::bucket/*"}]}


def self_signed_pem(cn: str) -> str:
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def client(url, key=None, secret=None):
    return boto3.client(
        "iam", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=key or os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=secret or os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        config=Config(retries={"mode": "standard", "max_attempts": 3}))


def seed(url, at=lambda days_ago: None):
    """`at(n)` moves the server clock to n days ago (only effective with --serve)."""
    iam = client(url)
    out = {"users": {}, "groups": {}, "policies": {}}
    acct = "123456789012"

    def user(name, password=False, created=0):
        at(created)
        u = iam.create_user(UserName=name)["User"]
        if password:
            iam.create_login_profile(UserName=name, Password="Pa55word!-" + name, PasswordResetRequired=False)
        out["users"][name] = {"arn": u["Arn"], "password": password, "keys": [], "mfa": [],
                              "attached": [], "inline": [], "groups": [], "certs": 0}
        return name

    def key(name, active=True, use=False, created=0, used=0):
        at(created)
        k = iam.create_access_key(UserName=name)["AccessKey"]
        if not active:
            iam.update_access_key(UserName=name, AccessKeyId=k["AccessKeyId"], Status="Inactive")
        if use:
            # Any request signed with the key makes moto record access_key_N_last_used_date.
            at(used)
            client(url, k["AccessKeyId"], k["SecretAccessKey"]).get_user(UserName=name)
        out["users"][name]["keys"].append({"id": k["AccessKeyId"], "secret": k["SecretAccessKey"], "active": active, "used": use})

    def virtual_mfa(name):
        dev = iam.create_virtual_mfa_device(VirtualMFADeviceName=name + "-phone")["VirtualMFADevice"]
        # moto accepts any two codes; real AWS needs two consecutive valid TOTP codes.
        iam.enable_mfa_device(UserName=name, SerialNumber=dev["SerialNumber"],
                              AuthenticationCode1="123456", AuthenticationCode2="654321")
        out["users"][name]["mfa"].append({"serial": dev["SerialNumber"], "kind": "virtual"})

    def other_mfa(name, serial, kind):
        # A serial that is not a virtual device: moto stores it as a plain MFA device (real AWS
        # would need a real hardware token; FIDO keys can only be registered in the console).
        iam.enable_mfa_device(UserName=name, SerialNumber=serial,
                              AuthenticationCode1="123456", AuthenticationCode2="654321")
        out["users"][name]["mfa"].append({"serial": serial, "kind": kind})

    def attach(name, arn):
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
        out["users"][name]["attached"].append(arn)

    def inline(name, pname, doc):
        iam.put_user_policy(UserName=name, PolicyName=pname, PolicyDocument=json.dumps(doc))
        out["users"][name]["inline"].append(pname)

    def join(name, group):
        iam.add_user_to_group(UserName=name, GroupName=group)
        out["users"][name]["groups"].append(group)

    at(1000)
    # Customer-managed policies.
    star = iam.create_policy(PolicyName="StarStar", PolicyDocument=json.dumps(NARROW),
                             Description="v1 narrow, v2 (default) allows * on *")["Policy"]
    iam.create_policy_version(PolicyArn=star["Arn"], PolicyDocument=json.dumps(STAR), SetAsDefault=True)
    ci = iam.create_policy(PolicyName="CiLimited", PolicyDocument=json.dumps(NARROW))["Policy"]
    out["policies"] = {"StarStar": star["Arn"], "CiLimited": ci["Arn"]}

    # Groups.
    for g in ("admins", "iam-admins", "readers"):
        iam.create_group(GroupName=g)
        out["groups"][g] = {"attached": [], "inline": []}
    iam.attach_group_policy(GroupName="admins", PolicyArn=ADMIN)
    iam.attach_group_policy(GroupName="iam-admins", PolicyArn=IAMFULL)
    iam.put_group_policy(GroupName="iam-admins", PolicyName="group-star", PolicyDocument=json.dumps(STAR))
    iam.attach_group_policy(GroupName="readers", PolicyArn=READONLY)
    out["groups"]["admins"]["attached"].append(ADMIN)
    out["groups"]["iam-admins"]["attached"].append(IAMFULL)
    out["groups"]["iam-admins"]["inline"].append("group-star")
    out["groups"]["readers"]["attached"].append(READONLY)

    # Users.
    user("alice", password=True, created=400); virtual_mfa("alice"); key("alice", use=True, created=30, used=2)
    join("alice", "admins")
    user("bob", password=True, created=500); attach("bob", ADMIN); key("bob", created=200); key("bob", created=10)
    user("carol", password=True, created=300); other_mfa("carol", "GAHT12345678", "hardware"); attach("carol", IAMFULL)
    user("dave", password=True, created=200)
    other_mfa("dave", f"arn:aws:iam::{acct}:u2f/user/dave/fidosecuritykey-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "u2f")
    join("dave", "readers")
    user("erin", password=True, created=10); join("erin", "iam-admins")
    user("frank", password=True, created=400); inline("frank", "read-bucket", NARROW)
    iam.upload_signing_certificate(UserName="frank", CertificateBody=self_signed_pem("frank"))
    out["users"]["frank"]["certs"] = 1
    user("svc-deploy", created=800); key("svc-deploy", use=True, created=700, used=300)
    key("svc-deploy", active=False, created=20); attach("svc-deploy", star["Arn"])
    user("svc-inline", created=100); key("svc-inline", use=True, created=100, used=1)
    inline("svc-inline", "everything", STAR)
    user("svc-ci", created=60); key("svc-ci", use=True, created=60, used=50); attach("svc-ci", ci["Arn"])
    join("svc-ci", "readers")
    user("gina", created=1000)
    at(0)
    return out


# password_last_used in --serve mode, days ago (absent = never used -> "no_information").
PASSWORD_LAST_USED = {"alice": 1, "bob": 100, "carol": 50, "frank": 5}
ACCOUNT = "123456789012"


def serve(port, moto_report, root_password_enabled, summary=None):
    """Run moto in-process with a shiftable IAM clock, seed it, print the URL, serve."""
    import datetime
    import signal
    import threading

    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    from moto.server import ThreadedMotoServer
    import moto.iam.models as im

    shift = {"days": 0}
    real_utcnow = im.utcnow
    im.utcnow = lambda: real_utcnow() - datetime.timedelta(days=shift["days"])

    def at(days_ago):
        shift["days"] = days_ago

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, real_port = server.get_host_and_port()
    url = f"http://{host}:{real_port}"
    out = seed(url, at)

    backend = im.iam_backends[ACCOUNT]["aws"]
    now = real_utcnow()
    for name, days in PASSWORD_LAST_USED.items():
        # Whole seconds, as real AWS returns them (Prowler's console-unused check fails to parse
        # microseconds and drops every result).
        backend.users[name].password_last_used = (now - datetime.timedelta(days=days)).replace(microsecond=0)
    for name, u in out["users"].items():
        u["password_last_used_days_ago"] = PASSWORD_LAST_USED.get(name)

    # Root: virtual MFA device listed by ListVirtualMFADevices, AccountMFAEnabled=1.
    import types
    root_dev = im.VirtualMfaDevice(ACCOUNT, "us-east-1", "/root-account-mfa-device")
    root_dev.enable_date = now - datetime.timedelta(days=900)
    root_dev.user = types.SimpleNamespace(
        path="/", name="root", id=ACCOUNT, arn=f"arn:aws:iam::{ACCOUNT}:root",
        create_date=now - datetime.timedelta(days=1200), password_last_used=None, tags={})
    backend.virtual_mfa_devices[root_dev.serial_number] = root_dev
    backend.account_summary._account_mfa_enabled = 1

    fmt = "%Y-%m-%dT%H:%M:%S+00:00"
    root_row = ",".join([
        "<root_account>", f"arn:aws:iam::{ACCOUNT}:root", (now - datetime.timedelta(days=1200)).strftime(fmt),
        root_password_enabled, (now - datetime.timedelta(days=3)).strftime(fmt), "not_supported", "not_supported",
        "true", "false", "N/A", "N/A", "N/A", "N/A", "false", "N/A", "N/A", "N/A", "N/A",
        "false", "N/A", "false", "N/A"]) + "\n"
    original_to_csv = im.User.to_csv

    def aws_like_to_csv(user):
        f = original_to_csv(user).rstrip("\n").split(",")
        if f[3] == "false":
            f[4] = "N/A"      # password_last_used: N/A without a password
            f[5] = "N/A"      # password_last_changed
        for used, region, service in ((10, 11, 12), (15, 16, 17)):
            if f[used] == "N/A":
                f[region] = f[service] = "N/A"
            else:
                f[region], f[service] = "us-east-1", "iam"
        certs = list(user.signing_certificates.values())
        for i, (active, rotated) in enumerate(((18, 19), (20, 21))):
            if i < len(certs) and f[active] == "true":
                f[rotated] = certs[i].upload_date.strftime(fmt) if hasattr(certs[i].upload_date, "strftime") \
                    else str(certs[i].upload_date)
        return ",".join(f) + "\n"

    if not moto_report:
        im.User.to_csv = aws_like_to_csv
    original_report = im.IAMBackend.get_credential_report

    def report_with_root(self):
        text = original_report(self)
        header, _, rest = text.partition("\n")
        return header + "\n" + root_row + rest

    im.IAMBackend.get_credential_report = report_with_root
    out["root"] = {"mfa": "virtual", "serial": root_dev.serial_number, "password_last_used_days_ago": 3,
                   "access_keys": 0}
    out["url"] = url
    if summary:
        with open(summary, "w") as f:
            json.dump(out, f, indent=1)
    else:
        json.dump(out, sys.stderr, indent=1)
        print(file=sys.stderr, flush=True)
    print(f"MOTO_URL={url}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    server.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url", nargs="?")
    ap.add_argument("--serve", action="store_true", help="run moto in this process (backdated data)")
    ap.add_argument("--port", type=int, default=0, help="with --serve: port (0 = any free port)")
    ap.add_argument("--moto-report", action="store_true",
                    help="with --serve: keep moto's own report forms (the root row is still added)")
    ap.add_argument("--root-password-enabled", default="not_supported", choices=["not_supported", "true"],
                    help="with --serve: password_enabled of the <root_account> row. AWS documents "
                         "not_supported; Prowler reports root MFA only when it reads true or a root key is active")
    ap.add_argument("--summary", help="with --serve: write the JSON summary to this file")
    ap.add_argument("--reset", action="store_true", help="POST {url}/moto-api/reset first")
    ap.add_argument("--report", help="write GetCredentialReport's CSV to this file")
    a = ap.parse_args()
    if a.serve:
        return serve(a.port, a.moto_report, a.root_password_enabled, a.summary)
    if not a.url:
        ap.error("a URL, or --serve")
    if a.reset:
        urllib.request.urlopen(urllib.request.Request(a.url.rstrip("/") + "/moto-api/reset", data=b"", method="POST"))
    out = seed(a.url)
    if a.report:
        import time
        iam = client(a.url)
        for _ in range(20):
            if iam.generate_credential_report()["State"] == "COMPLETE":
                break
            time.sleep(0.2)
        with open(a.report, "wb") as f:
            f.write(iam.get_credential_report()["Content"])
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
