// Browser tests of the demo page against the real `tinybird-bff demo` binary:
// login, tenant isolation on the direct path, token refresh before expiry,
// fallback to the proxy when Tinybird's origin is blocked, logout, and a
// second tenant. Each test starts its own server on free ports. The SQL console
// and the sign-in providers have their own files (sql-console, login-providers).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openApp, login, waitServed, column, artifact, unexpectedConsoleErrors,
} from './harness.mjs';

const ORG_COLUMN = 7; // recent-orders: Order, Time, Customer, Product, Qty, Amount, Org

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Runs `fn` with a fresh server and page; always stops both. */
async function withApp(opts, fn) {
  const server = await startServer(opts);
  let ctx;
  try {
    ctx = await openApp(browser, server);
    await fn({ server, ...ctx });
  } catch (err) {
    err.message += `\n--- server output ---\n${server.output().slice(-4000)}`;
    throw err;
  } finally {
    await ctx?.context.close();
    await server.stop();
  }
}

const isPipeCall = (tinybird) => (r) => r.url.startsWith(`${tinybird}/v0/pipes/`);

test('log in: demo logins are listed, a wrong password is refused, alice gets her dashboard', { timeout: 90_000 }, async () => {
  await withApp({}, async ({ page, log }) => {
    const logins = await page.locator('[data-testid=demo-logins] button').allTextContents();
    assert.deepEqual(logins.map((t) => t.trim().split(/\s/)[0]), ['alice', 'bob', 'carol', 'admin']);

    await page.fill('#login-username', 'alice');
    await page.fill('#login-password', 'not-her-password');
    await page.click('[data-testid=login-submit]');
    await page.locator('[data-testid=login-error]').waitFor({ state: 'visible' });
    assert.match(await page.textContent('[data-testid=login-error]'), /wrong username or password/i);

    await login(page, 'alice');
    assert.match(await page.textContent('[data-testid=user-tenant]'), /acme/);
    assert.ok((await column(page, 'top-products', 1)).length > 0, 'top products has rows');
    assert.equal(await page.getAttribute('[data-testid=sales-chart]', 'data-rendered'), 'true');
    assert.deepEqual(unexpectedConsoleErrors(log), []);
    assert.deepEqual(log.pageErrors, []);
  });
});

test('repeated wrong passwords are throttled and the page says how long to wait', { timeout: 90_000 }, async () => {
  await withApp({}, async ({ page }) => {
    await page.fill('#login-username', 'carol');
    let message = '';
    for (let i = 0; i < 12 && !/too many/i.test(message); i++) {
      await page.fill('#login-password', `wrong-${i}`);
      await page.click('[data-testid=login-submit]');
      await page.locator('[data-testid=login-error]').waitFor({ state: 'visible' });
      await page.waitForFunction(() => !document.querySelector('[data-testid=login-submit]').disabled);
      message = await page.textContent('[data-testid=login-error]');
    }
    assert.match(message, /Too many attempts\. Try again in \d+/);
  });
});

test('direct queries return only the tenant rows, even with org_id=globex added to the URL', { timeout: 90_000 }, async () => {
  await withApp({}, async ({ server, page, log }) => {
    await login(page, 'alice');
    for (const pipe of ['top_products', 'sales_by_day', 'recent_orders']) {
      assert.equal(await page.getAttribute(`[data-testid=served-${pipe}]`, 'data-path'), 'direct', `${pipe} went direct`);
    }
    const direct = log.requests.filter(isPipeCall(server.tinybird));
    assert.ok(direct.length >= 3, 'the browser called Tinybird itself');
    assert.match(direct[0].headers.authorization ?? '', /^Bearer ey/, 'with the JWT as a bearer token');
    // The proxy served only the comparison the page runs on load (its pipe is top_products).
    const proxied = log.requests.filter((r) => r.url.includes('/api/pipes/'));
    assert.ok(proxied.every((r) => r.url.includes('/api/pipes/top_products.json')), 'and not the proxy');
    const orgs = await column(page, 'recent-orders', ORG_COLUMN);
    assert.ok(orgs.length > 0);
    assert.deepEqual([...new Set(orgs)], ['acme']);
    const claims = JSON.parse(await page.textContent('[data-testid=token-claims]'));
    const pipeScopes = claims.scopes.filter((s) => s.type === 'PIPES:READ');
    const sqlScopes = claims.scopes.filter((s) => s.type === 'DATASOURCES:READ');
    assert.ok(pipeScopes.length > 0 && pipeScopes.every((s) => s.fixed_params?.org_id === 'acme'), 'every pipe scope is pinned to acme');
    assert.ok(sqlScopes.length > 0 && sqlScopes.every((s) => s.filter === "org_id = 'acme'"), 'every data source is filtered to acme');
    assert.ok(!claims.scopes.some((s) => s.resource === 'orgs_overview'), 'no admin pipe in a tenant token');

    // Rewrite every Tinybird call to ask for globex: fixed_params must win.
    let rewritten = 0;
    await page.route(`${server.tinybird}/v0/pipes/**`, (route) => {
      const url = new URL(route.request().url());
      url.searchParams.set('org_id', 'globex');
      rewritten += 1;
      route.continue({ url: url.toString() });
    });
    const before = log.requests.length;
    await page.click('[data-testid=refresh]');
    await waitServed(page, 'direct');
    assert.ok(rewritten >= 3, `the dashboard's Tinybird calls were rewritten (${rewritten})`);
    assert.deepEqual([...new Set(await column(page, 'recent-orders', ORG_COLUMN))], ['acme'], 'globex rows never arrive');
    await page.unroute(`${server.tinybird}/v0/pipes/**`);

    // The same through the client on both paths, explicitly.
    const seen = await page.evaluate(async () => {
      const c = window.tbDemo.client;
      const out = {};
      for (const path of ['direct', 'proxy']) {
        const r = await c.query('recent_orders', { limit: 100, org_id: 'globex' }, { path });
        out[path] = { path: r.path, orgs: [...new Set(r.data.map((row) => row.org_id))], rows: r.data.length };
      }
      return out;
    });
    assert.deepEqual(seen.direct.orgs, ['acme']);
    assert.deepEqual(seen.proxy.orgs, ['acme']);
    assert.equal(seen.proxy.path, 'proxy');
    assert.ok(log.requests.length > before);

    // The latency comparison draws both paths, then the dashboard screenshot.
    await page.selectOption('[data-testid=compare-n]', '10');
    await page.click('[data-testid=compare-run]');
    await page.waitForSelector('[data-testid=compare-status][data-done]', { timeout: 60_000 });
    const stats = await page.$$eval('[data-testid=compare-stats] tbody tr', (rows) => rows.map((r) => [r.dataset.path, r.cells[1].textContent, r.cells[9].textContent]));
    assert.deepEqual(stats, [['direct', '10', '0'], ['proxy', '10', '0']]);
    assert.equal(await page.getAttribute('[data-testid=compare-hist]', 'data-rendered'), 'true');
    assert.match(await page.textContent('[data-testid=exposure-direct]'), /Authorization: Bearer ey/);
    assert.match(await page.textContent('[data-testid=exposure-proxy]'), /token in the browser: none/);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: artifact('dashboard.png'), fullPage: true });
    assert.deepEqual(unexpectedConsoleErrors(log), []);
  });
});

test('the token is refreshed before it expires (--token-ttl 20)', { timeout: 90_000 }, async () => {
  await withApp({ ttl: 20 }, async ({ server, page, log }) => {
    await login(page, 'alice');
    await page.evaluate(() => {
      window.__tokens = [];
      window.tbDemo.client.on('token', (i) => window.__tokens.push({ token: i.token, expiresAt: i.expiresAt, expiresIn: i.expiresIn, serverNow: i.expiresAt - i.secondsLeft }));
    });
    const first = await page.evaluate(() => window.tbDemo.client.tokenInfo());
    assert.ok(first.expiresIn <= 20 && first.expiresIn >= 19, `ttl honoured: ${first.expiresIn}`);
    const countdown = Number(await page.getAttribute('[data-testid=token-countdown]', 'data-seconds'));
    assert.ok(countdown > 0 && countdown <= 20, `countdown ${countdown}`);

    await page.waitForFunction(() => window.__tokens.length >= 1, null, { timeout: 30_000 });
    const [second] = await page.evaluate(() => window.__tokens);
    assert.notEqual(second.token, first.token);
    assert.ok(second.serverNow < first.expiresAt, `refreshed at ${second.serverNow}, old token expired at ${first.expiresAt}`);
    assert.ok(second.expiresAt > first.expiresAt);
    assert.ok(Number(await page.textContent('[data-testid=token-refresh-count]')) >= 2);

    // Queries after the old token's expiry use the new one and never see a 403.
    await page.waitForFunction((exp) => Date.now() / 1000 > exp + 1, first.expiresAt - first.serverOffsetMs / 1000, { timeout: 30_000 });
    await page.click('[data-testid=refresh]');
    await waitServed(page, 'direct');
    const last = log.requests.filter(isPipeCall(server.tinybird)).at(-1);
    assert.equal(last.headers.authorization, `Bearer ${(await page.evaluate(() => window.tbDemo.client.tokenInfo())).token}`);
    const refused = log.responses.filter((r) => r.url.startsWith(server.tinybird) && r.status === 403);
    assert.deepEqual(refused, [], 'no request ever went out with an expired token');
  });
});

test('429s from Tinybird are backed off and retried without reading Retry-After', { timeout: 90_000 }, async () => {
  await withApp({}, async ({ server, page, log }) => {
    await login(page, 'alice');
    // The demo mints rps-limited tokens; a burst well past the limit must still succeed.
    const outcome = await page.evaluate(async () => {
      const c = window.tbDemo.client;
      const retries = [];
      const off = c.on('retry', (e) => retries.push(e));
      const rps = c.tokenInfo().claims.limits?.rps;
      // Bursts of twice the limit until one is throttled: GCRA refills rps requests a second,
      // so on a slow machine a single burst can stay under the limit.
      const results = [];
      for (let round = 0; round < 6 && retries.length === 0; round++) {
        const burst = Array.from({ length: (rps ?? 20) * 2 }, () => c.query('top_products', { limit: 1 }, { path: 'direct' }));
        results.push(...(await Promise.allSettled(burst)));
      }
      off();
      return {
        rps,
        total: results.length,
        ok: results.filter((r) => r.status === 'fulfilled').length,
        failed: results.filter((r) => r.status === 'rejected').map((r) => r.reason.message),
        retried: results.filter((r) => r.status === 'fulfilled' && r.value.retries > 0).length,
        delays: retries.map((r) => r.delayMs),
        retryAfters: retries.map((r) => r.retryAfter),
      };
    });
    assert.ok(outcome.rps > 0, 'the demo token carries limits.rps');
    assert.deepEqual(outcome.failed, []);
    assert.equal(outcome.ok, outcome.total);
    assert.ok(outcome.retried > 0, 'some queries were rate limited and retried');
    // Tinybird exposes only X-Tb-Warning to browsers, so a direct 429's Retry-After is unreadable
    // (the local endpoint does the same): the client's exponential backoff does the waiting.
    assert.ok(outcome.retryAfters.every((s) => s === null), `Retry-After is not readable cross-origin: ${outcome.retryAfters}`);
    assert.ok(outcome.delays.every((d) => [250, 500, 1000].includes(d)), `backoff from retryBaseMs: ${outcome.delays}`);
    assert.ok(log.responses.some((r) => r.url.startsWith(server.tinybird) && r.status === 429));
  });
});

test('with the Tinybird origin blocked, the same queries succeed through the proxy and the page says so', { timeout: 90_000 }, async () => {
  await withApp({}, async ({ server, page, log }) => {
    await login(page, 'alice');
    const directTop = await column(page, 'top-products', 1);
    const directOrders = await column(page, 'recent-orders', 1);
    assert.equal(await page.getAttribute('[data-testid=path-indicator]', 'data-path'), 'direct');

    await page.route(`${server.tinybird}/**`, (route) => route.abort());
    await page.click('[data-testid=refresh]');
    await waitServed(page, 'proxy');
    await page.locator('[data-testid=fallback-banner]').waitFor({ state: 'visible' });
    assert.match(await page.textContent('[data-testid=fallback-banner]'), /proxy/);
    assert.equal(await page.getAttribute('[data-testid=path-indicator]', 'data-path'), 'proxy');
    assert.match(await page.textContent('[data-testid=served-top_products]'), /proxy/);
    assert.deepEqual(await column(page, 'top-products', 1), directTop, 'same top products through the proxy');
    assert.deepEqual(await column(page, 'recent-orders', 1), directOrders, 'same orders through the proxy');
    assert.deepEqual([...new Set(await column(page, 'recent-orders', ORG_COLUMN))], ['acme']);
    const proxied = log.requests.filter((r) => r.url.startsWith(`${server.app}/api/pipes/`));
    assert.ok(proxied.length >= 3);
    assert.ok(proxied.every((r) => !r.headers.authorization), 'no token sent to the proxy');
    assert.match(await page.textContent('[data-testid=activity-log]'), /Fell back to the proxy/);

    // Sticky: the next load goes straight to the proxy without probing Tinybird.
    const directBefore = log.requests.filter(isPipeCall(server.tinybird)).length;
    await page.click('[data-testid=refresh]');
    await waitServed(page, 'proxy');
    assert.equal(log.requests.filter(isPipeCall(server.tinybird)).length, directBefore);

    // Forcing direct surfaces the failure instead of hiding it.
    await page.click('label[for=mode-direct]');
    await page.locator('[data-testid=error-top_products]').waitFor({ state: 'visible' });
    assert.match(await page.textContent('[data-testid=error-top_products]'), /Could not reach Tinybird/);
    // Forcing proxy works without any token request.
    const tokenCalls = log.requests.filter((r) => r.url.endsWith('/api/token')).length;
    await page.click('label[for=mode-proxy]');
    await waitServed(page, 'proxy');
    assert.equal(log.requests.filter((r) => r.url.endsWith('/api/token')).length, tokenCalls);
    assert.deepEqual(unexpectedConsoleErrors(log, [/ERR_FAILED/]), []);
  });
});

test('logout stops queries with a signed-out error', { timeout: 90_000 }, async () => {
  await withApp({}, async ({ server, page, context, log }) => {
    await login(page, 'alice');
    await page.click('[data-testid=logout]');
    await page.locator('[data-testid=login-view]').waitFor({ state: 'visible' });
    assert.match(await page.textContent('[data-testid=signed-out-notice]'), /signed out/i);
    const directBefore = log.requests.filter(isPipeCall(server.tinybird)).length;
    const outcome = await page.evaluate(async () => {
      const c = window.tbDemo.client;
      const tryIt = (path) => c.query('top_products', { limit: 3 }, path ? { path } : {}).then(() => 'ok', (e) => e.name);
      return { auto: await tryIt(), direct: await tryIt('direct'), proxy: await tryIt('proxy'), token: c.tokenInfo(), me: (await fetch('/api/me')).status };
    });
    assert.deepEqual(outcome, { auto: 'SignedOutError', direct: 'SignedOutError', proxy: 'SignedOutError', token: null, me: 401 });
    assert.equal(log.requests.filter(isPipeCall(server.tinybird)).length, directBefore, 'no Tinybird call after logout');

    // A session that ends server-side while the dashboard is open (cookie gone).
    await login(page, 'alice');
    await page.click('label[for=mode-proxy]');
    await waitServed(page, 'proxy');
    await context.clearCookies();
    await page.click('[data-testid=refresh]');
    await page.locator('[data-testid=login-view]').waitFor({ state: 'visible' });
    assert.match(await page.textContent('[data-testid=signed-out-notice]'), /Signed out/);
  });
});

test('a second tenant sees only its own rows; only admin sees every organisation', { timeout: 90_000 }, async () => {
  await withApp({}, async ({ page, context }) => {
    await login(page, 'alice');
    const aliceOrders = await column(page, 'recent-orders', 1);
    assert.equal(await page.isVisible('[data-testid=orgs-card]'), false);
    const forbidden = await page.evaluate(() => window.tbDemo.client.query('orgs_overview').then(() => 'ok', (e) => `${e.name} ${e.status}`));
    assert.equal(forbidden, 'ForbiddenError 403');
    await page.click('[data-testid=logout]');
    await page.locator('[data-testid=login-view]').waitFor({ state: 'visible' });

    await login(page, 'bob');
    assert.match(await page.textContent('[data-testid=user-tenant]'), /globex/);
    const bobOrgs = await column(page, 'recent-orders', ORG_COLUMN);
    assert.ok(bobOrgs.length > 0);
    assert.deepEqual([...new Set(bobOrgs)], ['globex']);
    const bobOrders = await column(page, 'recent-orders', 1);
    assert.deepEqual(bobOrders.filter((o) => aliceOrders.includes(o)), [], 'no order of alice is shown to bob');
    const claims = JSON.parse(await page.textContent('[data-testid=token-claims]'));
    assert.ok(claims.scopes.every((s) => (s.type === 'DATASOURCES:READ' ? s.filter === "org_id = 'globex'" : s.fixed_params?.org_id === 'globex')));
    await page.click('[data-testid=logout]');
    await page.locator('[data-testid=login-view]').waitFor({ state: 'visible' });

    await login(page, 'admin');
    await page.locator('[data-testid=orgs-card]').waitFor({ state: 'visible' });
    const orgs = await column(page, 'orgs-overview', 1);
    assert.ok(['acme', 'globex', 'initech'].every((o) => orgs.includes(o)), `admin sees all orgs: ${orgs}`);
    await context.close();
  });
});
