#!/usr/bin/env python3
"""Setup for bench/authserver.sh, through the authorization server's own HTTP
endpoints (standard library only):

  authserver_setup.py BASE USER PASSWORD RESOURCE PAIRS_FILE N

registers a public client (DCR), signs USER in on the login page, allows on the
consent page with "remember this decision" (so later /authorize requests
redirect straight back with a code), writes N PKCE (verifier, challenge) pairs
to PAIRS_FILE, and prints one JSON object: client_id, redirect_uri, cookie
(the session cookie header), and a first token response (from one code
exchanged here, as a check that the whole flow works).
"""

import base64
import hashlib
import http.client
import json
import re
import secrets
import sys
from html import unescape
from urllib.parse import parse_qs, urlencode, urlparse


def pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Browser:
    """No redirects followed, one cookie jar (name=value pairs)."""

    def __init__(self, base: str) -> None:
        u = urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, ctype: str | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if ctype:
            headers["Content-Type"] = ctype
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        for name, value in r.getheaders():
            if name.lower() == "set-cookie":
                k, _, v = value.split(";", 1)[0].partition("=")
                if v:
                    self.cookies[k] = v
                else:
                    self.cookies.pop(k, None)
        conn.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), text


def first_form(html: str) -> tuple[str, list[tuple[str, str]]]:
    form = html[html.index("<form") : html.index("</form>")]
    action = unescape(re.search(r'action="([^"]*)"', form).group(1))
    hidden = [
        (unescape(n), unescape(v))
        for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', form)
    ]
    return action, hidden


def path_of(url: str) -> str:
    u = urlparse(url)
    return u.path + ("?" + u.query if u.query else "")


def main() -> None:
    base, user, password, resource, pairs_file, n = sys.argv[1:7]
    b = Browser(base)
    redirect_uri = "http://127.0.0.1/cb"
    status, _, text = b.request(
        "POST",
        "/register",
        json.dumps(
            {
                "client_name": "mcpgate bench",
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
            }
        ).encode(),
        "application/json",
    )
    assert status == 201, text
    client_id = json.loads(text)["client_id"]

    def authorize_path(challenge: str, state: str) -> str:
        return "/authorize?" + urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": "notes:read notes:write",
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "resource": resource,
            }
        )

    verifier, challenge = pkce()
    location = None
    status, headers, text = b.request("GET", authorize_path(challenge, "setup"))
    for _ in range(6):
        if status in (302, 303):
            location = headers["location"]
            if location.startswith(redirect_uri):
                break
            status, headers, text = b.request("GET", path_of(location))
            continue
        assert status == 200, (status, text[:500])
        action, hidden = first_form(text)
        data = dict(hidden)
        if 'name="password"' in text:
            data.update(username=user, password=password)
        else:
            data.update(decision="allow", remember="yes")
        status, headers, text = b.request("POST", path_of(action), urlencode(data).encode(), "application/x-www-form-urlencoded")
    assert location and location.startswith(redirect_uri), (status, text[:500])
    code = parse_qs(urlparse(location).query)["code"][0]

    # The remembered consent: the next /authorize answers with a code at once.
    v2, c2 = pkce()
    status, headers, _ = b.request("GET", authorize_path(c2, "check"))
    assert status == 303 and headers["location"].startswith(redirect_uri), (status, headers)

    status, _, text = b.request(
        "POST",
        "/token",
        urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
        ).encode(),
        "application/x-www-form-urlencoded",
    )
    assert status == 200, text
    with open(pairs_file, "w") as f:
        for i in range(int(n)):
            v, c = pkce()
            f.write(f"{v} {c}\n")
    print(
        json.dumps(
            {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "cookie": "; ".join(f"{k}={v}" for k, v in b.cookies.items()),
                "authorize_path": authorize_path("CHALLENGE", "STATE"),
                "token": json.loads(text),
            }
        )
    )


if __name__ == "__main__":
    main()
