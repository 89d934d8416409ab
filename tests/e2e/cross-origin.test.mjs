// An app on another origin, as teams deploy one (docs/cross-origin.md): a page served by a
// second server on its own port loads the shipped client (web/tinybird-bff.js) and, in real
// headless Chromium, logs in to a `tinybird-bff serve` with `[cors] allowed_origins`, mints a
// token, calls a pipe directly and through the proxy, and logs out. Two cases: the same host on
// another port (same site: the cookie stays `SameSite=Lax`) and another host (`localhost` vs
// `127.0.0.1`: another site, so the cookie is `SameSite=None; Secure`). A page on an origin not
// in the list is refused by the browser, and the client names the refusal as CORS. And the
// one-origin NGINX recipe of docs/cross-origin.md, run as written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';
import { BIN, launchBrowser } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '../..');

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

/** A free TCP port on 127.0.0.1. */
function freePort() {
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
 * The app's own server (another origin): `/` is a page that imports the shipped client and
 * exposes it as `window.tbff`; `/tinybird-bff.js` is web/tinybird-bff.js as published.
 */
async function appServer() {
  const client = readFileSync(path.join(REPO, 'web/tinybird-bff.js'));
  const page = `<!doctype html><meta charset="utf-8"><title>an app on another origin</title>
<script type="module">import * as tbff from '/tinybird-bff.js'; window.tbff = tbff;</script>`;
  const server = createServer((req, res) => {
    if (req.url === '/tinybird-bff.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(client);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

/**
 * `tinybird-bff serve` with the demo's config and `[cors] allowed_origins = origins`;
 * `publicPort` makes its public URL another port of 127.0.0.1 (a proxy in front).
 */
async function startBff(origins, { publicPort } = {}) {
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
    },
  };
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

/** Opens the app page at `origin` and runs the whole journey against `bff` in it. */
async function journey(origin, bff, context = null) {
  context ??= await browser.newContext();
  const page = await context.newPage();
  const cookies = [];
  page.on('response', async (r) => {
    if (r.url().endsWith('/api/login')) cookies.push(...(await r.headerValues('set-cookie')));
  });
  try {
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.tbff);
    const result = await page.evaluate(async (api) => {
      const { createClient } = window.tbff;
      const out = {};
      const tb = createClient({ bff: api });
      try {
        await tb.login('alice', 'alice-demo');
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
    }, `${bff.url}/api`);
    return { result, cookies };
  } finally {
    await context.close();
  }
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

test('the NGINX recipe of docs/cross-origin.md puts the app and the BFF on one origin', { timeout: 60_000 }, async () => {
  const doc = readFileSync(path.join(REPO, 'docs/cross-origin.md'), 'utf8');
  const recipe = /<!-- nginx-recipe -->\n```nginx\n([\s\S]*?)```\n<!-- \/nginx-recipe -->/.exec(doc)?.[1];
  assert.ok(recipe, 'docs/cross-origin.md has the NGINX recipe between its markers');
  const port = await freePort();
  // The BFF listens behind NGINX, and its public URL is NGINX's: no [cors] at all.
  const bff = await startBff([], { publicPort: port });
  const dir = mkdtempSync(path.join(tmpdir(), 'tbff-nginx-recipe-'));
  chmodSync(dir, 0o755); // nginx's workers run as nobody when started as root
  mkdirSync(path.join(dir, 'www'));
  writeFileSync(path.join(dir, 'www/index.html'), `<!doctype html><meta charset="utf-8"><title>one origin</title>
<script type="module">import * as tbff from '/tinybird-bff.js'; window.tbff = tbff;</script>`);
  writeFileSync(path.join(dir, 'www/tinybird-bff.js'), readFileSync(path.join(REPO, 'web/tinybird-bff.js')));
  const site = recipe
    .replace('proxy_pass http://127.0.0.1:3000;', `proxy_pass ${bff.listen};`)
    .replace('root /srv/app/dist;', `root ${dir}/www;`);
  assert.notEqual(site, recipe);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${t};`).join(' ');
  writeFileSync(path.join(dir, 'nginx.conf'), `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
${process.getuid?.() === 0 ? 'user nobody nogroup;' : ''}
events { worker_connections 64; }
http { access_log off; ${temp} include /etc/nginx/mime.types;
  server { listen 127.0.0.1:${port}; ${site} } }`);
  const nginx = spawn('nginx', ['-e', `${dir}/error.log`, '-p', dir, '-c', `${dir}/nginx.conf`], { stdio: 'ignore' });
  try {
    for (let i = 0; ; i++) {
      const up = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false);
      if (up) break;
      assert.ok(i < 100 && nginx.exitCode === null, `nginx did not start: ${readFileSync(`${dir}/error.log`, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const { result, cookies } = await journey(`http://127.0.0.1:${port}`, { url: '' });
    assert.equal(result.error, undefined, JSON.stringify(result));
    assert.equal(result.me, 'alice');
    assert.deepEqual(result.proxy, { path: 'proxy', orgs: ['acme'] });
    assert.equal(result.afterLogout, 401);
    assert.match(cookies[0], /SameSite=Lax/i);
  } catch (err) {
    err.message += `\n--- serve output ---\n${bff.output().slice(-3000)}`;
    throw err;
  } finally {
    nginx.kill('SIGTERM');
    await bff.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
