// Browser tests of the SQL console against the real `tinybird-bff demo` binary:
// through the browser client, on the direct path (the JWT to Tinybird's /v0/sql)
// and the proxy (the cookie to the BFF's /api/sql), `SELECT count(*) FROM orders`
// counts only the signed-in tenant's orders. The expected counts come from API
// calls the test makes itself: the admin's cross-tenant pipe (no SQL involved),
// and each user's own direct and proxied SQL calls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, login, withApp, apiSession, artifact, unexpectedConsoleErrors } from './harness.mjs';

const COUNT = 'SELECT count(*) FROM orders';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Orders per organisation, counted by the admin's orgs_overview pipe (not by SQL). */
async function ordersPerOrg(server) {
  const admin = await apiSession(server, 'admin');
  const res = await admin('/api/pipes/orgs_overview.json');
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  return Object.fromEntries(body.data.map((r) => [r.org_id, Number(r.orders)]));
}

/** `user`'s count by plain API calls: their JWT straight to Tinybird, and the BFF proxy. */
async function apiCounts(server, user) {
  const call = await apiSession(server, user);
  // The host too: each user's workspace has its own (bob's is the demo's US one).
  const { token, host } = await (await call('/api/token', { method: 'POST' })).json();
  const q = encodeURIComponent(COUNT);
  const first = async (res) => {
    assert.equal(res.status, 200);
    return Number(Object.values((await res.json()).data[0])[0]);
  };
  return {
    direct: await first(await fetch(`${host}/v0/sql?q=${q}`, { headers: { Authorization: `Bearer ${token}` } })),
    proxy: await first(await call(`/api/sql?q=${q}`)),
  };
}

/** Runs `query` in the console on `path`; resolves to the first cell once that path served it. */
async function runInConsole(page, path, query = COUNT) {
  await page.selectOption('[data-testid=sql-path]', path);
  await page.fill('[data-testid=sql-query]', query);
  await page.click('[data-testid=sql-run]');
  await page.waitForSelector(`[data-testid=sql-served][data-state=done][data-path=${path}]`, { timeout: 20_000 });
  assert.match(await page.textContent('[data-testid=sql-served]'), new RegExp(`^${path} · \\d+ ms$`));
  return Number(await page.textContent('[data-testid=sql-result] tbody td'));
}

test('the SQL console counts only the tenant\'s orders on both paths, as the API does', { timeout: 120_000 }, async () => {
  await withApp(browser, {}, async ({ server, page, log }) => {
    const truth = await ordersPerOrg(server);
    assert.deepEqual(Object.keys(truth).sort(), ['acme', 'globex', 'initech']);
    const seen = {};
    for (const [user, org] of [['alice', 'acme'], ['bob', 'globex']]) {
      await login(page, user);
      await page.locator('[data-testid=sql-section]').waitFor({ state: 'visible' });
      assert.equal(await page.locator('[data-testid=sql-result] tbody tr').count(), 0, 'nothing left from the previous user');
      assert.match(await page.textContent('[data-testid=sql-filters]'), new RegExp(`orders\\s+WHERE org_id = '${org}'`));
      assert.match(await page.textContent('[data-testid=exposure-direct]'), new RegExp(`orders \\(data source\\): filter org_id = '${org}'`));

      const before = log.requests.length;
      seen[user] = { direct: await runInConsole(page, 'direct'), proxy: await runInConsole(page, 'proxy') };
      const sent = log.requests.slice(before).filter((r) => r.method === 'GET');
      // bob's tenant lives in the demo's US workspace: the direct call goes to its host.
      const direct = sent.filter((r) => !r.url.startsWith(server.app) && new URL(r.url).pathname === '/v0/sql');
      const proxied = sent.filter((r) => r.url.startsWith(`${server.app}/api/sql?`));
      assert.equal(direct.length, 1, 'the direct run called Tinybird itself');
      assert.match(direct[0].headers.authorization ?? '', /^Bearer ey/);
      assert.equal(proxied.length, 1, 'the proxy run called the BFF');
      assert.equal(proxied[0].headers.authorization, undefined, 'no token goes to the proxy');
      const runs = await page.$$eval('[data-testid=sql-history] tbody tr', (rows) => rows.map((r) => [r.dataset.path, r.cells[2].textContent]));
      assert.deepEqual(runs, [['proxy', String(truth[org])], ['direct', String(truth[org])]]);

      assert.deepEqual(seen[user], { direct: truth[org], proxy: truth[org] }, `${user} counts ${org}'s orders only`);
      assert.deepEqual(await apiCounts(server, user), seen[user], `${user}: the browser and the API agree`);

      // Asking for everyone's rows still counts only the tenant's, on both paths.
      for (const path of ['direct', 'proxy']) {
        assert.equal(await runInConsole(page, path, `${COUNT} WHERE org_id = 'initech' OR 1=1`), truth[org], path);
      }
      await page.click('[data-testid=logout]');
      await page.locator('[data-testid=login-view]').waitFor({ state: 'visible' });
    }
    assert.notEqual(seen.alice.direct, seen.bob.direct, 'the two tenants have different counts');
    assert.ok(truth.initech > 0, 'a third tenant\'s rows exist and were never counted');
  });
});

test('a query around the row filter is refused on both paths and the console says so', { timeout: 90_000 }, async () => {
  await withApp(browser, {}, async ({ page, log }) => {
    await login(page, 'alice');
    await page.locator('[data-testid=sql-section]').waitFor({ state: 'visible' });
    for (const path of ['direct', 'proxy']) {
      await page.selectOption('[data-testid=sql-path]', path);
      await page.fill('[data-testid=sql-query]', 'SELECT count(*) FROM main.orders');
      await page.click('[data-testid=sql-run]');
      await page.waitForSelector('[data-testid=sql-served][data-state=failed]', { timeout: 20_000 });
      assert.match(await page.textContent('[data-testid=sql-error]'), /refused \(403\)/, path);
      assert.equal(await page.isVisible('[data-testid=sql-error]'), true);
    }
    assert.equal(await runInConsole(page, 'proxy', 'SELECT 1 AS one'), 1, 'the console still works');
    await page.locator('[data-testid=sql-card]').screenshot({ path: artifact('sql-console.png') });
    assert.deepEqual(unexpectedConsoleErrors(log, [/status of 403/]), []);
    assert.deepEqual(log.pageErrors, []);
  });
});
