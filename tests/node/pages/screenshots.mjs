// Writes screenshots of the authorization server's pages, light and dark, to
// docs/screenshots/ (900x700 PNGs), from the real binary in headless Chromium.
//
// Run: node tests/node/pages/screenshots.mjs   (MCPGATE_BIN as for the tests)

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import {
  addClient,
  ROOT,
  authorizeUrl,
  launchBrowser,
  postForm,
  registerClient,
  signIn,
  startCallback,
  startDemo,
} from './harness.mjs';

const OUT = join(ROOT, 'docs', 'screenshots');
const VIEWPORT = { width: 900, height: 700 };

async function main() {
  mkdirSync(OUT, { recursive: true });
  const [gw, browser, cb] = await Promise.all([startDemo(), launchBrowser(), startCallback()]);
  const REDIRECT = cb.redirectUri;
  const written = [];
  try {
    const editor = await registerClient(gw.base, { client_name: 'Example Editor', redirect_uris: [REDIRECT] });
    const cli = await registerClient(gw.base, { client_name: 'Notes CLI', redirect_uris: [REDIRECT] });
    const OOB = 'urn:ietf:wg:oauth:2.0:oob';
    const term = addClient(gw.dataDir, 'Terminal CLI', [OOB]);
    const tv = await registerClient(gw.base, {
      client_name: 'Living Room TV',
      redirect_uris: [],
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code'],
    });

    // Two grants for the account page, made once in a light session.
    {
      const ctx = await browser.newContext({ viewport: VIEWPORT });
      const page = await ctx.newPage();
      await page.goto(authorizeUrl(gw.base, cli, REDIRECT, 'notes:read').url);
      await signIn(page, 'admin', gw.password);
      await allow(page, cb);
      await page.goto(authorizeUrl(gw.base, editor, REDIRECT).url);
      await allow(page, cb);
      await ctx.close();
    }

    for (const scheme of ['light', 'dark']) {
      const ctx = await browser.newContext({ viewport: VIEWPORT, colorScheme: scheme });
      const page = await ctx.newPage();
      const shot = async (name) => {
        const path = join(OUT, `${name}-${scheme}.png`);
        await page.screenshot({ path });
        written.push(path);
      };

      await page.goto(authorizeUrl(gw.base, editor, REDIRECT).url);
      await page.getByLabel('User name').fill('admin');
      await page.getByLabel('Password').fill('wrong password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').waitFor();
      await shot('login-error');
      await page.goto(page.url().replace(/\?.*/, '') + '?next=' + encodeURIComponent('/account'));
      await shot('login');
      await page.goto(authorizeUrl(gw.base, editor, REDIRECT).url);
      await signIn(page, 'admin', gw.password);
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      await shot('consent');

      await page.goto(`${gw.base}/account`);
      await shot('account');

      const da = await postForm(`${gw.base}/device_authorization`, { client_id: tv.client_id, scope: 'notes:read' });
      await page.goto(`${gw.base}/device`);
      await page.getByLabel('Code shown on your device').fill(da.body.user_code);
      await shot('device');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      await shot('device-confirm');

      await page.goto(authorizeUrl(gw.base, term, OOB, 'notes:read').url);
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.getByLabel('Authorization code').waitFor();
      await shot('oob');

      const q = new URLSearchParams({ response_type: 'code', client_id: 'unknown-app', redirect_uri: REDIRECT });
      await page.goto(`${gw.base}/authorize?${q}`);
      await shot('error');
      await ctx.close();
    }
  } finally {
    await browser.close();
    await cb.close();
    await gw.stop();
  }
  for (const p of written) console.log(p);
}

/** Clicks Allow and waits for the redirect to the client's loopback listener. */
async function allow(page, cb) {
  const back = cb.next();
  await page.getByRole('button', { name: 'Allow' }).click();
  await back;
  await page.waitForURL((u) => u.pathname === '/callback');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
