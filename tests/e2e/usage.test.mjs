// The admin's usage view against the real demo binary: alice's dashboard calls Tinybird
// directly (never through the BFF), and the admin's page shows those calls under acme, in a
// sortable table with one chart per tenant, refreshing on its own. Carol, whose tenant has a
// tiny demo budget, is refused tokens once it is spent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openApp, login, withApp, apiSession } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test("the admin page shows direct calls per tenant and its workspace, from each workspace's record", { timeout: 120_000 }, async () => {
  await withApp(browser, {}, async ({ server, page }) => {
    // bob's tenant, globex, lives in the US workspace: his calls are in its record only.
    const bob = await openApp(browser, server);
    await login(bob.page, 'bob');
    await bob.context.close();
    await login(page, 'alice'); // her dashboard: direct calls with her JWT
    const admin = await openApp(browser, server);
    try {
      await login(admin.page, 'admin');
      const section = admin.page.locator('[data-testid=usage-section]');
      await section.waitFor({ state: 'visible' });
      // The demo polls every 5 s and the page refreshes every 15 s.
      const acme = admin.page.locator('[data-testid=usage-table] tbody tr[data-tenant=acme]');
      await acme.waitFor({ state: 'attached', timeout: 60_000 });
      const direct = await acme.locator('td[data-col=direct]').textContent();
      assert.ok(Number(direct) > 0, `direct calls counted: ${direct}`);
      assert.equal(await acme.locator('td[data-col=workspace]').textContent(), 'eu');
      const globex = admin.page.locator('[data-testid=usage-table] tbody tr[data-tenant=globex]');
      await globex.waitFor({ state: 'attached', timeout: 30_000 });
      assert.equal(await globex.locator('td[data-col=workspace]').textContent(), 'us');
      assert.ok(Number(await globex.locator('td[data-col=direct]').textContent()) > 0, 'globex direct calls, read from the US record');
      assert.equal(await admin.page.getAttribute('[data-testid=usage-source]', 'data-ok'), 'true');
      assert.ok(await admin.page.locator('[data-testid=usage-charts] canvas[data-tenant=acme]').count() === 1);
      // Sorting by tenant puts "(unknown)" (the usage token's own reads) and acme first.
      await admin.page.click('[data-testid=usage-table] th[data-sort=tenant]');
      const first = await admin.page.locator('[data-testid=usage-table] tbody tr').first().getAttribute('data-tenant');
      assert.equal(first, '(unknown)');
    } finally {
      await admin.context.close();
    }
    // Alice is no admin: no usage section.
    assert.equal(await page.locator('[data-testid=usage-section]').isVisible(), false);
  });
});

test("a tenant over its demo budget is refused tokens with a 429 naming the budget", { timeout: 120_000 }, async () => {
  await withApp(browser, {}, async ({ server }) => {
    const carol = await apiSession(server, 'carol');
    const token = await (await carol('/api/token', { method: 'POST' })).json();
    const deadline = Date.now() + 60_000;
    let refused = null;
    while (!refused && Date.now() < deadline) {
      for (let i = 0; i < 10; i++) {
        await fetch(`${token.host}/v0/pipes/top_products.json`, { headers: { Authorization: `Bearer ${token.token}` } });
      }
      const r = await carol('/api/token', { method: 'POST' });
      if (r.status === 429) refused = r;
      else await new Promise((res) => setTimeout(res, 1000));
    }
    assert.ok(refused, 'refused within a minute');
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    assert.match((await refused.json()).error, /initech is over its daily_requests budget/);
    const alice = await apiSession(server, 'alice');
    assert.equal((await alice('/api/token', { method: 'POST' })).status, 200);
  });
});
