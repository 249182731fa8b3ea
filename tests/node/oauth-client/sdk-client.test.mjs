// The official MCP TypeScript SDK's OAuth client (`@modelcontextprotocol/sdk`:
// `Client` + `StreamableHTTPClientTransport` with an `OAuthClientProvider`)
// against the real mcpgate binary and its built-in authorization server:
//
// 1. the SDK meets the 401 challenge, reads the RFC 9728 and RFC 8414
//    metadata, registers itself (DCR), sends the user through sign-in and
//    consent with PKCE, redeems the code and calls tools;
// 2. access tokens live 1 s: the SDK refreshes by itself on the 401 and the
//    call succeeds; the refresh token rotated;
// 3. a token the SDK obtained for /mcp/demo is refused at /mcp/echo (audience
//    binding), and the SDK signs in to /mcp/echo on its own for a token there.
//
// The "user" is a browser without JavaScript: plain HTTP with a cookie jar
// that follows the pages' redirects and submits their forms, like
// tests/python/fake_browser.py. Everything listens on 127.0.0.1 only.
//
// Run: node --test tests/node/oauth-client/   (MCPGATE_BIN = the binary, default target/debug/mcpgate)

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { dropStore, storeEnv } from '../store.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MCPGATE_BIN = process.env.MCPGATE_BIN || join(ROOT, 'target', 'debug', 'mcpgate');

const USER = 'alice';
const PASSWORD = `ts-sdk ${randomBytes(9).toString('base64url')}`;
const SCOPES = 'notes:read notes:write';
// The gateway accepts an authorization-server token this long past its `exp` (clock skew).
const LEEWAY_S = 5;

// ---- the gateway ------------------------------------------------------------------------

/** A free loopback port (bound and released; the gateway binds it right after). */
async function freePort() {
  const s = createServer();
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return port;
}

const toml = (s) => JSON.stringify(String(s));

/**
 * The environment for mcpgate on `data`: no MCPGATE_* of the caller's (MCPGATE_BIN,
 * MCPGATE_CONFIG…); the store is the data dir's, on SQLite or PostgreSQL (../store.mjs).
 */
function gatewayEnv(data) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MCPGATE_')));
  return storeEnv({ ...env, NO_COLOR: '1', RUST_LOG: 'info' }, data);
}

/**
 * Starts `mcpgate serve` with two upstreams, `demo` and `echo` (each the demo
 * server over stdio), the authorization server on, and the user alice; resolves
 * once /healthz answers 200. `accessTtl` is the access-token lifetime.
 */
async function startGateway(accessTtl) {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgate-tsclient-'));
  const data = join(dir, 'data');
  const add = spawnSync(
    MCPGATE_BIN,
    ['users', 'add', USER, '--password-stdin', '--scopes', SCOPES, '--data-dir', data],
    { input: PASSWORD, encoding: 'utf8', env: gatewayEnv(data), timeout: 60_000 },
  );
  if (add.error) {
    dropStore(data);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot run ${MCPGATE_BIN}: ${add.error.message} (build it with cargo build, or set MCPGATE_BIN)`);
  }
  assert.equal(add.status, 0, `mcpgate users add failed:\n${add.stderr}`);
  const config = `\
[auth]
mode = "required"

[authserver]
enabled = true
access_token_ttl = "${accessTtl}"

[[upstream]]
name = "demo"
command = [${toml(MCPGATE_BIN)}, "demo-server", "--data-dir", ${toml(join(dir, 'demo-notes'))}]

[[upstream]]
name = "echo"
command = [${toml(MCPGATE_BIN)}, "demo-server", "--data-dir", ${toml(join(dir, 'echo-notes'))}]
`;
  const configPath = join(dir, 'mcpgate.toml');
  writeFileSync(configPath, config);
  const port = await freePort();
  const child = spawn(
    MCPGATE_BIN,
    ['serve', '--config', configPath, '--listen', `127.0.0.1:${port}`, '--data-dir', data, '--log-format', 'json'],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: gatewayEnv(data) },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d.toString()));
  child.stderr.on('data', (d) => (out += d.toString()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((ok) => child.once('exit', ok));
      child.kill('SIGTERM');
      let timer;
      await Promise.race([gone, new Promise((ok) => (timer = setTimeout(ok, 5000)))]);
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    dropStore(data);
    rmSync(dir, { recursive: true, force: true });
  };
  const base = `http://127.0.0.1:${port}`;
  const exited = new Promise((ok) => child.once('exit', (code) => ok(code)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const code = await Promise.race([exited, new Promise((ok) => setTimeout(() => ok(undefined), 100))]);
    if (code !== undefined) {
      await stop();
      throw new Error(`mcpgate exited with ${code} before it was ready:\n${out}\nconfig:\n${config}`);
    }
    const ok = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`mcpgate did not answer /healthz within 30 s:\n${out}`);
    }
  }
  return { base, url: (upstream) => `${base}/mcp/${upstream}`, log: () => out, stop };
}

// ---- the user: a browser without JavaScript -----------------------------------------------

/** Every form of a page: action, method, fields (hidden and text inputs) and named buttons. */
function parseForms(html) {
  const attrs = (tag) => Object.fromEntries([...tag.matchAll(/([\w-]+)\s*=\s*"([^"]*)"/g)].map((m) => [m[1], unescape(m[2])]));
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  const unescape = (s) =>
    s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) =>
      e[0] !== '#' ? (named[e.toLowerCase()] ?? m) : String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1))),
    );
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].map(([, open, inner]) => {
    const a = attrs(open);
    return {
      action: a.action ?? '',
      method: (a.method ?? 'get').toLowerCase(),
      inputs: [...inner.matchAll(/<input\b[^>]*>/g)].map((m) => attrs(m[0])).filter((i) => i.name && i.type !== 'checkbox'),
      buttons: [...inner.matchAll(/<button\b[^>]*>/g)].map((m) => attrs(m[0])).filter((b) => b.name),
    };
  });
}

/**
 * Signs in and presses Allow on mcpgate's pages, starting at an authorization
 * URL; ends at the redirect to the client's loopback URI, which it returns
 * (never requested: the test reads the code from it). `pages` records which
 * pages it went through ("login", "consent").
 */
class Browser {
  constructor(user, password) {
    this.user = user;
    this.password = password;
    this.cookies = new Map();
    this.pages = [];
  }

  async request(url, form) {
    const headers = { accept: 'text/html' };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const init = { method: form ? 'POST' : 'GET', headers, redirect: 'manual' };
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      init.body = new URLSearchParams(form).toString();
    }
    const r = await fetch(url, init);
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      this.cookies.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
    return r;
  }

  async authorize(start, redirectUri) {
    let url = start;
    let form;
    for (let step = 0; step < 20; step++) {
      const r = await this.request(url, form);
      form = undefined;
      if (r.status >= 300 && r.status < 400) {
        url = new URL(r.headers.get('location'), url).href;
        if (url.startsWith(`${redirectUri}?`)) return url;
        continue;
      }
      const body = await r.text();
      assert.equal(r.status, 200, `${url} answered ${r.status}:\n${body.slice(0, 2000)}`);
      const forms = parseForms(body).filter((f) => !f.action.endsWith('/logout'));
      assert.ok(forms.length > 0, `a page without a form at ${url}:\n${body.slice(0, 2000)}`);
      const [f] = forms;
      const fields = f.inputs.map((i) => [i.name, i.name === 'username' ? this.user : i.name === 'password' ? this.password : (i.value ?? '')]);
      if (fields.some(([n]) => n === 'password')) this.pages.push('login');
      const allow = f.buttons.find((b) => b.name === 'decision' && b.value === 'allow');
      if (allow) {
        this.pages.push('consent');
        fields.push(['decision', 'allow']);
      }
      assert.equal(f.method, 'post', `the form at ${url} is not a POST`);
      url = new URL(f.action || url, url).href;
      form = fields;
    }
    throw new Error(`no redirect to ${redirectUri} within 20 steps (pages: ${this.pages})`);
  }
}

// ---- the SDK's OAuth client -----------------------------------------------------------------

/**
 * An `OAuthClientProvider` keeping everything in memory; its
 * `redirectToAuthorization` hands the URL to the test's browser and keeps the
 * redirect back to the loopback URI.
 */
class MemoryProvider {
  constructor(name, redirectUri, browser) {
    this.name = name;
    this.redirectUri = redirectUri;
    this.browser = browser;
    this.client = undefined;
    this.savedTokens = [];
    this.verifier = undefined;
    this.states = [];
    this.authorizationUrls = [];
    this.callbacks = [];
  }

  get redirectUrl() {
    return this.redirectUri;
  }

  get clientMetadata() {
    return {
      client_name: this.name,
      redirect_uris: [this.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    const s = randomBytes(12).toString('base64url');
    this.states.push(s);
    return s;
  }

  clientInformation() {
    return this.client;
  }

  saveClientInformation(info) {
    this.client = info;
  }

  tokens() {
    return this.savedTokens.at(-1);
  }

  saveTokens(tokens) {
    this.savedTokens.push(tokens);
  }

  saveCodeVerifier(v) {
    this.verifier = v;
  }

  codeVerifier() {
    return this.verifier;
  }

  async redirectToAuthorization(url) {
    this.authorizationUrls.push(url);
    this.callbacks.push(new URL(await this.browser.authorize(url.href, this.redirectUri)));
  }

  /** The code of the last redirect back, after checking its `state` (and that it is no error). */
  takeCode() {
    const cb = this.callbacks.at(-1);
    assert.ok(cb, 'the SDK never asked for authorization');
    assert.equal(cb.searchParams.get('error'), null, `the authorization failed: ${cb}`);
    assert.equal(cb.searchParams.get('state'), this.states.at(-1), 'state came back unchanged');
    const code = cb.searchParams.get('code');
    assert.ok(code, `no code in ${cb}`);
    return code;
  }
}

/** A fetch that records method, URL, status, WWW-Authenticate and (for /token) the grant type. */
function recordingFetch(log) {
  return async (input, init = {}) => {
    const url = String(input instanceof Request ? input.url : input);
    const method = init.method ?? (input instanceof Request ? input.method : 'GET');
    let grant;
    if (init.body instanceof URLSearchParams) grant = init.body.get('grant_type');
    else if (typeof init.body === 'string' && url.endsWith('/token')) grant = new URLSearchParams(init.body).get('grant_type');
    const r = await fetch(input, init);
    log.push({ method, url, status: r.status, challenge: r.headers.get('www-authenticate'), grant });
    return r;
  };
}

/**
 * Connects the SDK to `url` as the docs describe: the first connect meets the
 * 401 and sends the user to authorize (UnauthorizedError), then
 * `transport.finishAuth(code)` and a fresh connect with the tokens.
 */
async function connectWithOAuth(url, provider, log) {
  const options = { authProvider: provider, fetch: recordingFetch(log) };
  const first = new StreamableHTTPClientTransport(new URL(url), options);
  const firstClient = new Client({ name: 'mcpgate-ts-sdk-test', version: '1.0.0' });
  let refused;
  try {
    await firstClient.connect(first);
  } catch (e) {
    refused = e;
  }
  // Without a stored token the first connect must end in the authorization redirect.
  assert.ok(refused instanceof UnauthorizedError, `expected UnauthorizedError, got ${refused}`);
  await firstClient.close();
  await first.finishAuth(provider.takeCode());
  const transport = new StreamableHTTPClientTransport(new URL(url), options);
  const client = new Client({ name: 'mcpgate-ts-sdk-test', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

/** The JSON payload of a JWT (no verification: the gateway did that). */
function jwtClaims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** The whoami reply, from structured content or the JSON text. */
function whoami(result) {
  assert.notEqual(result.isError, true, `whoami failed: ${JSON.stringify(result)}`);
  return result.structuredContent ?? JSON.parse(result.content[0].text);
}

/** An `initialize` presenting `token` at `url`; resolves to { status, challenge }. */
async function presentToken(url, token) {
  const r = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '0' } },
    }),
  });
  await r.body?.cancel();
  return { status: r.status, challenge: r.headers.get('www-authenticate') ?? '' };
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// ---- tests ------------------------------------------------------------------------------------

describe('MCP TypeScript SDK OAuth client against mcpgate', () => {
  let gw; // access tokens live an hour
  let shortGw; // access tokens live 1 s
  const clients = [];

  before(async () => {
    [gw, shortGw] = await Promise.all([startGateway('1h'), startGateway('1s')]);
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await Promise.all([gw?.stop(), shortGw?.stop()]);
  });

  async function signIn(g, upstream, name) {
    const redirectUri = `http://127.0.0.1:${await freePort()}/callback`;
    const provider = new MemoryProvider(name, redirectUri, new Browser(USER, PASSWORD));
    const log = [];
    const client = await connectWithOAuth(g.url(upstream), provider, log);
    clients.push(client);
    return { provider, log, client };
  }

  test('discovery from the 401, DCR, PKCE, sign-in and consent; tools/list and tools/call', async () => {
    const { provider, log, client } = await signIn(gw, 'demo', 'ts sdk dcr');
    const mcpUrl = gw.url('demo');

    // The SDK started from the 401 challenge and its RFC 9728 pointer.
    const first = log[0];
    assert.equal(first.url, mcpUrl);
    assert.equal(first.status, 401);
    const pointer = first.challenge?.match(/resource_metadata="([^"]+)"/)?.[1];
    assert.ok(pointer, `no resource_metadata in the challenge: ${first.challenge}`);
    const prm = log.find((e) => e.url === pointer);
    assert.equal(prm?.status, 200, `the SDK did not read the resource metadata at ${pointer}: ${JSON.stringify(log)}`);
    const prmDoc = await (await fetch(pointer)).json();
    assert.equal(prmDoc.resource.replace(/\/$/, ''), mcpUrl);
    assert.deepEqual(prmDoc.authorization_servers, [gw.base]);
    assert.ok(
      log.some((e) => e.url.startsWith(`${gw.base}/.well-known/oauth-authorization-server`) && e.status === 200),
      `no RFC 8414 metadata request: ${JSON.stringify(log)}`,
    );
    assert.ok(log.some((e) => e.url === `${gw.base}/register` && e.status === 201), 'dynamic registration');
    assert.ok(log.some((e) => e.url === `${gw.base}/token` && e.grant === 'authorization_code' && e.status === 200), 'code exchange');

    // It registered itself and asked with PKCE S256 for this endpoint's resource.
    assert.ok(provider.client?.client_id, 'the SDK saved its registration');
    assert.equal(provider.authorizationUrls.length, 1);
    const q = provider.authorizationUrls[0].searchParams;
    assert.equal(q.get('client_id'), provider.client.client_id);
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.ok(q.get('code_challenge'));
    assert.equal(q.get('resource').replace(/\/$/, ''), mcpUrl);
    assert.deepEqual(provider.browser.pages, ['login', 'consent']);
    // RFC 9207: the redirect names the issuer.
    assert.equal(provider.callbacks[0].searchParams.get('iss'), gw.base);

    // The token is the authorization server's, for this endpoint only.
    const tokens = provider.tokens();
    assert.ok(tokens.refresh_token, 'a refresh token was issued');
    const claims = jwtClaims(tokens.access_token);
    assert.equal(claims.iss, gw.base);
    assert.equal(claims.sub, USER);
    assert.equal(claims.client_id, provider.client.client_id);
    assert.deepEqual([claims.aud].flat().map((a) => a.replace(/\/$/, '')), [mcpUrl]);

    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    assert.ok(names.includes('whoami'), `tools/list: ${names}`);
    const me = whoami(await client.callTool({ name: 'whoami', arguments: {} }));
    assert.equal(me.subject, USER);
  });

  test('refresh: an expired access token is refreshed by the SDK and the refresh token rotates', async () => {
    const { provider, log, client } = await signIn(shortGw, 'demo', 'ts sdk refresh');
    assert.equal(whoami(await client.callTool({ name: 'whoami', arguments: {} })).subject, USER);
    const before = provider.tokens();
    assert.ok(before.refresh_token, 'a refresh token was issued');

    // Wait until the gateway refuses the token (its exp plus the clock-skew leeway).
    const { exp } = jwtClaims(before.access_token);
    await sleep(Math.max(0, (exp + LEEWAY_S + 1) * 1000 - Date.now()));
    const expired = await presentToken(shortGw.url('demo'), before.access_token);
    assert.equal(expired.status, 401, 'the first access token has expired');
    assert.match(expired.challenge, /invalid_token/);

    const seen = log.length;
    assert.equal(whoami(await client.callTool({ name: 'whoami', arguments: {} })).subject, USER);

    // The SDK met the 401, refreshed (no new sign-in), and retried with the new token.
    const after = log.slice(seen);
    assert.equal(after[0]?.status, 401, `the call first met a 401: ${JSON.stringify(after)}`);
    assert.ok(
      after.some((e) => e.url === `${shortGw.base}/token` && e.grant === 'refresh_token' && e.status === 200),
      `no refresh at /token: ${JSON.stringify(after)}`,
    );
    assert.equal(provider.authorizationUrls.length, 1, 'no second authorization');
    const now = provider.tokens();
    assert.notEqual(now.access_token, before.access_token);
    assert.ok(now.refresh_token, 'the refresh answered a refresh token');
    assert.notEqual(now.refresh_token, before.refresh_token, 'the refresh token rotated');
    assert.equal(jwtClaims(now.access_token).sub, USER);
  });

  test('audience: a token for /mcp/demo is refused at /mcp/echo; the SDK signs in there for its own', async () => {
    const { provider } = await signIn(gw, 'demo', 'ts sdk audience');
    const demoToken = provider.tokens().access_token;
    assert.equal((await presentToken(gw.url('demo'), demoToken)).status, 200, 'the token works where it was issued for');

    const refused = await presentToken(gw.url('echo'), demoToken);
    assert.equal(refused.status, 401);
    assert.match(refused.challenge, /error="invalid_token"/);
    assert.ok(
      refused.challenge.includes(`Token audience does not include ${gw.url('echo')}`),
      `challenge: ${refused.challenge}`,
    );

    // A separate sign-in at /mcp/echo gets a token for that endpoint, which works there.
    const echo = await signIn(gw, 'echo', 'ts sdk audience echo');
    const echoToken = echo.provider.tokens().access_token;
    assert.deepEqual([jwtClaims(echoToken).aud].flat().map((a) => a.replace(/\/$/, '')), [gw.url('echo')]);
    assert.equal(whoami(await echo.client.callTool({ name: 'whoami', arguments: {} })).subject, USER);
    assert.equal((await presentToken(gw.url('demo'), echoToken)).status, 401, 'and not at /mcp/demo');
  });
});
