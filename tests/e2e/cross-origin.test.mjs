// An app on another origin, as teams deploy one (docs/cross-origin.md): a page served by a
// second server on its own port loads the shipped client (web/tinybird-bff.js) and, in real
// headless Chromium, logs in to a `tinybird-bff serve` with `[cors] allowed_origins`, mints a
// token, calls a pipe directly and through the proxy, and logs out. Two cases: the same host on
// another port (same site: the cookie stays `SameSite=Lax`) and another host (`localhost` vs
// `127.0.0.1`: another site, so the cookie is `SameSite=None; Secure`). A page on an origin not
// in the list is refused by the browser, and the client names the refusal as CORS. The
// one-origin recipes of docs/cross-origin.md (NGINX, Vite) are run in recipes.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { launchBrowser } from './harness.mjs';
import { CLIENT_PAGE, REPO, freePort, journey as journeyIn, startBff } from './cors-harness.mjs';

let browser;
let app; // the second origin's server: {port, close}
before(async () => {
  browser = await launchBrowser();
  app = await appServer();
});
after(async () => {
  await browser?.close();
  await app?.close();
});

/**
 * The app's own server (another origin): `/` is a page that imports the shipped client and
 * exposes it as `window.tbff`; `/tinybird-bff.js` is web/tinybird-bff.js as published.
 */
async function appServer() {
  const client = readFileSync(path.join(REPO, 'web/tinybird-bff.js'));
  const server = createServer((req, res) => {
    if (req.url === '/tinybird-bff.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(client);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' }).end(CLIENT_PAGE);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

/**
 * A browser profile that keeps third-party cookies (Chrome's setting "Allow third-party
 * cookies"). Headless Chromium, like Safari, Firefox's strict mode and every incognito window,
 * blocks them by default, and a session cookie from a BFF on another site is one: see
 * docs/cross-origin.md, "Another site".
 */
async function allowingThirdPartyCookies() {
  const dir = mkdtempSync(path.join(tmpdir(), 'tbff-profile-'));
  mkdirSync(path.join(dir, 'Default'));
  writeFileSync(path.join(dir, 'Default/Preferences'), JSON.stringify({ profile: { cookie_controls_mode: 0, block_third_party_cookies: false } }));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-features=TrackingProtection3pcd'],
  });
  // Chromium may still be writing the profile as it exits: best effort.
  context.on('close', () => { try { rmSync(dir, { recursive: true, force: true, maxRetries: 5 }); } catch { /* left in tmp */ } });
  return context;
}

/** The journey of cors-harness.mjs in this file's browser. */
function journey(origin, bff, context = null) {
  return journeyIn(browser, origin, bff, context);
}

test('an app on another port of the same host logs in, mints and calls a pipe through the shipped client', { timeout: 60_000 }, async () => {
  const origin = `http://127.0.0.1:${app.port}`;
  const bff = await startBff([origin]);
  try {
    const { result, cookies } = await journey(origin, bff);
    assert.equal(result.error, undefined, JSON.stringify(result));
    assert.equal(result.me, 'alice');
    assert.equal(result.token, 'eyJ');
    assert.deepEqual(result.direct, { path: 'direct', rows: result.direct.rows });
    assert.ok(result.direct.rows > 0);
    assert.deepEqual(result.proxy, { path: 'proxy', orgs: ['acme'] });
    assert.equal(result.afterLogout, 401);
    assert.match(cookies[0], /SameSite=Lax/i, 'the same site keeps a Lax cookie');
  } catch (err) {
    err.message += `\n--- serve output ---\n${bff.output().slice(-3000)}`;
    throw err;
  } finally {
    await bff.stop();
  }
});

test('an app on another site gets a SameSite=None; Secure session and the same journey', { timeout: 60_000 }, async () => {
  const origin = `http://localhost:${app.port}`;
  const bff = await startBff([origin]);
  try {
    const { result, cookies } = await journey(origin, bff, await allowingThirdPartyCookies());
    assert.equal(result.error, undefined, JSON.stringify(result));
    assert.equal(result.me, 'alice');
    assert.ok(result.direct.rows > 0);
    assert.deepEqual(result.proxy, { path: 'proxy', orgs: ['acme'] });
    assert.equal(result.afterLogout, 401);
    assert.match(cookies[0], /SameSite=None/i);
    assert.match(cookies[0], /Secure/i);
    // A browser that blocks third-party cookies (this one's default) drops that cookie: the
    // login answers 200 and the next call is signed out. docs/cross-origin.md says so.
    const blocked = await journey(origin, bff);
    assert.equal(blocked.result.error?.name, 'SignedOutError', JSON.stringify(blocked.result));
  } catch (err) {
    err.message += `\n--- serve output ---\n${bff.output().slice(-3000)}`;
    throw err;
  } finally {
    await bff.stop();
  }
});

test('a page on an origin not in the list is refused, and the client says CORS, not network', { timeout: 60_000 }, async () => {
  const bff = await startBff(['http://127.0.0.1:1']);
  try {
    const { result } = await journey(`http://127.0.0.1:${app.port}`, bff);
    assert.equal(result.error?.name, 'CorsError', JSON.stringify(result));
    assert.match(result.error.message, /CORS/);
    assert.match(result.error.message, new RegExp(`allowed_origins`));
    assert.match(result.error.message, new RegExp(`http://127.0.0.1:${app.port}`));
    assert.doesNotMatch(result.error.message, /Could not reach/);
    // The BFF itself never logged anyone in: the preflight got no CORS headers, so the
    // browser never sent the login.
    assert.doesNotMatch(bff.output(), /"event":"login"/);
  } finally {
    await bff.stop();
  }
  // A BFF that is not there at all is still a network error.
  const gone = await journey(`http://127.0.0.1:${app.port}`, { url: `http://127.0.0.1:${await freePort()}` });
  assert.equal(gone.result.error?.name, 'NetworkError', JSON.stringify(gone.result));
  assert.match(gone.result.error.message, /Could not reach the BFF/);
});
