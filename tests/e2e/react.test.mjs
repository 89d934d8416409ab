// Browser tests of web/react.js (TinybirdProvider, useTinybirdQuery, useTinybirdSql) with
// React 18 and React 19 from npm, in headless Chromium, against the real `tinybird-bff demo`
// binary: no bundler, an import map points `react` at React's own files wrapped as ES modules
// (react-esm.mjs) and `tinybird-bff`, `tinybird-bff/react` at the files the BFF serves.
//
// What a user of the hooks would notice is asserted through the network (Chromium's request
// log: how many reads reached Tinybird or the proxy) and through what the components rendered.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, startServer, apiSession, unexpectedConsoleErrors } from './harness.mjs';
import { reactModules } from './react-esm.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const WEB = path.resolve(here, '../../web');
const BASE = '/__react-test__/';
const WEB_FROM_DISK = process.env.TINYBIRD_BFF_WEB_FROM_DISK === '1';

let browser;
before(async () => { browser = await launchBrowser({ localNetworkAccess: false }); });
after(async () => { await browser?.close(); });

/**
 * Opens the test page for React `major` on the BFF's origin (so the session cookie and the CSRF
 * origin check work as for a real app), signed in as alice.
 */
async function openPage(server, major, env = 'development') {
  const react = await reactModules(major, env, `${BASE}react/`);
  const importMap = {
    imports: {
      ...react.importMap,
      'tinybird-bff': '/tinybird-bff.js', // served by the BFF itself, as an app would import it
      'tinybird-bff/react': '/react.js',
    },
  };
  const html = `<!doctype html><meta charset="utf-8"><title>react ${major}</title>
<script type="importmap">${JSON.stringify(importMap)}</script>
<div id="root"></div>
<script type="module" src="${BASE}app.mjs"></script>`;
  const files = new Map([
    ['index.html', ['text/html', html]],
    ['app.mjs', ['text/javascript', readFileSync(path.join(here, 'react-app/app.mjs'))]],
    ...[...react.files].map(([name, src]) => [`react/${name}`, ['text/javascript', src]]),
  ]);
  const context = await browser.newContext();
  const page = await context.newPage();
  const origin = new URL(server.app).origin;
  await page.route((url) => url.origin === origin && url.pathname.startsWith(BASE), (route) => {
    const file = files.get(new URL(route.request().url()).pathname.slice(BASE.length));
    return file
      ? route.fulfill({ status: 200, contentType: file[0], body: file[1] })
      : route.fulfill({ status: 404, body: 'not a test file' });
  });
  if (WEB_FROM_DISK) {
    // While editing web/: the files on disk instead of those embedded in the binary.
    await page.route((url) => url.origin === origin && ['/tinybird-bff.js', '/react.js'].includes(url.pathname), (route) =>
      route.fulfill({ status: 200, contentType: 'text/javascript', body: readFileSync(path.join(WEB, new URL(route.request().url()).pathname)) }));
  }
  const log = { console: [], pageErrors: [], requests: [] };
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log.console.push(m.text()); });
  page.on('pageerror', (e) => log.pageErrors.push(e.message));
  page.on('request', (r) => log.requests.push(r.url()));
  await page.goto(`${origin}${BASE}index.html`);
  await page.waitForSelector('body[data-ready=true]', { state: 'attached', timeout: 20_000 });
  assert.equal(await page.evaluate(() => window.__t.reactVersion), react.version);
  assert.equal(react.version.split('.')[0], String(major));
  await page.evaluate(() => window.__t.client.login('alice', 'alice-demo'));
  /** Requests that reached the network for `pipe` (or `sql`) on `where` ('direct' | 'proxy'). */
  const reads = (what, where) => log.requests.filter((u) => {
    const url = new URL(u);
    const direct = url.origin === server.tinybird && (what === 'sql' ? url.pathname === '/v0/sql' : url.pathname === `/v0/pipes/${what}.json`);
    const proxy = url.origin === origin && (what === 'sql' ? url.pathname === '/api/sql' : url.pathname === `/api/pipes/${what}.json`);
    return where === 'direct' ? direct : where === 'proxy' ? proxy : direct || proxy;
  }).map((u) => new URL(u));
  return { page, context, log, reads, close: () => context.close() };
}

/** Waits until probe `id` rendered a settled state (not loading), and returns it. */
async function settled(page, id) {
  await page.waitForSelector(`[data-testid=probe-${id}][data-loading=false]`, { timeout: 20_000 });
  return page.evaluate((i) => window.__t.state(i), id);
}

/** The rows alice's own proxy call returns for the same pipe and params: the ground truth. */
async function truth(server, pipe, params) {
  const alice = await apiSession(server, 'alice');
  const res = await alice(`/api/pipes/${pipe}.json?${new URLSearchParams(params)}`);
  assert.equal(res.status, 200);
  return (await res.json()).data;
}

function noSurprises(log, allow = []) {
  assert.deepEqual(log.pageErrors, []);
  assert.deepEqual(unexpectedConsoleErrors(log, allow), [], 'no React warning or console error');
}

for (const major of [18, 19]) {
  describe(`web/react.js with React ${major}`, () => {
    let server;
    before(async () => { server = await startServer(); });
    after(async () => { await server?.stop(); });

    /** Runs `fn` with a fresh page; adds the server's output to a failure. */
    const withPage = (fn, env) => async () => {
      const p = await openPage(server, major, env);
      try {
        await fn(p);
      } catch (err) {
        err.message += `\n--- browser console ---\n${p.log.console.join('\n')}\n--- server output ---\n${server.output().slice(-3000)}`;
        throw err;
      } finally {
        await p.close();
      }
    };

    test('useTinybirdQuery renders the signed-in tenant\'s rows from the direct path', { timeout: 60_000 }, withPage(async ({ page, log, reads }) => {
      await page.evaluate(() => window.__t.mount([{ id: 'a', pipe: 'top_products', params: { limit: 5 } }]));
      const first = await page.evaluate(() => window.__t.renders.a[0]);
      assert.equal(first.loading, true, 'the first render is already loading (no idle flash)');
      const s = await settled(page, 'a');
      assert.equal(s.error, null);
      assert.equal(s.path, 'direct');
      assert.deepEqual(s.data, await truth(server, 'top_products', { limit: 5 }));
      assert.equal(s.rows, 5);
      assert.ok(s.data.every((r) => r.org_id === 'acme'), 'only acme rows');
      assert.ok(s.meta.some((c) => c.name === 'units'));
      assert.equal(typeof s.elapsedMs, 'number');
      assert.equal(s.fellBack, false);
      assert.equal(s.retries, 0);
      assert.ok(!s.enumerableKeys.includes('path'), 'path stays non-enumerable on result');
      assert.equal(reads('top_products', 'direct').length, 1);
      noSurprises(log);
    }));

    test('components asking for the same key share one request; other params or paths do not', { timeout: 60_000 }, withPage(async ({ page, log, reads }) => {
      await page.evaluate(() => window.__t.mount([
        { id: 'a', pipe: 'top_products', params: { limit: 4, days: 30 } },
        { id: 'b', pipe: 'top_products', params: { days: 30, limit: '4' } }, // same key: order and type do not matter
        { id: 'c', pipe: 'top_products', params: { limit: 3 } },
        { id: 'd', pipe: 'top_products', params: { limit: 4, days: 30 }, options: { path: 'proxy' } },
      ]));
      const [a, b, c, d] = [await settled(page, 'a'), await settled(page, 'b'), await settled(page, 'c'), await settled(page, 'd')];
      assert.deepEqual(a.data, b.data);
      assert.equal(a.rows, 4);
      assert.equal(c.rows, 3);
      assert.equal(d.path, 'proxy');
      assert.deepEqual(d.data, a.data, 'the proxy serves the same rows');
      const direct = reads('top_products', 'direct');
      assert.equal(direct.length, 2, `two direct reads (limit 4 and limit 3), got ${direct.map(String).join(', ')}`);
      assert.equal(reads('top_products', 'proxy').length, 1);
      noSurprises(log);
    }));

    test('under StrictMode a component mounts its read once and renders it', { timeout: 60_000 }, withPage(async ({ page, log, reads }) => {
      // With a token at hand the read goes straight to fetch, so a remount that dropped it would show.
      await page.evaluate(() => window.__t.client.getToken());
      await page.evaluate(() => window.__t.mount([{ id: 'a', pipe: 'sales_by_day', params: { days: 7 } }], { strict: true }));
      const s = await settled(page, 'a');
      assert.equal(s.error, null);
      assert.equal(s.rows, 7);
      await page.waitForTimeout(300);
      assert.equal(reads('sales_by_day').length, 1, 'StrictMode\'s unmount/remount kept the request in flight');
      const calls = await page.evaluate(() => window.__t.tinybirdCalls());
      assert.deepEqual(calls.map((c) => c.aborted), [false]);
      assert.deepEqual(await page.evaluate(() => window.__t.clientReads()), [{ method: 'query', what: 'sales_by_day', aborted: false }],
        'one read started: the remount joined it instead of aborting it and starting another');
      noSurprises(log);
    }));

    test('unmounting aborts the read in flight through its AbortSignal', { timeout: 60_000 }, withPage(async ({ page, log, reads }) => {
      await page.evaluate(() => window.__t.client.getToken()); // the token first, so the read itself is what waits
      await page.evaluate(() => window.__t.setTinybirdDelay(1500));
      await page.evaluate(() => window.__t.mount([{ id: 'a', pipe: 'recent_orders', params: { limit: 2 } }, { id: 'keep', pipe: 'top_products', params: { limit: 2 } }]));
      await page.waitForFunction(() => window.__t.tinybirdCalls().length === 2);
      await page.evaluate(() => window.__t.setProbes([{ id: 'keep', pipe: 'top_products', params: { limit: 2 } }]));
      const keep = await settled(page, 'keep');
      assert.equal(keep.rows, 2, 'the component still mounted got its rows');
      const calls = await page.evaluate(() => window.__t.tinybirdCalls());
      const gone = calls.find((c) => c.url.includes('/recent_orders.json'));
      assert.deepEqual({ aborted: gone.aborted, reason: gone.reason, sent: gone.sent }, { aborted: true, reason: 'AbortError', sent: false });
      assert.equal(calls.find((c) => c.url.includes('/top_products.json')).aborted, false);
      assert.equal(reads('recent_orders').length, 0, 'the aborted read never reached Tinybird');
      const renders = await page.evaluate(() => window.__t.renders.a);
      assert.ok(renders.every((r) => r.loading && r.error === null), 'the unmounted component never rendered an error');
      noSurprises(log);
    }));

    test('a token refresh refetches only the components that asked for it', { timeout: 60_000 }, withPage(async ({ page, log, reads }) => {
      await page.evaluate(() => window.__t.mount([
        { id: 'asked', pipe: 'top_products', params: { limit: 6 }, options: { refetchOnTokenRefresh: true } },
        { id: 'quiet', pipe: 'recent_orders', params: { limit: 6 } },
      ]));
      await settled(page, 'asked');
      await settled(page, 'quiet');
      // The first token arrived while both reads were in flight: no extra read for it.
      assert.equal(reads('top_products').length, 1);
      const before = await page.evaluate(() => window.__t.renders.asked.length);
      // A new token (minted within the same second it may equal the old one: the 'token' event counts).
      const tokensBefore = await page.evaluate(() => window.__t.calls.filter((c) => c.url.endsWith('/api/token')).length);
      await page.evaluate(() => window.__t.client.refreshToken());
      assert.equal(await page.evaluate(() => window.__t.calls.filter((c) => c.url.endsWith('/api/token')).length), tokensBefore + 1);
      await page.waitForFunction((n) => window.__t.renders.asked.length > n && !window.__t.renders.asked.at(-1).loading, before);
      const asked = await page.evaluate(() => window.__t.renders.asked.slice(-2));
      assert.deepEqual(asked.map((r) => r.loading), [true, false], 'loading during the refetch, with the previous rows kept');
      assert.equal(asked[0].rows, 6);
      await page.waitForTimeout(500);
      assert.equal(reads('top_products').length, 2, 'the component that asked read again');
      assert.equal(reads('recent_orders').length, 1, 'the other did not');
      noSurprises(log);
    }));

    test('refetch() reads again and updates every component of the key', { timeout: 60_000 }, withPage(async ({ page, log, reads }) => {
      await page.evaluate(() => window.__t.mount([
        { id: 'a', pipe: 'top_products', params: { limit: 2 } },
        { id: 'b', pipe: 'top_products', params: { limit: 2 } },
      ]));
      const a1 = await settled(page, 'a');
      await settled(page, 'b');
      await page.evaluate(() => window.__t.refetch('b'));
      const [a2, b2] = await page.evaluate(() => [window.__t.state('a'), window.__t.state('b')]);
      assert.equal(reads('top_products').length, 2);
      assert.equal(a2.loading, false);
      assert.deepEqual(a2.data, a1.data);
      assert.equal(a2.elapsedMs, b2.elapsedMs, 'both show the same (new) result');
      const aRenders = await page.evaluate(() => window.__t.renders.a.map((r) => r.loading));
      assert.deepEqual(aRenders.slice(-2), [true, false], 'a saw b\'s refetch');
      noSurprises(log);
    }));

    test('errors arrive as the client\'s classes; enabled: false reads nothing', { timeout: 60_000 }, withPage(async ({ page, log, reads }) => {
      await page.evaluate(() => window.__t.mount([
        { id: 'denied', pipe: 'orgs_overview' },
        { id: 'off', pipe: 'recent_orders', options: { enabled: false } },
        { id: 'bad', pipe: 'top_products', params: { token: 'x' } },
      ]));
      const denied = await settled(page, 'denied');
      assert.equal(denied.error.name, 'ForbiddenError');
      assert.equal(denied.error.status, 403);
      assert.equal(denied.data, null);
      const bad = await settled(page, 'bad');
      assert.equal(bad.error.name, 'TypeError', 'a token parameter is refused before any request');
      const off = await page.evaluate(() => window.__t.state('off'));
      assert.deepEqual([off.loading, off.data, off.error], [false, null, null]);
      await page.waitForTimeout(300);
      assert.equal(reads('recent_orders').length, 0);
      await page.evaluate(() => window.__t.setProbes([{ id: 'off', pipe: 'recent_orders', options: { enabled: true } }]));
      assert.ok((await settled(page, 'off')).rows > 0, 'enabling it reads');
      // Signed out: the next read fails with SignedOutError rather than hanging or retrying.
      await page.evaluate(() => window.__t.client.logout());
      await page.evaluate(() => window.__t.setProbes([{ id: 'later', pipe: 'top_products', params: { limit: 1 } }]));
      const later = await settled(page, 'later');
      assert.equal(later.error.name, 'SignedOutError');
      noSurprises(log, [/status of 403/]);
    }));

    test('useTinybirdSql counts the tenant\'s orders on both paths', { timeout: 60_000 }, withPage(async ({ page, log, reads }) => {
      const q = 'SELECT count(*) AS n FROM orders';
      await page.evaluate((sql) => window.__t.mount([
        { id: 'direct', sql },
        { id: 'proxy', sql, options: { path: 'proxy' } },
      ]), q);
      const [direct, proxy] = [await settled(page, 'direct'), await settled(page, 'proxy')];
      assert.equal(direct.path, 'direct');
      assert.equal(proxy.path, 'proxy');
      const alice = await apiSession(server, 'alice');
      const expected = Number((await (await alice(`/api/sql?q=${encodeURIComponent(q)}`)).json()).data[0].n);
      assert.ok(expected > 0);
      assert.equal(Number(direct.data[0].n), expected);
      assert.equal(Number(proxy.data[0].n), expected);
      assert.equal(reads('sql', 'direct').length, 1);
      assert.equal(reads('sql', 'proxy').length, 1);
      noSurprises(log);
    }));

    test('works with React\'s production build too', { timeout: 60_000 }, withPage(async ({ page, log }) => {
      await page.evaluate(() => window.__t.mount([{ id: 'a', pipe: 'top_products', params: { limit: 3 } }], { strict: true }));
      const s = await settled(page, 'a');
      assert.equal(s.rows, 3);
      assert.equal(s.path, 'direct');
      noSurprises(log);
    }, 'production'));
  });
}
