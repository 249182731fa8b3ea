"""Helpers shared by the end-to-end tests: client construction, callbacks that
record what the server asked, and result decoding."""

from __future__ import annotations

import json
import subprocess
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import mcp.types as types
from mcp.client import Client, ClientRequestContext
from mcp.client.sse import sse_client

# The three ways the Python SDK 2.3 client negotiates the protocol era.
LEGACY = "legacy"  # initialize handshake + Mcp-Session-Id (2025-11-25)
MODERN = "2026-07-28"  # pinned: stateless, per-request _meta, Mcp-Method/Mcp-Name headers
AUTO = "auto"  # server/discover first, falls back to initialize
MODES = [LEGACY, MODERN, AUTO]

# Every tool `mcpgate demo-server` offers.
DEMO_TOOLS = {
    "whoami",
    "create_secure_note",
    "list_secure_notes",
    "get_api_usage",
    "health_check",
    "slow_count",
    "confirm_action",
    "summarize",
    "echo",
}

READ_TIMEOUT_S = 30.0
FIXED_SUMMARY = "FIXED SUMMARY: a canned answer from the test's sampling callback"


@dataclass
class Asked:
    """Records the server→client requests (sampling, elicitation) a client answered."""

    elicit_action: str = "accept"
    elicit_content: dict[str, Any] | None = field(default_factory=lambda: {"confirm": True})
    sampling_text: str = FIXED_SUMMARY
    elicitations: list[types.ElicitRequestParams] = field(default_factory=list)
    samplings: list[types.CreateMessageRequestParams] = field(default_factory=list)

    async def elicitation(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicitations.append(params)
        content = self.elicit_content if self.elicit_action == "accept" else None
        return types.ElicitResult(action=self.elicit_action, content=content)  # type: ignore[arg-type]

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.samplings.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=self.sampling_text),
            model="mcpgate-test-model",
            stop_reason="endTurn",
        )


@dataclass
class Gateway:
    """A running `mcpgate serve`."""

    base: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    config_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    def url(self, upstream: str) -> str:
        """The Streamable HTTP endpoint of one upstream."""
        return f"{self.base}/mcp/{upstream}"

    def sse_url(self, upstream: str) -> str:
        """The legacy HTTP+SSE endpoint of one upstream."""
        return f"{self.base}/mcp/{upstream}/sse"

    @property
    def origin(self) -> str:
        """The gateway's own origin, which it must allow."""
        return self.base

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(text.splitlines()[-lines:])


def connect(
    target: str | AbstractAsyncContextManager[Any],
    mode: str,
    asked: Asked | None = None,
    **kwargs: Any,
) -> Client:
    """A client for `target` (a Streamable HTTP URL or a transport) in `mode`.

    The response cache is off so that every call really goes over the wire.
    """
    if asked is not None:
        kwargs.setdefault("elicitation_callback", asked.elicitation)
        kwargs.setdefault("sampling_callback", asked.sampling)
    return Client(
        target,  # type: ignore[arg-type]
        mode=mode,
        cache=None,
        read_timeout_seconds=READ_TIMEOUT_S,
        client_info=types.Implementation(name="mcpgate-e2e", version="0.0.0"),
        **kwargs,
    )


def connect_sse(url: str, **kwargs: Any) -> Client:
    """A legacy (2024-11-05 HTTP+SSE) client for `url`."""
    return connect(sse_client(url, timeout=READ_TIMEOUT_S), LEGACY, **kwargs)


def text_of(result: types.CallToolResult | types.GetPromptResult) -> str:
    """All text blocks of a tool result, joined by newlines."""
    if isinstance(result, types.GetPromptResult):
        blocks = [m.content for m in result.messages]
    else:
        blocks = list(result.content)
    return "\n".join(b.text for b in blocks if isinstance(b, types.TextContent))


def ok_text(result: types.CallToolResult) -> str:
    """The text of a successful tool result; fails with the error text otherwise."""
    assert not result.is_error, f"tool call failed: {text_of(result)!r}"
    return text_of(result)


def structured(result: types.CallToolResult) -> dict[str, Any]:
    """The structured content of a successful tool result (or its JSON text)."""
    assert not result.is_error, f"tool call failed: {text_of(result)!r}"
    if result.structured_content is not None:
        assert isinstance(result.structured_content, dict), result.structured_content
        return result.structured_content
    return json.loads(text_of(result))


def resource_text(result: types.ReadResourceResult) -> str:
    """The text of a one-item resource read."""
    assert len(result.contents) == 1, result.contents
    item = result.contents[0]
    assert isinstance(item, types.TextResourceContents), item
    return item.text


# ---- OAuth: the built-in authorization server driven by real clients ----------------
# Used by test_oauth_sdk*.py: a gateway on a fixed loopback port (so its issuer survives a
# restart), local users, a headless "browser" that fills the login, consent and device
# pages over HTTP, and an in-memory token store for the SDK's OAuth client provider.

OAUTH_LISTENING = "mcpgate: listening on http://127.0.0.1:"


def add_user(binary: Path, data_dir: Path, name: str, password: str, scopes: str) -> None:
    """`mcpgate users add NAME --password-stdin --scopes SCOPES --data-dir DATA`
    (on PostgreSQL runs, in the data directory's database)."""
    import os

    import store

    out = subprocess.run(
        [str(binary), "users", "add", name, "--password-stdin", "--scopes", scopes, "--data-dir", str(data_dir)],
        input=password.encode(),
        capture_output=True,
        timeout=60,
        env=store.apply(dict(os.environ), data_dir),
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")


def start_gateway_at(
    binary: Path,
    root: Path,
    config: str,
    listen: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
    *,
    own_store: bool = True,
) -> Gateway:
    """`mcpgate serve --config … --listen LISTEN --data-dir DATA`; returns once /healthz answers.

    The log (stderr) goes to root/mcpgate-N.log, one file per start. On PostgreSQL
    runs the data directory's database is the store (store.py), unless `own_store`
    is false: the configuration names the store itself (`[store] url`).
    """
    import os
    import time

    import httpx2
    import store

    config_path = root / "mcpgate.toml"
    config_path.write_text(config)
    n = len(list(root.glob("mcpgate-*.log")))
    log_path = root / f"mcpgate-{n}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
    if own_store:
        full_env = store.apply(full_env, data_dir)
    full_env.setdefault("RUST_LOG", "info")
    # As in the Rust harness: every gateway on this many runtime threads (1: current-thread).
    if os.environ.get("MCPGATE_TEST_WORKER_THREADS"):
        full_env["MCPGATE_SERVER__WORKER_THREADS"] = os.environ["MCPGATE_TEST_WORKER_THREADS"]
    full_env.update(env or {})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(config_path), "--listen", listen, "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=root,
            env=full_env,
        )
    assert proc.stdout is not None
    seen: list[str] = []
    base = f"http://{listen}"
    deadline = time.monotonic() + 60
    # The banner line comes first; then /healthz must answer.
    for raw in iter(proc.stdout.readline, b""):
        seen.append(raw.decode(errors="replace").rstrip("\n"))
        if OAUTH_LISTENING in seen[-1]:
            break
        assert time.monotonic() < deadline, f"no 'listening on' line: {seen}"
    else:
        proc.wait(5)
        raise AssertionError(f"mcpgate exited ({proc.returncode}) before listening: {seen}\n{log_path.read_text()}")
    # Keep draining stdout so the process never blocks on a full pipe.
    import threading

    threading.Thread(target=lambda: [None for _ in iter(proc.stdout.readline, b"")], daemon=True).start()  # type: ignore[union-attr]
    while True:
        try:
            if httpx2.get(f"{base}/healthz", timeout=2.0).status_code == 200:
                break
        except httpx2.HTTPError:
            pass
        assert time.monotonic() < deadline, f"/healthz did not answer 200\n{log_path.read_text()[-3000:]}"
        time.sleep(0.1)
    port = int(listen.rsplit(":", 1)[1])
    return Gateway(base=base, port=port, proc=proc, log_path=log_path, config_path=config_path, stdout_lines=seen)


def stop_gateway(gw: Gateway) -> None:
    """SIGTERM; the gateway must exit with status 0 within 10 s."""
    import signal

    if gw.proc.poll() is None:
        gw.proc.send_signal(signal.SIGTERM)
        try:
            status = gw.proc.wait(10)
        except subprocess.TimeoutExpired:
            gw.proc.kill()
            gw.proc.wait(5)
            raise AssertionError(f"mcpgate did not exit within 10 s of SIGTERM\n{gw.log_tail()}") from None
        assert status == 0, f"mcpgate exited with {status}\n{gw.log_tail()}"


@dataclass
class Form:
    """One HTML form: where it posts, its hidden fields, and which inputs it has."""

    action: str
    hidden: list[tuple[str, str]]
    inputs: set[str]


def forms_of(html: str) -> list[Form]:
    """Every <form> of a page, parsed with the standard library's HTML parser."""
    from html.parser import HTMLParser

    forms: list[Form] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = {k: v or "" for k, v in attrs}
            if tag == "form":
                forms.append(Form(action=a.get("action", ""), hidden=[], inputs=set()))
            elif tag in ("input", "button") and forms and "name" in a:
                forms[-1].inputs.add(a["name"])
                if tag == "input" and a.get("type") == "hidden":
                    forms[-1].hidden.append((a["name"], a.get("value", "")))

    Parser().feed(html)
    return forms


@dataclass
class Browser:
    """A browser without JavaScript on the authorization server's pages: follows
    redirects by hand, keeps the session cookie, signs in and allows.

    `pages` records which pages it saw (login, consent, device, device-approve,
    message) so tests can tell whether a flow needed the user.
    """

    base: str
    username: str
    password: str
    decision: str = "allow"
    pages: list[str] = field(default_factory=list)
    consent_html: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        import httpx2

        self.http = httpx2.AsyncClient(follow_redirects=False, timeout=30.0)

    def _abs(self, url: str) -> str:
        return self.base + url if url.startswith("/") else url

    async def _submit(self, html: str) -> Any:
        form = forms_of(html)[0]
        data = dict(form.hidden)
        if "password" in form.inputs:
            self.pages.append("login")
            data.update(username=self.username, password=self.password)
        elif "decision" in form.inputs and "user_code" in data:
            self.pages.append("device-approve")
            data["decision"] = self.decision
        elif "decision" in form.inputs:
            self.pages.append("consent")
            self.consent_html.append(html)
            data["decision"] = self.decision
        else:
            raise AssertionError(f"an unexpected form: {form}\n{html}")
        return await self.http.post(self._abs(form.action), data=data)

    async def authorize(self, url: str) -> str:
        """Opens an authorization URL; the URL the server finally redirects the
        user agent to, off its own origin (the client's redirect URI)."""
        r = await self.http.get(url)
        for _ in range(8):
            if r.is_redirect:
                to = self._abs(r.headers["location"])
                if not to.startswith(self.base + "/"):
                    return to
                r = await self.http.get(to)
                continue
            assert r.status_code == 200, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:2000]}"
            r = await self._submit(r.text)
        raise AssertionError(f"no redirect to the client after eight pages from {url}")

    async def enter_user_code(self, verification_uri: str, user_code: str) -> str:
        """The device flow's user side: open the verification page, sign in,
        enter the code, approve (or deny); the final page's text."""
        r = await self.http.get(verification_uri)
        submitted = False
        for _ in range(8):
            if r.is_redirect:
                r = await self.http.get(self._abs(r.headers["location"]))
                continue
            if r.status_code == 400 and submitted:
                # The code was refused; the page asks for it again.
                self.pages.append("device-retry")
                return r.text
            assert r.status_code == 200, f"{r.request.url}: {r.status_code} {r.text[:2000]}"
            forms = forms_of(r.text)
            if forms and "user_code" in forms[0].inputs and "decision" not in forms[0].inputs:
                self.pages.append("device")
                form = forms[0]
                data = dict(form.hidden)
                data["user_code"] = user_code
                submitted = True
                r = await self.http.post(self._abs(form.action), data=data)
                continue
            if forms and ("password" in forms[0].inputs or "decision" in forms[0].inputs):
                r = await self._submit(r.text)
                continue
            self.pages.append("message")
            return r.text
        raise AssertionError(f"the device pages did not finish from {verification_uri}")

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class MemoryTokenStorage:
    """The SDK's `TokenStorage` in memory, counting writes (a refresh writes tokens)."""

    tokens: Any = None
    client_info: Any = None
    token_writes: int = 0

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens
        self.token_writes += 1

    async def get_client_info(self) -> Any:
        return self.client_info

    async def set_client_info(self, client_info: Any) -> None:
        self.client_info = client_info


# --- Raw Streamable HTTP (no SDK client: the test counts connections or threads) -------

RAW_PROTOCOL = "2025-11-25"
RAW_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def post_message(client: httpx2.Client, url: str, body: dict[str, Any], session: str | None = None) -> httpx2.Response:
    """POSTs one JSON-RPC message to a Streamable HTTP endpoint, in `session` if given."""
    headers = dict(RAW_HEADERS)
    if session:
        headers |= {"mcp-session-id": session, "mcp-protocol-version": RAW_PROTOCOL}
    return client.post(url, json=body, headers=headers)


def open_session(client: httpx2.Client, url: str, name: str) -> str:
    """initialize and notifications/initialized as client `name`; returns the session id."""
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": RAW_PROTOCOL, "capabilities": {}, "clientInfo": {"name": name, "version": "0"}},
    }
    r = post_message(client, url, init)
    assert r.status_code == 200, r.text
    session = r.headers["mcp-session-id"]
    r = post_message(client, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    assert r.status_code == 202, r.text
    return session
