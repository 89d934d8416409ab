// The production shape, driven like a browser: scripts/cluster starts a real NGINX with TLS in
// front of two real `tinybird-bff serve` instances that share a real redis-server, with the
// operator's files from deploy/. Headless Chromium logs in through the balancer, mints, calls
// the proxy and Tinybird; then one instance is killed (SIGKILL, as in a crash) and the same
// browser session keeps working on the other, without logging in again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, login, waitServed, artifact, unexpectedConsoleErrors } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const BIN = path.resolve(here, process.env.TINYBIRD_BFF_BIN ?? '../../target/release/tinybird-bff');

let cluster; // {env, output, stop}
let browser;

/** Starts scripts/cluster and resolves once it printed `ready`, with its cluster.env. */
async function startCluster() {
  const dir = mkdtempSync(path.join(tmpdir(), 'tbff-cluster-test-'));
  const child = spawn(path.join(repo, 'scripts/cluster'), ['--dir', dir, '--bin', BIN], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`scripts/cluster was not ready within 60 s:\n${out}`)), 60_000);
    child.stdout.on('data', () => { if (/^ready$/m.test(out)) { clearTimeout(timer); resolve(); } });
    exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`scripts/cluster exited (${code}):\n${out}`)); });
  });
  const env = Object.fromEntries(readFileSync(path.join(dir, 'cluster.env'), 'utf8').trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
  return {
    env,
    output: () => out,
    log: (name) => { try { return readFileSync(path.join(dir, 'logs', name), 'utf8'); } catch { return ''; } },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const { code } = await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Sums a Prometheus counter over its label sets, from an instance's admin listener. */
async function counter(adminUrl, name) {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

/** The audit events an instance wrote to stdout (JSON lines). */
function auditEvents(file) {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

/**
 * In the page: `mints` token requests, then `calls` proxy calls and as many direct calls to
 * Tinybird with the last token, all through the balancer. Mints stay few: deploy/'s
 * `user.token = "1/s burst 10"` is counted once for the whole cluster (in Redis).
 */
function mintAndCall(page, mints, calls) {
  return page.evaluate(async ([m, c]) => {
    const out = { token: [], proxy: [], direct: [], orgs: new Set() };
    let token = null;
    for (let i = 0; i < m; i++) {
      const t = await fetch('/api/token', { method: 'POST', headers: { 'X-BFF-CSRF': '1' }, credentials: 'same-origin' });
      out.token.push(t.status);
      if (t.ok) token = await t.json();
    }
    const rows = async (r, kind) => {
      out[kind].push(r.status);
      const text = await r.text();
      try {
        for (const row of JSON.parse(text).data ?? []) out.orgs.add(row.org_id);
      } catch {
        out.orgs.add(`not JSON from ${kind}: ${r.status} ${text.slice(0, 80)}`);
      }
    };
    for (let i = 0; i < c; i++) {
      await rows(await fetch('/api/pipes/top_products.json?limit=2', { credentials: 'same-origin' }), 'proxy');
      await rows(await fetch(`${token?.host}/v0/pipes/top_products.json?limit=2`, { headers: { Authorization: `Bearer ${token?.token}` } }), 'direct');
    }
    return { ...out, orgs: [...out.orgs] };
  }, [mints, calls]);
}

before(async () => {
  cluster = await startCluster();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  if (cluster) assert.equal(await cluster.stop(), 0, 'scripts/cluster stops cleanly on SIGTERM');
});

test('log in through NGINX/TLS, mint, proxy, lose an instance, keep working', { timeout: 180_000 }, async () => {
  const { env } = cluster;
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  try {
    // Plain http is only a redirect to https.
    const plain = await fetch(`${env.CLUSTER_HTTP_URL}/`, { redirect: 'manual' });
    assert.equal(plain.status, 301);
    assert.equal(plain.headers.get('location'), `${env.CLUSTER_URL}/`);

    const first = await page.goto(env.CLUSTER_URL);
    assert.equal(first.status(), 200);
    assert.match(first.headers()['strict-transport-security'] ?? '', /max-age=\d+/);
    assert.ok((await first.securityDetails())?.protocol?.startsWith('TLS'), 'served over TLS');
    await login(page, 'alice');
    await waitServed(page, 'direct');

    const cookies = await context.cookies(env.CLUSTER_URL);
    const session = cookies.find((c) => c.name === 'tbff_session');
    assert.ok(session, `a session cookie, got ${cookies.map((c) => c.name)}`);
    assert.deepEqual([session.secure, session.httpOnly, session.sameSite], [true, true, 'Lax'], 'https public_url: a Secure, HttpOnly cookie');

    // The session lives in Redis: each instance, asked directly, knows the user.
    const cookie = `tbff_session=${session.value}`;
    for (const bff of [env.CLUSTER_BFF1_URL, env.CLUSTER_BFF2_URL]) {
      const me = await fetch(`${bff}/api/me`, { headers: { Cookie: cookie } });
      assert.equal(me.status, 200, `${bff} knows the session`);
      assert.equal((await me.json()).user.id, 'alice');
    }

    // Round robin: the session's requests land on both instances (mints on one and proxy
    // calls on the other, as it happens), and every one of them is served.
    const servedBy = async (admin) => (await counter(admin, 'tbff_tokens_minted_total')) + (await counter(admin, 'tbff_proxy_requests_total'));
    const served = () => Promise.all([servedBy(env.CLUSTER_BFF1_ADMIN), servedBy(env.CLUSTER_BFF2_ADMIN)]);
    const servedBefore = await served();
    const both = await mintAndCall(page, 4, 6);
    assert.deepEqual(both, { token: Array(4).fill(200), proxy: Array(6).fill(200), direct: Array(6).fill(200), orgs: ['acme'] });
    const servedNow = await served();
    const share = servedNow.map((n, i) => n - servedBefore[i]);
    assert.equal(share[0] + share[1], 10);
    assert.ok(share[0] > 0 && share[1] > 0, `NGINX sent the session's requests to both instances: ${share}`);

    // The admin listener is private: not reachable through the balancer.
    const metrics = await context.request.get(`${env.CLUSTER_URL}/metrics`);
    assert.equal(metrics.status(), 404);
    assert.doesNotMatch(await metrics.text(), /tbff_/);
    assert.match(await (await fetch(`${env.CLUSTER_BFF1_ADMIN}/metrics`)).text(), /tbff_tokens_minted_total/, 'it is on the loopback admin port');

    // A forged X-Forwarded-For does not choose the client address the BFF logs and throttles.
    const forged = await context.request.post(`${env.CLUSTER_URL}/api/login`, {
      headers: { 'X-Forwarded-For': '203.0.113.7', 'X-BFF-CSRF': '1', Origin: env.CLUSTER_URL, 'Content-Type': 'application/json' },
      data: { username: 'mallory', password: 'guess' },
    });
    assert.equal(forged.status(), 401);
    const failed = [...auditEvents(env.CLUSTER_BFF1_AUDIT), ...auditEvents(env.CLUSTER_BFF2_AUDIT)].filter((e) => e.event === 'login.failed' && e.user === 'mallory');
    assert.equal(failed.length, 1);
    assert.equal(failed[0].client, '127.0.0.1');

    // Instance 1 crashes.
    process.kill(Number(env.CLUSTER_BFF1_PID), 'SIGKILL');
    await assert.rejects(fetch(`${env.CLUSTER_BFF1_URL}/healthz`), 'instance 1 is gone');

    // The same browser session: a reload shows the dashboard, no login form.
    await page.reload();
    await page.locator('[data-testid=dashboard-view]').waitFor({ state: 'visible', timeout: 20_000 });
    await waitServed(page, 'direct');
    assert.equal(await page.locator('[data-testid=login-submit]').isVisible(), false, 'not asked to log in again');

    const servedBy2 = await servedBy(env.CLUSTER_BFF2_ADMIN);
    const after = await mintAndCall(page, 3, 6);
    assert.deepEqual(after, { token: Array(3).fill(200), proxy: Array(6).fill(200), direct: Array(6).fill(200), orgs: ['acme'] });
    assert.ok((await servedBy(env.CLUSTER_BFF2_ADMIN)) - servedBy2 >= 9, 'instance 2 served every mint and proxy call');
    assert.match(cluster.log('nginx-error.log'), /connect\(\) failed \(111: Connection refused\) while connecting to upstream/, 'NGINX saw the dead instance and moved on');
    await page.screenshot({ path: artifact('cluster-after-failover.png') });

    // Logging out ends the session for the whole cluster.
    const out = await page.evaluate(async () => (await fetch('/api/logout', { method: 'POST', headers: { 'X-BFF-CSRF': '1' } })).status);
    assert.equal(out, 204);
    assert.equal((await fetch(`${env.CLUSTER_BFF2_URL}/api/me`, { headers: { Cookie: cookie } })).status, 401);
    assert.deepEqual(unexpectedConsoleErrors({ console: consoleErrors }), []);
  } catch (err) {
    err.message += `\n--- scripts/cluster ---\n${cluster.output()}\n--- nginx ---\n${cluster.log('nginx-error.log').slice(-2000)}\n--- bff-1 ---\n${cluster.log('bff-1.log').slice(-2000)}\n--- bff-2 ---\n${cluster.log('bff-2.log').slice(-2000)}`;
    throw err;
  } finally {
    await context.close();
  }
});
