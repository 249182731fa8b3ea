// Shared pieces of the browser tests and the screenshot script: the real
// mcpgate binary on a free loopback port, OAuth helpers over plain HTTP
// (registration, PKCE, token calls), a loopback callback listener standing in
// for a native client, and Debian's Chromium driven by playwright-core.

import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { dropStore, storeEnv } from '../store.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '..', '..', '..');

/** The mcpgate binary under test. */
export const MCPGATE_BIN = process.env.MCPGATE_BIN || join(ROOT, 'target', 'debug', 'mcpgate');

/** The Chromium binary (Debian's package; playwright-core downloads none). */
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A free loopback port (bound and released; the server binds it right after). */
export async function freePort() {
  const s = createServer();
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return port;
}

/**
 * Starts `mcpgate serve --demo` in a temporary data dir and waits for its
 * banner; resolves to { base, password, stop() }. The demo turns the
 * authorization server on and prints the admin password once. The store is
 * the data dir's SQLite file, or its own PostgreSQL database (../store.mjs).
 */
export async function startDemo() {
  const dataDir = mkdtempSync(join(tmpdir(), 'mcpgate-pages-'));
  const port = await freePort();
  const child = spawn(
    MCPGATE_BIN,
    ['serve', '--demo', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--log-format', 'json'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: storeEnv({ ...process.env, NO_COLOR: '1' }, dataDir) },
  );
  let out = '';
  const seen = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`mcpgate did not print its banner in 20 s:\n${out}`)), 20_000);
    const onData = (d) => {
      out += d.toString();
      const m = out.match(/user admin, password (\S+)/);
      if (m && out.includes('listening on')) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`mcpgate exited with ${code} before it was ready:\n${out}`));
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      fail(new Error(`cannot start ${MCPGATE_BIN}: ${e.message} (build it with cargo build, or set MCPGATE_BIN)`));
    });
  });
  const password = await seen;
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    password,
    dataDir,
    log: () => out,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((ok) => child.once('exit', ok));
        child.kill('SIGTERM');
        // A pending 5 s timer would keep node alive after the last test.
        let timer;
        await Promise.race([gone, new Promise((ok) => (timer = setTimeout(ok, 5000)))]);
        clearTimeout(timer);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      dropStore(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** POST a JSON body; resolves to { status, body }. */
export async function postJson(url, body) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

/** POST a form; resolves to { status, body } (body parsed as JSON). */
export async function postForm(url, fields) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(fields).toString(),
  });
  return { status: r.status, body: await r.json() };
}

/** Registers a public client by DCR (RFC 7591); resolves to its registration response. */
export async function registerClient(base, metadata) {
  const { status, body } = await postJson(`${base}/register`, {
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...metadata,
  });
  if (status !== 201) throw new Error(`registration failed (${status}): ${JSON.stringify(body)}`);
  return body;
}

/**
 * Adds a public client the way an administrator does (`mcpgate clients add`,
 * on the running demo's data directory); resolves to { client_id } like a
 * registration response. Needed for what dynamic registration may not ask
 * for, such as the out-of-band redirect.
 */
export function addClient(dataDir, name, redirectUris) {
  const args = ['clients', 'add', name, ...redirectUris.flatMap((u) => ['--redirect-uri', u]), '--data-dir', dataDir];
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MCPGATE_')));
  const out = execFileSync(MCPGATE_BIN, args, { encoding: 'utf8', env: storeEnv(env, dataDir) });
  return { client_id: out.trim() };
}

/** A PKCE pair (S256). */
export function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/** The /authorize URL for `client` with a fresh PKCE pair and state. */
export function authorizeUrl(base, client, redirectUri, scope = 'notes:read notes:write') {
  const p = pkce();
  const state = randomBytes(12).toString('base64url');
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    scope,
    state,
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
    resource: `${base}/mcp`,
  });
  return { url: `${base}/authorize?${q}`, state, verifier: p.verifier };
}

/**
 * A loopback HTTP listener standing in for a native client's redirect
 * endpoint: records every request's URL and answers a small page. `html`
 * maps extra paths to pages it serves (e.g. one that frames another site).
 */
export async function startCallback(html = {}) {
  const hits = [];
  const waiters = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (html[url.pathname]) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html[url.pathname]);
      return;
    }
    if (url.pathname !== '/callback') {
      // e.g. the browser's /favicon.ico: not a redirect.
      res.writeHead(404).end();
      return;
    }
    hits.push(url);
    for (const w of waiters.splice(0)) w(url);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><title>Done</title><p>You can close this window.</p></html>');
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    redirectUri: `${origin}/callback`,
    hits,
    /** The next request to /callback; call before the action that causes it. */
    next(timeoutMs = 10_000) {
      return new Promise((ok, fail) => {
        const t = setTimeout(() => fail(new Error('no callback within the timeout')), timeoutMs);
        waiters.push((u) => {
          clearTimeout(t);
          ok(u);
        });
      });
    },
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/** Launches Debian's Chromium headless. */
export async function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** Fills and submits the login form on `page`. */
export async function signIn(page, username, password) {
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await Promise.all([
    page.waitForLoadState('load'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
}

/** Exchanges an authorization code at /token. */
export function exchangeCode(base, client, code, redirectUri, verifier) {
  return postForm(`${base}/token`, {
    grant_type: 'authorization_code',
    client_id: client.client_id,
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
    resource: `${base}/mcp`,
  });
}
