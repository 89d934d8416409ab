// Shared by the cross-origin tests (cross-origin.test.mjs) and the one-origin recipes of
// docs/cross-origin.md (recipes.test.mjs): a real `tinybird-bff serve` with the demo's config
// and a chosen `[cors]`, and the whole browser journey (login, token, direct and proxied pipe
// calls, logout) through the shipped client on a page of any origin.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomUUID } from 'node:crypto';
import { BIN } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const REPO = path.resolve(here, '../..');

/** A page that imports the shipped client from `/tinybird-bff.js` and exposes it as `window.tbff`. */
export const CLIENT_PAGE = `<!doctype html><meta charset="utf-8"><title>an app</title>
<script type="module">import * as tbff from '/tinybird-bff.js'; window.tbff = tbff;</script>`;

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** An admin token of the real shape for a new workspace. */
function adminToken() {
  const b64 = (b) => Buffer.from(b).toString('base64url');
  return `p.${b64(JSON.stringify({ u: randomUUID() }))}.${b64(randomBytes(32))}`;
}

/**
 * `tinybird-bff serve` with the demo's config and `[cors] allowed_origins = origins`;
 * `publicPort` makes its public URL another port of 127.0.0.1 (a proxy in front).
 */
export async function startBff(origins, { publicPort } = {}) {
  const [port, eu, us] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(path.join(tmpdir(), 'tbff-cors-'));
  const config = readFileSync(path.join(REPO, 'demo/config.toml'), 'utf8')
    .replace(/^listen = .*$/m, `listen = "127.0.0.1:${port}"`)
    .replace(/^public_url = .*$/m, `public_url = "http://127.0.0.1:${publicPort ?? port}"`)
    .replace(/^local_listen = "127.0.0.1:7181"/m, `local_listen = "127.0.0.1:${eu}"`)
    .replace(/^local_listen = "127.0.0.1:7182"/m, `local_listen = "127.0.0.1:${us}"`)
    .replace(/^store = "file".*$/m, 'store = "memory"')
    .replace(/^allowed_origins = \[\].*$/m, `allowed_origins = ${JSON.stringify(origins)}`);
  assert.match(config, /^allowed_origins = /m, 'demo/config.toml has its [cors] example');
  writeFileSync(path.join(dir, 'tinybird-bff.toml'), config);
  writeFileSync(path.join(dir, 'users.toml'), readFileSync(path.join(REPO, 'demo/users.toml')));
  const env = { ...process.env, RUST_LOG: 'info', TINYBIRD_SIGNING_KEY_EU: adminToken(), TINYBIRD_SIGNING_KEY_US: adminToken() };
  const child = spawn(BIN, ['serve', '--config', path.join(dir, 'tinybird-bff.toml')], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  const add = (d) => { out += String(d).replace(/\x1b\[[0-9;]*m/g, ''); };
  child.stdout.on('data', add);
  child.stderr.on('data', add);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${out}`)), 30_000);
    const check = () => { if (/tinybird-bff serving/.test(out)) { clearTimeout(timer); resolve(); } };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    exited.then(() => { clearTimeout(timer); reject(new Error(`serve exited:\n${out}`)); });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    listen: `http://127.0.0.1:${port}`,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Opens the app page at `origin` in a new context of `browser` (or in `context`) and runs the
 * whole journey against the BFF at `bff.url` (`''`: the page's own origin). Returns the
 * client's `result`, the login's `Set-Cookie` values (`cookies`), the browser's cookies right
 * after the login (`jar`), and every request the page made (`requests`: url, method, and for
 * the BFF's routes all headers, `Sec-Fetch-*` included).
 */
export async function journey(browser, origin, bff, context = null) {
  context ??= await browser.newContext();
  const page = await context.newPage();
  const cookies = [];
  const requests = [];
  page.on('requestfinished', async (r) => {
    const entry = { url: r.url(), method: r.method() };
    requests.push(entry);
    if (new URL(r.url()).pathname.startsWith('/api/')) {
      entry.headers = await r.allHeaders().catch(() => ({}));
    }
  });
  page.on('response', async (r) => {
    if (r.url().endsWith('/api/login')) cookies.push(...(await r.headerValues('set-cookie')));
  });
  try {
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.tbff);
    const loggedIn = await page.evaluate(async (api) => {
      window.tb = window.tbff.createClient({ bff: api });
      try {
        await window.tb.login('alice', 'alice-demo');
        return null;
      } catch (e) {
        return { name: e.name, message: e.message, status: e.status };
      }
    }, `${bff.url}/api`);
    const jar = await context.cookies();
    const result = await page.evaluate(async (error) => {
      const { tb } = window;
      const out = {};
      try {
        if (error) throw error;
        out.me = (await tb.me()).user?.id ?? null;
        out.token = (await tb.getToken()).slice(0, 3);
        const direct = await tb.query('top_products', {}, { path: 'direct' });
        out.direct = { path: direct.path, rows: direct.data.length };
        const proxied = await tb.query('top_products', {}, { path: 'proxy' });
        out.proxy = { path: proxied.path, orgs: [...new Set(proxied.data.map((r) => r.org_id))] };
        await tb.logout();
        out.afterLogout = await tb.me().then(() => 'still in', (e) => e.status);
      } catch (e) {
        out.error = { name: e.name, message: e.message, status: e.status };
      }
      tb.close();
      return out;
    }, loggedIn);
    // Let the last `requestfinished` handlers record their headers.
    await new Promise((r) => setTimeout(r, 50));
    return { result, cookies, jar, requests };
  } finally {
    await context.close();
  }
}
