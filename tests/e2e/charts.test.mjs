// docs/charts.md's recipe in Chromium against the real `tinybird-bff demo` binary: Tinybird's
// chart library (@tinybirdco/charts 0.3.0 and React 18 from tests/charts/node_modules, wrapped
// as ES modules by react-esm.mjs; no bundler) fed through the BFF's browser client. The recipe's
// module is read from docs/charts.md as it is; the components are its JSX, with createElement.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, startServer, artifact, unexpectedConsoleErrors } from './harness.mjs';
import { commonjsModules } from './react-esm.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '../charts');
const BASE = '/__charts-test__/';

let browser;
before(async () => { browser = await launchBrowser({ localNetworkAccess: false }); });
after(async () => { await browser?.close(); });

/** The recipe's module: the one ```js block of docs/charts.md. */
function recipe() {
  const doc = readFileSync(path.resolve(here, '../../docs/charts.md'), 'utf8');
  const blocks = [...doc.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  assert.equal(blocks.length, 1, 'docs/charts.md has one js block, the recipe module');
  return blocks[0];
}

// The JSX of docs/charts.md, with createElement; the Table also asks for another tenant's rows.
const APP = `
import { createElement as h } from 'react';
import { createRoot } from 'react-dom/client';
import { ChartProvider, BarChart, Table } from '@tinybirdco/charts';
import { tb, queryConfig } from './tinybird-charts.js';

const pipe = (name) => \`https://api.tinybird.co/v0/pipes/\${name}.json\`;
window.__charts = { tb, tokens: 0, fetched: [] };
tb.on('token', () => { window.__charts.tokens += 1; });
const onSuccess = (body, key) => window.__charts.fetched.push({ key, rows: body.data.length, at: Date.now() });

createRoot(document.getElementById('root')).render(
  h(ChartProvider, { queryConfig: { ...queryConfig, refreshInterval: 1500, onSuccess } },
    h('div', { id: 'bar' }, h(BarChart, { endpoint: pipe('top_products'), index: 'product_name', categories: ['units'], params: { limit: 5 }, height: 300 })),
    h('div', { id: 'table' }, h(Table, { endpoint: pipe('recent_orders'), index: 'order_id', categories: ['order_id', 'org_id', 'amount'], params: { limit: 10, org_id: 'globex' }, height: 400 }))));
`;

test('@tinybirdco/charts through the BFF client: only the tenant\'s rows, the JWT never the placeholder, through a token renewal and a blocked Tinybird', { timeout: 120_000 }, async () => {
  assert.ok(existsSync(path.join(ROOT, 'node_modules/@tinybirdco/charts/package.json')), 'run `npm ci --prefix tests/charts` (scripts/test does)');
  const server = await startServer({ ttl: 20 });
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  try {
    const modules = await commonjsModules(ROOT, ['react', 'react-dom', 'react-dom/client', '@tinybirdco/charts'], 'production', `${BASE}lib/`, 'Tinybird charts');
    const importMap = { imports: { ...modules.importMap, 'tinybird-bff': '/tinybird-bff.js' } };
    const files = new Map([
      ['index.html', ['text/html', `<!doctype html><meta charset="utf-8"><title>charts</title>
<script type="importmap">${JSON.stringify(importMap)}</script>
<div id="root"></div><script type="module" src="${BASE}app.mjs"></script>`]],
      ['app.mjs', ['text/javascript', APP]],
      ['tinybird-charts.js', ['text/javascript', recipe()]],
      ...[...modules.files].map(([name, src]) => [`lib/${name}`, ['text/javascript', src]]),
    ]);
    const page = await context.newPage();
    const log = { console: [], pageErrors: [], requests: [], responses: [] };
    page.on('console', (m) => { if (m.type() === 'error') log.console.push(m.text()); });
    page.on('pageerror', (e) => log.pageErrors.push(e.message));
    page.on('request', (r) => log.requests.push({ url: r.url(), headers: r.headers() }));
    page.on('response', (r) => log.responses.push({ url: r.url(), status: r.status() }));
    const origin = new URL(server.app).origin;
    await page.route((url) => url.origin === origin && url.pathname.startsWith(BASE), (route) => {
      const file = files.get(new URL(route.request().url()).pathname.slice(BASE.length));
      return file ? route.fulfill({ status: 200, contentType: file[0], body: file[1] }) : route.fulfill({ status: 404, body: 'no such test file' });
    });
    // Signed in as alice on the BFF's origin, as an app's page would be.
    await page.goto(`${origin}/healthz`);
    const status = await page.evaluate(async () => (await fetch('/api/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'X-BFF-CSRF': '1' }, body: JSON.stringify({ username: 'alice', password: 'alice-demo' }),
    })).status);
    assert.equal(status, 200);
    await page.goto(`${origin}${BASE}index.html`);

    const orgs = () => page.$$eval('#table tbody tr', (trs) => trs.map((tr) => tr.cells[1].textContent));
    await page.waitForFunction(() => document.querySelectorAll('#table tbody tr').length > 0 && document.querySelector('#bar canvas'), null, { timeout: 30_000 });
    const first = await orgs();
    assert.ok(first.length > 0 && first.every((o) => o === 'acme'), `only acme's rows, though the chart asked for globex: ${first}`);
    assert.ok(await page.evaluate(() => window.__charts.fetched.some((f) => f.key.includes('top_products') && f.rows > 0)), 'the bar chart got rows');
    await page.screenshot({ path: artifact('charts-recipe.png'), fullPage: true });

    const tinybird = () => log.requests.filter((r) => r.url.startsWith(server.tinybird));
    assert.ok(tinybird().length >= 2);
    for (const r of tinybird()) {
      assert.match(r.headers.authorization ?? '', /^Bearer ey/, `${r.url} carries the user's JWT`);
      assert.ok(!new URL(r.url).searchParams.has('token'), `${r.url}: the placeholder token never leaves the page`);
    }
    assert.ok(tinybird().some((r) => r.url.includes('/recent_orders.json') && new URL(r.url).searchParams.get('org_id') === 'globex'), 'the table really asked for globex');

    // The 20 s token is renewed (about 15 s in) while the charts refresh every 1.5 s.
    const renewedAt = await page.waitForFunction(() => window.__charts.tokens >= 2 && Date.now(), null, { timeout: 40_000 }).then((h) => h.jsonValue());
    await page.waitForFunction((t) => window.__charts.fetched.filter((f) => f.at > t + 1000).length >= 2, renewedAt, { timeout: 20_000 });
    const token = await page.evaluate(() => window.__charts.tb.tokenInfo().token);
    assert.equal(tinybird().at(-1).headers.authorization, `Bearer ${token}`, 'the charts use the renewed token');
    assert.deepEqual(log.responses.filter((r) => r.url.startsWith(server.tinybird) && r.status !== 200), [], 'no 403, no error');
    assert.ok((await orgs()).every((o) => o === 'acme'));

    // Tinybird blocked: the client takes the charts' calls through the proxy; same rows.
    await page.route(`${server.tinybird}/**`, (route) => route.abort());
    const before = log.requests.filter((r) => r.url.startsWith(`${origin}/api/pipes/`)).length;
    await page.waitForFunction(() => window.__charts.tb.state().next === 'proxy', null, { timeout: 20_000 });
    await page.waitForFunction((n) => performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/pipes/')).length > n, before, { timeout: 20_000 });
    const proxied = log.requests.filter((r) => r.url.startsWith(`${origin}/api/pipes/`));
    assert.ok(proxied.length > before && proxied.every((r) => !r.headers.authorization), 'through the proxy, with the cookie only');
    await page.waitForTimeout(2000);
    assert.ok((await orgs()).every((o) => o === 'acme'));
    assert.deepEqual(unexpectedConsoleErrors(log, [/ERR_FAILED/]), []);
    assert.deepEqual(log.pageErrors, []);
  } catch (err) {
    err.message += `\n--- server output ---\n${server.output().slice(-3000)}`;
    throw err;
  } finally {
    await context.close();
    await server.stop();
  }
});
