// The one-origin recipes of docs/cross-origin.md, each extracted from the doc between its
// markers and run as written (only the BFF's address changed) in the real server it configures:
// NGINX, and Vite's dev server (`server.proxy`, the version pinned in package.json). Headless
// Chromium loads the app's page from that server, and through the shipped client logs in to a
// `tinybird-bff serve` that has no `[cors]` at all, mints a token, calls a pipe directly and
// through the proxy, and logs out. The Next.js recipe is not run: docs/cross-origin.md says why.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './harness.mjs';
import { CLIENT_PAGE, REPO, freePort, journey, startBff } from './cors-harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const doc = readFileSync(path.join(REPO, 'docs/cross-origin.md'), 'utf8');

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The code block of docs/cross-origin.md between `<!-- name -->` and `<!-- /name -->`. */
function recipe(name, lang) {
  const block = new RegExp(`<!-- ${name} -->\\n\`\`\`${lang}\\n([\\s\\S]*?)\`\`\`\\n<!-- /${name} -->`).exec(doc)?.[1];
  assert.ok(block, `docs/cross-origin.md has the ${name} between its markers`);
  return block;
}

/** Waits until `url` answers (any status), or fails with `why()` once `alive()` is false or 10 s passed. */
async function waitUp(url, alive, why) {
  for (let i = 0; ; i++) {
    if (await fetch(url).then(() => true, () => false)) return;
    assert.ok(i < 100 && alive(), `did not start: ${why()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A login provider's route (`/auth/<name>/login`, docs/identity.md) asked of the app's origin
 * gets the BFF's own answer (for an unknown provider: not the app's page).
 */
async function assertAuthReachesBff(origin, bff) {
  const via = await fetch(`${origin}/auth/nosuch/login`, { redirect: 'manual', headers: { Accept: 'text/html' } });
  const direct = await fetch(`${bff.listen}/auth/nosuch/login`, { redirect: 'manual', headers: { Accept: 'text/html' } });
  assert.notEqual(direct.status, 200);
  assert.equal(via.status, direct.status, `${origin}/auth/ is forwarded to the BFF`);
  assert.equal(await via.text(), await direct.text());
}

test('the NGINX recipe of docs/cross-origin.md puts the app and the BFF on one origin', { timeout: 60_000 }, async () => {
  const site = recipe('nginx-recipe', 'nginx');
  const port = await freePort();
  // The BFF listens behind NGINX, and its public URL is NGINX's: no [cors] at all.
  const bff = await startBff([], { publicPort: port });
  const dir = mkdtempSync(path.join(tmpdir(), 'tbff-nginx-recipe-'));
  chmodSync(dir, 0o755); // nginx's workers run as nobody when started as root
  mkdirSync(path.join(dir, 'www'));
  writeFileSync(path.join(dir, 'www/index.html'), CLIENT_PAGE);
  writeFileSync(path.join(dir, 'www/tinybird-bff.js'), readFileSync(path.join(REPO, 'web/tinybird-bff.js')));
  const ours = site
    .replaceAll('proxy_pass http://127.0.0.1:3000;', `proxy_pass ${bff.listen};`)
    .replace('root /srv/app/dist;', `root ${dir}/www;`);
  assert.notEqual(ours, site);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${t};`).join(' ');
  writeFileSync(path.join(dir, 'nginx.conf'), `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
${process.getuid?.() === 0 ? 'user nobody nogroup;' : ''}
events { worker_connections 64; }
http { access_log off; ${temp} include /etc/nginx/mime.types;
  server { listen 127.0.0.1:${port}; ${ours} } }`);
  const nginx = spawn('nginx', ['-e', `${dir}/error.log`, '-p', dir, '-c', `${dir}/nginx.conf`], { stdio: 'ignore' });
  try {
    await waitUp(`http://127.0.0.1:${port}/`, () => nginx.exitCode === null, () => readFileSync(`${dir}/error.log`, 'utf8'));
    const { result, cookies } = await journey(browser, `http://127.0.0.1:${port}`, { url: '' });
    assert.equal(result.error, undefined, JSON.stringify(result));
    assert.equal(result.me, 'alice');
    assert.deepEqual(result.proxy, { path: 'proxy', orgs: ['acme'] });
    assert.equal(result.afterLogout, 401);
    assert.match(cookies[0], /SameSite=Lax/i);
    await assertAuthReachesBff(`http://127.0.0.1:${port}`, bff);
  } catch (err) {
    err.message += `\n--- serve output ---\n${bff.output().slice(-3000)}`;
    throw err;
  } finally {
    nginx.kill('SIGTERM');
    await bff.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the Vite recipe of docs/cross-origin.md serves the app and proxies the BFF on Vite\'s origin', { timeout: 60_000 }, async () => {
  const config = recipe('vite-recipe', 'js');
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  // Behind Vite, with Vite's URL as the public URL and no [cors]: a call that needed CORS fails.
  const bff = await startBff([], { publicPort: port });
  // A Vite project: its config (the recipe), an index.html importing the shipped client.
  const dir = mkdtempSync(path.join(tmpdir(), 'tbff-vite-recipe-'));
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const ours = config.replaceAll("target: 'http://127.0.0.1:3000'", `target: '${bff.listen}'`);
  assert.equal(ours.split(bff.listen).length - 1, config.split('http://127.0.0.1:3000').length - 1);
  assert.notEqual(ours, config);
  writeFileSync(path.join(dir, 'vite.config.js'), ours);
  writeFileSync(path.join(dir, 'index.html'), CLIENT_PAGE);
  writeFileSync(path.join(dir, 'tinybird-bff.js'), readFileSync(path.join(REPO, 'web/tinybird-bff.js')));
  const viteBin = path.join(here, 'node_modules/vite/bin/vite.js');
  const vite = spawn(process.execPath, [viteBin, '--host', '127.0.0.1', '--port', String(port), '--strictPort', '--clearScreen', 'false'],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let viteOut = '';
  vite.stdout.on('data', (d) => { viteOut += d; });
  vite.stderr.on('data', (d) => { viteOut += d; });
  const viteExited = new Promise((resolve) => vite.once('exit', resolve));
  try {
    await waitUp(`${origin}/`, () => vite.exitCode === null, () => viteOut);
    const { result, cookies, jar, requests } = await journey(browser, origin, { url: '' });
    assert.equal(result.error, undefined, JSON.stringify(result));
    assert.equal(result.me, 'alice');
    assert.equal(result.token, 'eyJ');
    assert.ok(result.direct.rows > 0, JSON.stringify(result));
    assert.deepEqual(result.proxy, { path: 'proxy', orgs: ['acme'] });
    assert.equal(result.afterLogout, 401);

    // The session cookie was set by Vite's origin, for its host only, and the browser kept it.
    const login = requests.find((r) => r.url === `${origin}/api/login`);
    assert.ok(login, `the login went to Vite: ${JSON.stringify(requests.map((r) => r.url))}`);
    assert.equal(cookies.length, 1, JSON.stringify(cookies));
    assert.match(cookies[0], /SameSite=Lax/i);
    assert.doesNotMatch(cookies[0], /Domain=/i);
    const name = cookies[0].split('=')[0];
    assert.ok(jar.some((c) => c.name === name && c.domain === '127.0.0.1'), JSON.stringify(jar));
    // No CORS: every BFF call went to Vite's origin as a same-origin request (which browsers
    // do not submit to CORS; the BFF has no [cors] and would refuse a cross-origin one), and
    // the page never called the BFF's own address. (Vite's own `server.cors` adds an
    // Access-Control-Allow-Origin for loopback origins to everything it answers: not the BFF's.)
    const bffCalls = requests.filter((r) => r.headers);
    assert.ok(bffCalls.length >= 5, JSON.stringify(requests.map((r) => r.url)));
    for (const r of bffCalls) {
      assert.equal(new URL(r.url).origin, origin, r.url);
      assert.equal(r.headers['sec-fetch-site'], 'same-origin', `${r.method} ${r.url}`);
      assert.notEqual(r.method, 'OPTIONS', r.url);
    }
    assert.ok(!requests.some((r) => r.url.startsWith(bff.listen)), 'the page called the BFF directly');

    // The login providers' routes reach the BFF through Vite too, and an app path that only
    // starts like the BFF's stays Vite's.
    await assertAuthReachesBff(origin, bff);
    const app = await fetch(`${origin}/apis`, { headers: { Accept: 'text/html' } });
    assert.match(await app.text(), /<title>an app<\/title>/, 'Vite answers its own paths (SPA fallback)');
  } catch (err) {
    err.message += `\n--- vite output ---\n${viteOut.slice(-2000)}\n--- serve output ---\n${bff.output().slice(-3000)}`;
    throw err;
  } finally {
    vite.kill('SIGTERM');
    await viteExited;
    await bff.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
