#!/usr/bin/env python3
"""Walks the findings view in a real headless Chromium, driven over W3C WebDriver
(chromedriver), python3 standard library only. Called by ci/browser-test.sh.

landing page -> source page -> check (filtered findings table) -> account page, then back
through the browser history to the landing page; then a check with no findings on the demo
(its empty state) and an account the demo does not have (404 and its message). On every page
it takes a screenshot and fails on an error message or an empty state where the demo must
have data (and on their absence where they are expected), a browser console error, or a
screenshot that is blank.

usage: browser-walk.py EXPORTER_URL CHROMEDRIVER_URL SCREENSHOT_DIR USER_DATA_DIR
"""
import base64
import json
import os
import struct
import sys
import urllib.error
import urllib.request
import zlib

BASE, DRIVER, SHOTS, PROFILE = sys.argv[1:5]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
failures = []


def fail(msg):
    failures.append(msg)
    print(f"browser: FAIL: {msg}", file=sys.stderr)


def wd(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{DRIVER}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["value"]
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {path}: {e.code} {e.read()[:300]!r}") from None


session = wd("POST", "/session", {"capabilities": {"alwaysMatch": {
    "browserName": "chrome",
    "goog:loggingPrefs": {"browser": "ALL"},
    "goog:chromeOptions": {
        "binary": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1600", f"--user-data-dir={PROFILE}"],
    },
}}})["sessionId"]
S = f"/session/{session}"


def find(css, many=False):
    if many:
        return [e[ELEMENT] for e in wd("POST", f"{S}/elements", {"using": "css selector", "value": css})]
    try:
        return wd("POST", f"{S}/element", {"using": "css selector", "value": css})[ELEMENT]
    except RuntimeError:
        return None


def text(el):
    return wd("GET", f"{S}/element/{el}/text")


def url():
    return wd("GET", f"{S}/url")


def png_is_blank(data):
    """True when every pixel row of the PNG is one colour (a blank page)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return True
    pos, idat, width, height, colour = 8, b"", 0, 0, 6
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, _, colour = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw = zlib.decompress(idat)
    bpp = {2: 3, 6: 4}.get(colour, 4)
    stride = width * bpp + 1
    distinct = set()
    # Filter bytes make raw rows differ even for identical pixels; sample unfiltered-ish
    # variety instead: distinct row payloads across the image. Every row: a short page
    # (an error, an empty state) has its text in a band of a few dozen rows at the top.
    for y in range(height):
        distinct.add(raw[y * stride + 1:(y + 1) * stride])
        if len(distinct) > 20:
            return False
    return True


def check_page(name, must_have, expect_empty=False, expect_error=None):
    """Screenshot, then the checks every page gets. `expect_empty`: the page must show its
    empty state (`.empty`); `expect_error`: the page must show this error (`.error`), and
    the browser's console line for the page's own 404 is expected too."""
    shot = base64.b64decode(wd("GET", f"{S}/screenshot"))
    path = os.path.join(SHOTS, f"{name}.png")
    with open(path, "wb") as f:
        f.write(shot)
    if png_is_blank(shot):
        fail(f"{name}: screenshot {path} is blank")
    body = text(find("body"))
    errors = [text(el) for el in find(".error", many=True)]
    if expect_error is None:
        for e in errors:
            fail(f"{name}: error shown on the page: {e!r}")
    elif not any(expect_error in e for e in errors):
        fail(f"{name}: expected the error {expect_error!r}, page shows {errors!r}")
    empties = [text(el) for el in find(".empty", many=True)]
    if not expect_empty:
        for e in empties:
            fail(f"{name}: empty state on the demo: {e!r}")
    elif not empties:
        fail(f"{name}: expected an empty state, none shown")
    for needle in must_have:
        if needle not in body:
            fail(f"{name}: page does not show {needle!r}")
    for path_ in ("/se/log", "/log"):
        try:
            logs = wd("POST", f"{S}{path_}", {"type": "browser"})
            break
        except RuntimeError:
            logs = []
    for entry in logs:
        if entry.get("level") == "SEVERE":
            msg = entry.get("message", "")
            if expect_error is not None and "status of 404" in msg:
                continue  # the page's own 404, asserted above
            fail(f"{name}: browser console error: {msg}")
    print(f"browser: {name}: {url()} ok ({len(shot)} bytes screenshot)")


try:
    # 1. Landing page: the posture overview.
    wd("POST", f"{S}/url", {"url": f"{BASE}/"})
    landing = url()
    if "Overview" not in wd("GET", f"{S}/title"):
        fail("landing: title is not the overview")
    check_page("1-landing", ["demo", "Accounts without MFA", "Compliance", "Last poll"])

    # 2. The source.
    link = find("section.source h2 a")
    if not link:
        raise RuntimeError("landing: no link to the source")
    wd("POST", f"{S}/element/{link}/click", {})
    if "source?name=demo" not in url():
        fail(f"source: clicked into {url()}")
    check_page("2-source", ["Source demo", "Every check", "mfa.missing"])
    source_url = url()

    # 3. One check: the filtered findings table.
    link = None
    for el in find("table.all-checks td a", many=True):
        if text(el) == "Accounts without MFA":
            link = el
            break
    if not link:
        raise RuntimeError("source: no link to the mfa.missing findings")
    wd("POST", f"{S}/element/{link}/click", {})
    check_url = url()
    if "findings?" not in check_url or "check=mfa.missing" not in check_url:
        fail(f"check: clicked into {check_url}")
    total = find(".summary .total")
    n = int(text(total)) if total else 0
    if n <= 0:
        fail("check: the findings table counts no finding")
    rows = find("table.findings tr", many=True)
    if len(rows) - 1 != min(n, 50):
        fail(f"check: {len(rows) - 1} rows for {n} findings")
    check_page("3-check", ["mfa.missing", "no active MFA factor", "CSV", "JSON"])

    # 4. The first account.
    acct = find("table.findings a.account")
    login = text(acct)
    wd("POST", f"{S}/element/{acct}/click", {})
    if "account?" not in url():
        fail(f"account: clicked into {url()}")
    check_page("4-account", [login, "Attributes", "MFA factors", "Credentials", "Roles",
                             "Findings", "mfa.missing"])
    remediation = [text(e) for e in find("td.remediation", many=True)]
    if not remediation or not all(r.strip() for r in remediation):
        fail("account: a finding without remediation text")

    # 5. And back, through the browser's history.
    for name, want in (("back-to-check", check_url), ("back-to-source", source_url),
                       ("back-to-landing", landing)):
        wd("POST", f"{S}/back", {})
        if url() != want:
            fail(f"{name}: at {url()}, expected {want}")
        check_page(name, [])

    # 6. A check without findings on the demo, from the source page: the filtered table's
    # empty state, not an error.
    wd("POST", f"{S}/url", {"url": source_url})
    link = None
    for el in find("table.all-checks td a", many=True):
        if text(el) == "Too few super admins":
            link = el
            break
    if not link:
        raise RuntimeError("source: no link to the tenant.too_few_super_admins findings")
    wd("POST", f"{S}/element/{link}/click", {})
    empty_url = url()
    if "check=tenant.too_few_super_admins" not in empty_url:
        fail(f"empty check: clicked into {empty_url}")
    total = find(".summary .total")
    if not total or text(total) != "0":
        fail(f"empty check: total is {text(total) if total else None!r}, expected 0")
    if find("table.findings"):
        fail("empty check: a findings table is shown for no findings")
    check_page("6-empty-check", ["tenant.too_few_super_admins", "0 findings on 0 accounts",
                                 "No findings match this filter."], expect_empty=True)

    # 7. An account the source does not have: 404, said on the page, with a way back.
    missing = f"{BASE}/account?source=demo&login=nobody%40example.invalid"
    try:
        with urllib.request.urlopen(missing, timeout=10) as r:
            fail(f"unknown account: HTTP {r.status}, expected 404")
    except urllib.error.HTTPError as e:
        if e.code != 404:
            fail(f"unknown account: HTTP {e.code}, expected 404")
    wd("POST", f"{S}/url", {"url": missing})
    if not wd("GET", f"{S}/title").startswith("Error"):
        fail(f"unknown account: title {wd('GET', f'{S}/title')!r}")
    check_page("7-unknown-account", ["404", "Back to the overview"],
               expect_error='no account "nobody@example.invalid" in source "demo"')
    back = find("a[href='./']")
    if not back:
        fail("unknown account: no link back to the overview")
    else:
        wd("POST", f"{S}/element/{back}/click", {})
        if url() != landing:
            fail(f"unknown account: the way back leads to {url()}, expected {landing}")
finally:
    try:
        wd("DELETE", S)
    except Exception:  # the session may already be gone
        pass

if failures:
    sys.exit(1)
print("browser: walked landing -> source -> check -> account and back, an empty check and an "
      f"unknown account; screenshots in {SHOTS}")
