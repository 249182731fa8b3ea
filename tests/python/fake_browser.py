"""A browser without JavaScript for mcpgate's client tests (standard library only).

It does what a person does on mcpgate's authorization-server pages: follows
redirects with one cookie jar, fills the sign-in form, enters a device user
code, and presses "Allow". Used three ways:

  fake_browser.py URL              as $BROWSER for `mcpgate login`: ends by
                                   requesting the CLI's 127.0.0.1 callback
  fake_browser.py --print URL      prints the final redirect URL (the one the
                                   browser would land on) instead of requesting it,
                                   or the code an out-of-band page shows
  fake_browser.py --device URI CODE   enters CODE at the verification URI and allows

Credentials come from FAKE_BROWSER_USER / FAKE_BROWSER_PASSWORD (and
FAKE_BROWSER_DECISION=deny presses "Deny" instead); every step
is appended to FAKE_BROWSER_LOG when set (the CLI starts $BROWSER with its
output discarded). Exit status 0 only when the flow reached its end.
"""

import html.parser
import http.cookiejar
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

LOG = os.environ.get("FAKE_BROWSER_LOG")


def log(msg):
    if LOG:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(msg + "\n")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Forms(html.parser.HTMLParser):
    """Every form: action, method, inputs, and the named submit buttons."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.shown_code = None
        self.in_code = False

    def handle_data(self, data):
        if self.in_code:
            self.shown_code += data.strip()

    def handle_endtag(self, tag):
        if tag == "textarea":
            self.in_code = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "code":
            # The out-of-band page shows the code in a read-only field.
            self.shown_code = a.get("value") if tag == "input" else ""
            self.in_code = tag == "textarea"
        if tag == "form":
            self.forms.append(
                {"action": a.get("action", ""), "method": a.get("method", "get").lower(),
                 "inputs": [], "buttons": []})
        elif not self.forms:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind == "checkbox":
                return
            self.forms[-1]["inputs"].append((kind, a["name"], a.get("value") or ""))
        elif tag == "button" and a.get("name"):
            self.forms[-1]["buttons"].append((a["name"], a.get("value") or ""))


class Browser:
    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect())

    def request(self, url, data=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body)
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode("utf-8", "replace")


def is_callback(url):
    p = urllib.parse.urlsplit(url)
    return p.scheme == "http" and p.hostname == "127.0.0.1" and p.path == "/callback"


def fill(form, user_code):
    """The submission a person makes: sign in, enter the code, allow."""
    data = []
    for kind, name, value in form["inputs"]:
        if name == "username":
            value = os.environ["FAKE_BROWSER_USER"]
        elif name == "password":
            value = os.environ["FAKE_BROWSER_PASSWORD"]
        elif name == "user_code" and kind == "text":
            value = user_code or value
        data.append((name, value))
    decision = os.environ.get("FAKE_BROWSER_DECISION", "allow")
    for name, value in form["buttons"]:
        if name == "decision" and value == decision:
            data.append((name, value))
    return data


def run(start, mode, user_code=None):
    b = Browser()
    url, data = start, None
    for _ in range(30):
        if mode != "print" and data is None and is_callback(url):
            # The CLI's loopback callback: the last request a real browser makes.
            status, _, body = b.request(url)
            log(f"callback {status}: {body[:200]}")
            return 0 if status == 200 else 1
        status, headers, body = b.request(url, data)
        log(f"{'POST' if data is not None else 'GET'} {url.split('?')[0]} -> {status}")
        data = None
        if status in (301, 302, 303, 307, 308):
            url = urllib.parse.urljoin(url, headers.get("Location") or headers.get("location"))
            if mode == "print" and is_callback(url):
                print(url)
                return 0
            continue
        if status != 200:
            log(f"unexpected {status}: {body[:500]}")
            return 1
        parser = Forms()
        parser.feed(body)
        forms = [f for f in parser.forms if not f["action"].endswith("/logout")]
        if not forms:
            # A page without a form to submit: the end (e.g. "device approved").
            log(f"final page: {body[:500]}")
            if mode == "print" and parser.shown_code:
                print(parser.shown_code)
                return 0
            return 0 if mode == "device" else 1
        form = forms[0]
        url = urllib.parse.urljoin(url, form["action"])
        data = fill(form, user_code)
    log("too many steps")
    return 1


def main(argv):
    if len(argv) == 2 and not argv[1].startswith("--"):
        return run(argv[1], "callback")
    if len(argv) == 3 and argv[1] == "--print":
        return run(argv[2], "print")
    if len(argv) == 4 and argv[1] == "--device":
        return run(argv[2], "device", argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as e:  # logged: the CLI discards a $BROWSER's output
        log(f"error: {e!r}")
        raise
