// The authorization server's pages in headless Chromium, against the real
// mcpgate binary (`serve --demo`): sign-in, consent, the redirect back to a
// loopback client, the account page, the device and out-of-band pages, the
// pages' security headers and cookie, framing, dark mode and accessible names.
//
// Run: node --test tests/node/pages/   (MCPGATE_BIN = the binary, default target/debug/mcpgate)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  addClient,
  authorizeUrl,
  exchangeCode,
  launchBrowser,
  postForm,
  registerClient,
  signIn,
  startCallback,
  startDemo,
} from './harness.mjs';

const SCOPES = [
  ['notes:read', 'Read your notes'],
  ['notes:write', 'Create and change your notes'],
];

/**
 * What every page must offer assistive technology: a language, one h1, an
 * accessible name on every control, no script, alerts that say something.
 */
async function checkAccessible(page) {
  assert.equal(await page.getAttribute('html', 'lang'), 'en', 'html lang');
  assert.equal(await page.locator('h1').count(), 1, 'one h1');
  assert.equal(await page.locator('script').count(), 0, 'the pages need no script');
  const controls = page.locator('input:not([type=hidden]), button, select, textarea');
  const n = await controls.count();
  for (let i = 0; i < n; i++) {
    const snap = await controls.nth(i).ariaSnapshot();
    assert.match(snap, /^- \w+ "[^"]+"/, `control ${i} has no accessible name: ${snap}`);
  }
  for (const a of await page.getByRole('alert').all()) {
    assert.notEqual((await a.textContent()).trim(), '', 'an empty alert');
  }
}

/** The relative luminance (0..1) of a CSS `rgb(...)` colour. */
function luminance(css) {
  const [r, g, b] = css.match(/[\d.]+/g).slice(0, 3).map((v) => {
    const c = Number(v) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

describe('authorization server pages in Chromium', () => {
  let gw;
  let browser;
  let cb;
  let client;

  before(async () => {
    [gw, browser, cb] = await Promise.all([startDemo(), launchBrowser(), startCallback()]);
    client = await registerClient(gw.base, {
      client_name: 'Pages Test App',
      redirect_uris: [cb.redirectUri],
    });
  });

  after(async () => {
    await browser?.close();
    await cb?.close();
    await gw?.stop();
  });

  test('sign-in page: headers, cookie, labels; a wrong password is announced', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const { url } = authorizeUrl(gw.base, client, cb.redirectUri);
    await page.goto(url);
    assert.equal(new URL(page.url()).pathname, '/login', 'an anonymous /authorize goes to sign-in');
    const first = await page.goto(page.url());
    const h = await first.allHeaders();
    assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(h['x-frame-options'], 'DENY');
    assert.equal(h['cache-control'], 'no-store');
    assert.equal(h['referrer-policy'], 'no-referrer');
    await checkAccessible(page);
    assert.equal(await page.getByLabel('User name').getAttribute('autocomplete'), 'username');
    assert.equal(await page.getByLabel('Password').getAttribute('autocomplete'), 'current-password');

    const [cookie] = await ctx.cookies(gw.base);
    assert.ok(cookie, 'a session cookie is set');
    assert.equal(cookie.httpOnly, true, 'HttpOnly');
    assert.equal(cookie.sameSite, 'Lax', 'SameSite=Lax');
    // http on loopback: the one case where Secure (and so __Host-) is relaxed.
    assert.equal(cookie.secure, false);
    assert.equal(cookie.path, '/');

    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Password').fill('not-the-password');
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    assert.equal(resp.status(), 401);
    await page.waitForLoadState('load');
    await assert.doesNotReject(page.getByRole('alert').filter({ hasText: 'Unknown user or wrong password.' }).waitFor());
    assert.equal(await page.getByLabel('User name').inputValue(), 'admin', 'the user name is kept');
    assert.equal(await page.getByLabel('Password').inputValue(), '', 'the password is not echoed');
    await checkAccessible(page);

    const before = (await ctx.cookies(gw.base))[0].value;
    await signIn(page, 'admin', gw.password);
    const after = (await ctx.cookies(gw.base))[0].value;
    assert.notEqual(after, before, 'signing in starts a new session id');
    await ctx.close();
  });

  test('consent shows the client, the redirect host and each scope; Allow returns code, state and iss', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const { url, state, verifier } = authorizeUrl(gw.base, client, cb.redirectUri);
    await page.goto(url);
    await signIn(page, 'admin', gw.password);

    await assert.doesNotReject(
      page.getByRole('heading', { level: 1, name: 'Allow Pages Test App to access your account?' }).waitFor(),
    );
    const host = new URL(cb.redirectUri).host;
    await assert.doesNotReject(page.locator('.host', { hasText: host }).waitFor());
    for (const [name, description] of SCOPES) {
      const item = page.getByRole('listitem').filter({ hasText: description });
      assert.equal(await item.count(), 1, `scope ${name} listed once`);
      assert.match(await item.textContent(), new RegExp(name));
    }
    const remember = page.getByLabel(/Remember this decision/);
    assert.equal(await remember.isChecked(), false, '"remember" is opt-in');
    await checkAccessible(page);

    const hit = cb.next();
    await page.getByRole('button', { name: 'Allow' }).click();
    const back = await hit;
    assert.equal(back.pathname, '/callback');
    assert.ok(back.searchParams.get('code'), 'a code');
    assert.equal(back.searchParams.get('state'), state);
    assert.equal(back.searchParams.get('iss'), gw.base);
    await page.waitForURL((u) => u.pathname === '/callback');

    const tok = await exchangeCode(gw.base, client, back.searchParams.get('code'), cb.redirectUri, verifier);
    assert.equal(tok.status, 200, JSON.stringify(tok.body));
    assert.equal(tok.body.scope.split(' ').sort().join(' '), 'notes:read notes:write');

    // The account page lists the grant; revoking it ends the refresh token too.
    await page.goto(`${gw.base}/account`);
    await checkAccessible(page);
    await assert.doesNotReject(page.getByRole('heading', { level: 1, name: 'Your account' }).waitFor());
    const row = page.getByRole('listitem').filter({ hasText: 'Pages Test App' });
    assert.equal(await row.count(), 1, 'the grant is listed');
    assert.match(await row.textContent(), /notes:read notes:write/);
    await row.getByRole('button', { name: 'Revoke access of Pages Test App' }).click();
    await assert.doesNotReject(page.getByRole('status').filter({ hasText: 'Access revoked.' }).waitFor());
    assert.equal(await page.getByRole('listitem').filter({ hasText: 'Pages Test App' }).count(), 0, 'the grant is gone');
    const refreshed = await postForm(`${gw.base}/token`, {
      grant_type: 'refresh_token',
      client_id: client.client_id,
      refresh_token: tok.body.refresh_token,
    });
    assert.equal(refreshed.status, 400);
    assert.equal(refreshed.body.error, 'invalid_grant');
    await ctx.close();
  });

  test('Deny returns error=access_denied with state and iss', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const { url, state } = authorizeUrl(gw.base, client, cb.redirectUri, 'notes:read');
    await page.goto(url);
    await signIn(page, 'admin', gw.password);
    const hit = cb.next();
    await page.getByRole('button', { name: 'Deny' }).click();
    const back = await hit;
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('state'), state);
    assert.equal(back.searchParams.get('iss'), gw.base);
    assert.equal(back.searchParams.get('code'), null);
    await ctx.close();
  });

  test('"Remember" skips the consent page next time', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const app = await registerClient(gw.base, { client_name: 'Remembered App', redirect_uris: [cb.redirectUri] });
    const first = authorizeUrl(gw.base, app, cb.redirectUri, 'notes:read');
    await page.goto(first.url);
    await signIn(page, 'admin', gw.password);
    await page.getByLabel(/Remember this decision/).check();
    let hit = cb.next();
    await page.getByRole('button', { name: 'Allow' }).click();
    assert.ok((await hit).searchParams.get('code'));

    const second = authorizeUrl(gw.base, app, cb.redirectUri, 'notes:read');
    hit = cb.next();
    await page.goto(second.url);
    const back = await hit;
    assert.ok(back.searchParams.get('code'), `straight back with a code: ${back}`);
    assert.equal(back.searchParams.get('state'), second.state);
    await ctx.close();
  });

  test('the whole sign-in works with JavaScript off', async () => {
    const ctx = await browser.newContext({ javaScriptEnabled: false });
    const page = await ctx.newPage();
    const { url, state } = authorizeUrl(gw.base, client, cb.redirectUri, 'notes:read');
    await page.goto(url);
    await signIn(page, 'admin', gw.password);
    const hit = cb.next();
    await page.getByRole('button', { name: 'Allow' }).click();
    const back = await hit;
    assert.ok(back.searchParams.get('code'));
    assert.equal(back.searchParams.get('state'), state);
    await ctx.close();
  });

  test('the consent page cannot be framed by another origin', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const { url } = authorizeUrl(gw.base, client, cb.redirectUri, 'notes:read');
    await page.goto(url);
    await signIn(page, 'admin', gw.password);
    assert.equal(await page.getByRole('button', { name: 'Allow' }).count(), 1, 'consent shown top-level');

    // A page on another origin (the callback listener) frames the same consent URL.
    const framer = await startCallback({
      '/frame': `<!doctype html><html lang="en"><title>framer</title><iframe id="f" src="${url.replace(/&/g, '&amp;')}" width="600" height="400"></iframe></html>`,
    });
    try {
      const refused = [];
      page.on('console', (m) => refused.push(m.text()));
      await page.goto(`${framer.origin}/frame`);
      await page.waitForTimeout(500);
      const frame = page.frames().find((f) => f !== page.mainFrame());
      assert.ok(frame, 'the iframe exists');
      assert.equal(await frame.getByRole('button', { name: 'Allow' }).count(), 0, 'no consent inside a frame');
      assert.ok(
        refused.some((t) => /frame-ancestors|Refused to (display|frame)/.test(t)),
        `Chromium reports the refusal: ${refused.join(' | ')}`,
      );
    } finally {
      await framer.close();
    }
    await ctx.close();
  });

  test('device verification: enter the user code, approve, the device gets tokens', async () => {
    const tv = await registerClient(gw.base, {
      client_name: 'Living Room TV',
      redirect_uris: [],
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    });
    const da = await postForm(`${gw.base}/device_authorization`, { client_id: tv.client_id, scope: 'notes:read' });
    assert.equal(da.status, 200, JSON.stringify(da.body));

    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(da.body.verification_uri);
    await signIn(page, 'admin', gw.password);
    assert.equal(new URL(page.url()).pathname, '/device');
    await checkAccessible(page);
    const code = page.getByLabel('Code shown on your device');
    assert.equal(await code.getAttribute('autocomplete'), 'one-time-code');

    await code.fill('ZZZZ-ZZZZ');
    await page.getByRole('button', { name: 'Continue' }).click();
    await assert.doesNotReject(page.getByRole('alert').filter({ hasText: /unknown, expired or used/ }).waitFor());
    await checkAccessible(page);

    // Lower case and no dash: what people type.
    await page.getByLabel('Code shown on your device').fill(da.body.user_code.replace('-', '').toLowerCase());
    await page.getByRole('button', { name: 'Continue' }).click();
    await assert.doesNotReject(
      page.getByRole('heading', { level: 1, name: 'Allow Living Room TV on your device?' }).waitFor(),
    );
    assert.match(await page.locator('main').textContent(), new RegExp(da.body.user_code));
    assert.equal(await page.getByRole('listitem').filter({ hasText: 'Read your notes' }).count(), 1);
    await checkAccessible(page);
    await page.getByRole('button', { name: 'Allow' }).click();
    await assert.doesNotReject(page.getByRole('status').filter({ hasText: 'Your device is connected' }).waitFor());

    let tok;
    for (let i = 0; i < 3; i++) {
      tok = await postForm(`${gw.base}/token`, {
        grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
        client_id: tv.client_id,
        device_code: da.body.device_code,
      });
      if (tok.body.error !== 'slow_down') break;
      await new Promise((ok) => setTimeout(ok, (da.body.interval + 1) * 1000));
    }
    assert.equal(tok.status, 200, JSON.stringify(tok.body));
    assert.equal(tok.body.scope, 'notes:read');
    await ctx.close();
  });

  test('out-of-band: the page shows a code that the CLI can redeem', async () => {
    const oob = 'urn:ietf:wg:oauth:2.0:oob';
    const cli = addClient(gw.dataDir, 'Terminal CLI', [oob]);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const { url, verifier } = authorizeUrl(gw.base, cli, oob, 'notes:read');
    await page.goto(url);
    await signIn(page, 'admin', gw.password);
    await assert.doesNotReject(page.locator('.host', { hasText: 'this page' }).waitFor());
    await page.getByRole('button', { name: 'Allow' }).click();
    await assert.doesNotReject(page.getByRole('heading', { level: 1, name: 'Copy this code into Terminal CLI' }).waitFor());
    await checkAccessible(page);
    const code = await page.getByLabel('Authorization code').inputValue();
    assert.match(code, /^[A-Za-z0-9_-]{20,}$/);
    const tok = await exchangeCode(gw.base, cli, code, oob, verifier);
    assert.equal(tok.status, 200, JSON.stringify(tok.body));
    await ctx.close();
  });

  test('an unknown client gets an error page, not a redirect', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const q = new URLSearchParams({
      response_type: 'code',
      client_id: 'no-such-client',
      redirect_uri: cb.redirectUri,
      code_challenge: 'x'.repeat(43),
      code_challenge_method: 'S256',
    });
    const resp = await page.goto(`${gw.base}/authorize?${q}`);
    assert.equal(resp.status(), 400);
    assert.equal(new URL(page.url()).origin, gw.base, 'stays on the server');
    await assert.doesNotReject(page.getByRole('alert').filter({ hasText: 'Unknown application' }).waitFor());
    await checkAccessible(page);
    await ctx.close();
  });

  test('small screens: the consent page fits 360 px without sideways scrolling', async () => {
    const ctx = await browser.newContext({ viewport: { width: 360, height: 640 } });
    const page = await ctx.newPage();
    await page.goto(authorizeUrl(gw.base, client, cb.redirectUri).url);
    await signIn(page, 'admin', gw.password);
    await page.getByRole('button', { name: 'Allow' }).waitFor();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 360, `page is ${width} px wide`);
    for (const name of ['Allow', 'Deny']) {
      const box = await page.getByRole('button', { name }).boundingBox();
      assert.ok(box.height >= 40 && box.x >= 0 && box.x + box.width <= 360, `${name} is a full-size target`);
    }
    await ctx.close();
  });

  test('light and dark colour schemes', async () => {
    for (const [scheme, dark] of [['light', false], ['dark', true]]) {
      const ctx = await browser.newContext({ colorScheme: scheme });
      const page = await ctx.newPage();
      await page.goto(`${gw.base}/login`);
      const bodyBg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const mainBg = await page.evaluate(() => getComputedStyle(document.querySelector('main')).backgroundColor);
      const fg = await page.evaluate(() => getComputedStyle(document.body).color);
      if (dark) {
        assert.ok(luminance(bodyBg) < 0.05, `dark body background, got ${bodyBg}`);
        assert.ok(luminance(mainBg) < 0.08, `dark card, got ${mainBg}`);
        assert.ok(luminance(fg) > 0.6, `light text, got ${fg}`);
      } else {
        assert.ok(luminance(bodyBg) > 0.8, `light body background, got ${bodyBg}`);
        assert.ok(luminance(fg) < 0.05, `dark text, got ${fg}`);
      }
      // Keyboard focus is visible: a focused input draws an outline.
      await page.getByLabel('User name').focus();
      await page.keyboard.press('Tab');
      await page.keyboard.press('Shift+Tab');
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
      assert.notEqual(outline, 'none', 'a visible focus outline');
      await ctx.close();
    }
  });
});
