// Test harness for the browser tests: starts the real demo binary on free
// ports, launches Debian's headless Chromium through playwright-core, and
// offers the few page actions every test repeats.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Where screenshots go: target/e2e-artifacts at the repository root. */
export const ARTIFACTS = path.resolve(here, '../../target/e2e-artifacts');
export const BIN = path.resolve(here, process.env.TINYBIRD_BFF_BIN ?? '../../target/release/tinybird-bff');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WEB = path.resolve(here, '../../web');
// The release binary embeds web/ at build time. While editing the page, set
// TINYBIRD_BFF_WEB_FROM_DISK=1 to serve the files on disk instead, keeping the
// server's real response headers (CSP included). CI leaves it unset.
const WEB_FROM_DISK = process.env.TINYBIRD_BFF_WEB_FROM_DISK === '1';

/**
 * Starts `tinybird-bff demo` on ports 0 and resolves once it printed both URLs.
 * @param {{ttl?: number}} [opts] `ttl` becomes `--token-ttl`
 * @returns {Promise<{app: string, tinybird: string, output: () => string, stop: () => Promise<void>}>}
 */
export async function startServer({ ttl } = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`tinybird-bff binary not found at ${BIN}: run \`cargo build --release\` first or set TINYBIRD_BFF_BIN.`);
  }
  const args = ['demo', '--listen', '127.0.0.1:0', '--local-listen', '127.0.0.1:0'];
  if (ttl) args.push('--token-ttl', String(ttl));
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const urls = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tinybird-bff did not print its URLs within 30 s. Output:\n${out}`)), 30_000);
    const check = () => {
      const app = /^app: (http:\/\/\S+?)\/?$/m.exec(out)?.[1];
      const tinybird = /^tinybird: (http:\/\/\S+?)\/?$/m.exec(out)?.[1];
      if (app && tinybird) {
        clearTimeout(timer);
        resolve({ app, tinybird });
      }
    };
    child.stdout.on('data', check);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`tinybird-bff exited (code ${code}, signal ${signal}) before printing its URLs. Output:\n${out}`));
    });
  });

  return {
    ...urls,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Launches headless Debian Chromium (playwright cannot download browsers here).
 * @param {{localNetworkAccess?: boolean}} [opts] `localNetworkAccess: false` turns off Chromium's
 *   Local Network Access checks, for pages the test fulfils itself with `page.route`.
 */
export function launchBrowser({ localNetworkAccess = true } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // A document fulfilled by page.route has no IP address space, so Chromium's Local
      // Network Access checks would block its calls to the loopback Tinybird.
      ...(WEB_FROM_DISK || !localNetworkAccess ? ['--disable-features=LocalNetworkAccessChecks'] : [])],
  });
}

/**
 * A fresh context and page on the app, recording console errors, page errors
 * and every request/response so tests can assert what went over the wire.
 */
export async function openApp(browser, server, { viewport = { width: 1360, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const log = { console: [], pageErrors: [], requests: [], responses: [] };
  page.on('console', (m) => { if (m.type() === 'error') log.console.push(m.text()); });
  page.on('pageerror', (e) => log.pageErrors.push(e.message));
  page.on('request', (r) => log.requests.push({ url: r.url(), method: r.method(), headers: r.headers() }));
  page.on('response', (r) => log.responses.push({ url: r.url(), status: r.status() }));
  if (WEB_FROM_DISK) {
    await page.route((url) => url.origin === new URL(server.app).origin && !url.pathname.startsWith('/api/'), async (route) => {
      const response = await route.fetch();
      const rel = new URL(route.request().url()).pathname.replace(/^\/$/, '/index.html');
      const file = path.join(WEB, rel);
      if (!response.ok() || !file.startsWith(WEB) || !existsSync(file)) return route.fulfill({ response });
      return route.fulfill({ response, body: readFileSync(file) });
    });
  }
  const first = await page.goto(server.app);
  return { context, page, log, firstResponse: first };
}

/**
 * Logs in through the form (clicking the demo-login button first) and waits for the dashboard
 * data, then for the direct-vs-proxy comparison the page runs on load (or skips, for a tenant
 * with a small budget): tests that count requests must not see its calls.
 */
export async function login(page, user) {
  await page.locator(`[data-testid=demo-login-${user}]`).click();
  await page.locator('[data-testid=login-submit]').click();
  await page.locator('[data-testid=dashboard-view]').waitFor({ state: 'visible' });
  await waitServed(page);
  await page.waitForSelector('[data-testid=compare-status][data-done]', { timeout: 60_000 });
}

/** Waits until the current dashboard load finished: every "served by" chip is done or failed (and, with `path`, served by it). */
export async function waitServed(page, path) {
  await page.waitForFunction((want) => {
    const chips = [...document.querySelectorAll('[data-testid^="served-"]')].filter((c) => c.dataset.state);
    return chips.length > 0 && chips.every((c) => c.dataset.state !== 'loading' && (!want || c.dataset.path === want));
  }, path, { timeout: 20_000 });
}

/** The values of one column of a table body, by its testid. */
export function column(page, tableTestId, index) {
  return page.$$eval(`[data-testid=${tableTestId}] tbody tr td:nth-child(${index})`, (tds) => tds.map((td) => td.textContent));
}

/** Makes sure the artifacts folder exists and returns a path inside it. */
export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

/** Console errors that are not expected noise (a 401 from /api/me before login is expected). */
export function unexpectedConsoleErrors(log, allow = []) {
  return log.console.filter((t) => !/status of 401/.test(t) && !allow.some((re) => re.test(t)));
}

/**
 * Runs `fn` with a fresh server and page on `browser`; always stops both, and adds the
 * server's output to a failure. `opts`: `ttl` for the server, `viewport` for the page.
 */
export async function withApp(browser, opts, fn) {
  const server = await startServer(opts);
  let ctx;
  try {
    ctx = await openApp(browser, server, opts);
    await fn({ server, ...ctx });
  } catch (err) {
    err.message += `\n--- server output ---\n${server.output().slice(-4000)}`;
    throw err;
  } finally {
    await ctx?.context.close();
    await server.stop();
  }
}

/**
 * Logs `user` in through the API (no browser) and returns a `fetch` bound to that session:
 * `call(path, init)` against the BFF with the cookie and the CSRF header.
 */
export async function apiSession(server, user) {
  const res = await fetch(`${server.app}/api/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-BFF-CSRF': '1' },
    body: JSON.stringify({ username: user, password: `${user}-demo` }),
  });
  if (!res.ok) throw new Error(`API login as ${user}: ${res.status} ${await res.text()}`);
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  return (path, init = {}) => fetch(`${server.app}${path}`, {
    ...init,
    headers: { Cookie: cookie, 'X-BFF-CSRF': '1', ...(init.headers ?? {}) },
  });
}
