// The demo's story, in the browser against the real `tinybird-bff demo` binary: the three
// one-click proofs at the top (another tenant's rows never arrive, a blocked Tinybird falls
// back to the proxy, a token is renewed before it expires), the direct-vs-proxy comparison
// that runs on load with a simulated delay per hop, the region badge, the budget message a
// tenant over its budget gets at once (no retry loop), and the page at 390 px wide.
// Screenshots go to target/e2e-artifacts (not committed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, withApp, login, waitServed, artifact, apiSession, unexpectedConsoleErrors } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const PHONE = { width: 390, height: 844 };

test('proof 1: another tenant\'s rows, asked for on both paths, never arrive', { timeout: 120_000 }, async () => {
  await withApp(browser, {}, async ({ server, page, log }) => {
    await login(page, 'alice');
    assert.equal(await page.textContent('[data-testid=proof-isolation-target]'), 'globex');
    await page.click('[data-testid=proof-isolation-run]');
    await page.waitForSelector('[data-testid=proof-isolation-verdict][data-state=ok]', { timeout: 30_000 });
    const rows = await page.$$eval('[data-testid=proof-isolation-result] tbody tr', (trs) => trs.map((tr) => ({
      asked: tr.cells[0].textContent, path: tr.cells[1].textContent, rows: Number(tr.cells[2].textContent), foreign: Number(tr.cells[3].textContent),
    })));
    assert.deepEqual(rows.map((r) => r.path), ['direct', 'proxy', 'direct', 'proxy']);
    assert.ok(rows.every((r) => r.rows > 0 && r.foreign === 0), JSON.stringify(rows));
    assert.match(await page.textContent('[data-testid=proof-isolation-verdict]'), /^0 rows of globex$/);
    // The attack really went out as written, on both paths: the URL asked for globex.
    assert.ok(log.requests.some((r) => r.url.startsWith(`${server.tinybird}/v0/pipes/recent_orders.json`) && r.url.includes('org_id=globex')));
    assert.ok(log.requests.some((r) => r.url.startsWith(`${server.app}/api/pipes/recent_orders.json`) && r.url.includes('org_id=globex')));
    assert.ok(log.requests.some((r) => r.url.startsWith(`${server.tinybird}/v0/sql`) && new URL(r.url).searchParams.get('q')?.includes('OR 1=1')));
    // The page's own table agrees: only acme rows anywhere.
    await page.locator('[data-testid=proof-isolation]').screenshot({ path: artifact('proof-isolation.png') });
    assert.deepEqual(unexpectedConsoleErrors(log), []);
  });
});

test('proof 2: with Tinybird blocked, the client falls back to the proxy, visibly, and back', { timeout: 120_000 }, async () => {
  await withApp(browser, {}, async ({ server, page, log }) => {
    await login(page, 'alice');
    const directBefore = log.requests.filter((r) => r.url.startsWith(server.tinybird)).length;
    await page.click('[data-testid=proof-fallback-run]');
    await page.waitForSelector('[data-testid=proof-fallback-verdict][data-state=ok]', { timeout: 30_000 });
    assert.equal(await page.getAttribute('[data-testid=proof-fallback-result]', 'data-path'), 'proxy');
    assert.match(await page.textContent('[data-testid=proof-fallback-result]'), /served by proxy \(fallback\), 5 rows/);
    await page.locator('[data-testid=fallback-banner]').waitFor({ state: 'visible' });
    await waitServed(page, 'proxy');
    assert.match(await page.textContent('[data-testid=served-top_products]'), /proxy/);
    // Blocked in the page: nothing left for Tinybird while it lasted.
    assert.equal(log.requests.filter((r) => r.url.startsWith(server.tinybird)).length, directBefore);
    await page.locator('[data-testid=proof-fallback]').screenshot({ path: artifact('proof-fallback.png') });

    await page.click('[data-testid=proof-fallback-run]'); // unblock
    await page.waitForFunction(() => document.querySelector('[data-testid=proof-fallback-result]').textContent.includes('reachable again'));
    await waitServed(page, 'direct');
    assert.ok(log.requests.filter((r) => r.url.startsWith(server.tinybird)).length > directBefore);
    assert.deepEqual(unexpectedConsoleErrors(log), []);
  });
});

test('proof 3: a short-lived token is renewed before it expires, and the new one works', { timeout: 120_000 }, async () => {
  await withApp(browser, {}, async ({ page, log }) => {
    await login(page, 'alice');
    const tokenCalls = () => log.requests.filter((r) => r.url.endsWith('/api/token')).length;
    const before = tokenCalls();
    const started = Date.now();
    await page.click('[data-testid=proof-refresh-run]');
    await page.waitForSelector('[data-testid=proof-refresh-verdict][data-state=loading]');
    assert.match(await page.textContent('[data-testid=proof-refresh-result]'), /Renewing it in \d s/);
    await page.waitForSelector('[data-testid=proof-refresh-verdict][data-state=ok]', { timeout: 30_000 });
    assert.ok(Date.now() - started >= 4000, 'the renewal waited for its time');
    assert.equal(await page.getAttribute('[data-testid=proof-refresh-result]', 'data-renewed'), 'true');
    assert.match(await page.textContent('[data-testid=proof-refresh-result]'), /Renewed before expiry: token …\S+ \(expires .+\) was replaced by …\S+/);
    assert.equal(tokenCalls() - before, 2, 'the watcher fetched a token and renewed it once');
    await page.locator('[data-testid=proof-refresh]').screenshot({ path: artifact('proof-refresh.png') });
    assert.deepEqual(unexpectedConsoleErrors(log), []);
  });
});

test('the comparison runs on load, adds the simulated hop delay, says what it measures; the region badge names the workspace', { timeout: 120_000 }, async () => {
  await withApp(browser, {}, async ({ server, page }) => {
    await login(page, 'alice'); // waits for the comparison run on load
    assert.equal(await page.textContent('[data-testid=region-badge]'), `eu · ${server.tinybird.replace('http://', '')}`);
    const status = await page.textContent('[data-testid=compare-status]');
    assert.match(status, /10 runs of top_products per path, with \+30 ms simulated per hop/);
    const p50 = async () => Object.fromEntries(await page.$$eval('[data-testid=compare-stats] tbody tr', (trs) => trs.map((tr) => [tr.dataset.path, [Number(tr.cells[1].textContent), parseFloat(tr.cells[3].textContent), Number(tr.cells[9].textContent)]])));
    const withDelay = await p50();
    assert.equal(withDelay.direct[0], 10);
    assert.equal(withDelay.proxy[0], 10);
    assert.deepEqual([withDelay.direct[2], withDelay.proxy[2]], [0, 0], 'no errors');
    // One hop more on the proxy: 30 ms more, give or take this machine's noise.
    assert.ok(withDelay.proxy[1] - withDelay.direct[1] > 15, JSON.stringify(withDelay));
    assert.ok(await page.isVisible('[data-testid=compare-explain]'));
    assert.match(await page.textContent('[data-testid=compare-explain]'), /a direct call crosses one, a proxy call two/);
    await page.locator('[data-testid=compare-card]').screenshot({ path: artifact('compare-on-load.png') });

    await page.selectOption('[data-testid=compare-delay]', '0');
    await page.click('[data-testid=compare-run]');
    await page.waitForSelector('[data-testid=compare-status][data-done=true]', { timeout: 60_000 });
    assert.match(await page.textContent('[data-testid=compare-status]'), /with no added delay \(everything runs on this machine\)/);
  });
});

test('over budget, carol is told at once what she used and when it resets, with no retry loop', { timeout: 120_000 }, async () => {
  await withApp(browser, {}, async ({ server, page, log }) => {
    // Spend initech's 40 requests a day through the API, then wait for the BFF to count them.
    const carol = await apiSession(server, 'carol');
    for (let i = 0; i < 42; i++) await carol('/api/pipes/top_products.json?limit=1');
    const deadline = Date.now() + 30_000;
    let view;
    do {
      await new Promise((r) => setTimeout(r, 500));
      view = await (await carol('/api/usage/budget')).json();
    } while (view.budget?.standing?.state !== 'over' && Date.now() < deadline);
    assert.equal(view.budget?.standing?.state, 'over', JSON.stringify(view));

    const started = Date.now();
    await login(page, 'carol');
    const notice = page.locator('[data-testid=budget-notice]');
    await notice.waitFor({ state: 'visible', timeout: 10_000 });
    const waited = Date.now() - started;
    assert.ok(waited < 8000, `the refusal shows at once, not after retries (${waited} ms)`);
    assert.match(await notice.textContent(), /^Used \d+ of 40 requests today: tenant initech's budget is spent\. It resets at 00:00 UTC \(in \d+ (h \d+ )?min\)/);
    assert.equal(await page.getAttribute('[data-testid=budget-meter]', 'data-state'), 'over');
    assert.match(await page.textContent('[data-testid=budget-daily_requests]'), /^\d+ of 40 requests today$/);
    // One token request, refused, and no retries of it.
    assert.equal(log.requests.filter((r) => r.url.endsWith('/api/token')).length, 1);
    assert.equal(log.responses.filter((r) => r.url.endsWith('/api/token') && r.status === 429).length, 1);
    assert.equal(await page.getAttribute('[data-testid=compare-status]', 'data-done'), 'skipped', 'no comparison spent on a spent budget');
    assert.equal(await page.isVisible('[data-testid=error-banner]'), false, 'the budget says it, not a raw error');
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: artifact('budget-refused.png') });
    await page.locator('[data-testid=budget-card]').screenshot({ path: artifact('budget-meter.png') });
  });
});

test('at 390 px wide nothing scrolls sideways: login, dashboard, proofs', { timeout: 120_000 }, async () => {
  await withApp(browser, { viewport: PHONE }, async ({ page, log }) => {
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.equal(await overflow(), 0, 'login page');
    await page.screenshot({ path: artifact('mobile-390-login.png'), fullPage: true });
    await login(page, 'alice');
    assert.equal(await overflow(), 0, 'dashboard');
    await page.click('[data-testid=proof-isolation-run]');
    await page.waitForSelector('[data-testid=proof-isolation-verdict][data-state=ok]', { timeout: 30_000 });
    assert.equal(await overflow(), 0, 'with the proof\'s long SQL in its table');
    // Everything a visitor needs is on screen without zooming: the badge, the mode switch, the proofs.
    for (const id of ['region-badge', 'mode-switch', 'logout', 'proof-isolation-run', 'compare-run']) {
      const box = await page.locator(`[data-testid=${id}]`).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width, `${id} fits: ${JSON.stringify(box)}`);
    }
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: artifact('mobile-390.png'), fullPage: true });
    assert.deepEqual(unexpectedConsoleErrors(log), []);
  });
});
