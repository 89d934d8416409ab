// Several workspaces and key rotation, in the browser, against real binaries:
// - the demo's two regions: bob (globex, US) calls the US endpoint directly, alice the EU
//   one, and the page shows which host;
// - a signing key rotated by replacing its file under a running `serve`: the next query
//   gets one 403 per stale call, the client refreshes its token once, and everything is
//   served again on the direct path, with no restart and no error on the page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  BIN, withApp, launchBrowser, openApp, login, waitServed, unexpectedConsoleErrors,
} from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '../..');

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('each region\'s tenant calls its own workspace host directly, and the page shows it', { timeout: 90_000 }, async () => {
  await withApp(browser, {}, async ({ server, page, log }) => {
    const us = /^tinybird us: (http:\/\/\S+?)\/?$/m.exec(server.output())?.[1];
    const eu = /^tinybird eu: (http:\/\/\S+?)\/?$/m.exec(server.output())?.[1];
    assert.ok(us && eu && us !== eu, server.output());
    assert.equal(server.tinybird, eu);
    await login(page, 'bob');
    await waitServed(page, 'direct');
    assert.equal(await page.textContent('[data-testid=token-host]'), us);
    const calls = log.requests.filter((r) => r.url.includes('/v0/pipes/'));
    assert.ok(calls.length >= 3);
    assert.ok(calls.every((r) => r.url.startsWith(`${us}/`)), calls.map((r) => r.url).join('\n'));
    await page.click('[data-testid=logout]');
    await page.locator('[data-testid=login-view]').waitFor({ state: 'visible' });
    const before = log.requests.length;
    await login(page, 'alice');
    await waitServed(page, 'direct');
    assert.equal(await page.textContent('[data-testid=token-host]'), eu);
    const aliceCalls = log.requests.slice(before).filter((r) => r.url.includes('/v0/pipes/'));
    assert.ok(aliceCalls.length >= 3 && aliceCalls.every((r) => r.url.startsWith(`${eu}/`)));
    assert.deepEqual(unexpectedConsoleErrors(log), []);
  });
});

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** An admin token of the real shape for `workspace`. */
function adminToken(workspace) {
  const b64 = (b) => Buffer.from(b).toString('base64url');
  return `p.${b64(JSON.stringify({ u: workspace }))}.${b64(randomBytes(32))}`;
}

/** Starts a binary; resolves with its output accessor once `ready` matches it. */
async function startBin(args, env, ready) {
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'info', ...env } });
  let out = '';
  // Without colour codes, so the log reads as text.
  const add = (d) => { out += String(d).replace(/\x1b\[[0-9;]*m/g, ''); };
  child.stdout.on('data', add);
  child.stderr.on('data', add);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const match = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start:\n${out}`)), 30_000);
    const check = () => {
      const m = ready.exec(out);
      if (m) { clearTimeout(timer); resolve(m); }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    exited.then(() => { clearTimeout(timer); reject(new Error(`${args[0]} exited:\n${out}`)); });
  });
  return {
    match,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

test('a key rotated by replacing its file: one 403 refresh, then direct again, no restart', { timeout: 120_000 }, async () => {
  const workspace = randomUUID();
  const [oldKey, newKey] = [adminToken(workspace), adminToken(workspace)];
  const port = await freePort();
  const local = (key) => startBin(['local', '--listen', `127.0.0.1:${port}`], { TINYBIRD_SIGNING_KEY: key }, /^tinybird: /m);
  let tinybird = await local(oldKey);
  const dir = mkdtempSync(path.join(tmpdir(), 'tbff-rotation-'));
  const demo = readFileSync(path.join(REPO, 'demo/config.toml'), 'utf8');
  const start = demo.indexOf('\n[tinybird]\n');
  const end = demo.indexOf('\n[token]\n');
  const config = `${demo.slice(0, start)}\n[tinybird]\nhost = "http://127.0.0.1:${port}/"\n${demo.slice(end)}`
    .replace(/^listen = .*$/m, 'listen = "127.0.0.1:0"')
    .replace(/^public_url = .*$/m, 'public_url = "http://127.0.0.1:0"')
    .replace(/^store = "file".*$/m, 'store = "memory"')
    .replace(/^watch = .*$/m, 'watch = "200ms"');
  writeFileSync(path.join(dir, 'tinybird-bff.toml'), config);
  writeFileSync(path.join(dir, 'users.toml'), readFileSync(path.join(REPO, 'demo/users.toml')));
  const keyFile = path.join(dir, 'tinybird-key');
  writeFileSync(keyFile, `${oldKey}\n`);
  const bff = await startBin(
    ['serve', '--config', path.join(dir, 'tinybird-bff.toml')],
    { TINYBIRD_SIGNING_KEY_FILE: keyFile },
    /tinybird-bff serving app=(http:\/\/\S+?)\/?\s/,
  );
  const app = bff.match[1];
  const server = { app, tinybird: `http://127.0.0.1:${port}` };
  let ctx;
  try {
    ctx = await openApp(browser, server);
    const { page, log } = ctx;
    await login(page, 'alice');
    await waitServed(page, 'direct');
    const fetched = Number(await page.textContent('[data-testid=token-refresh-count]'));
    const readyKey = async () => (await (await fetch(`${app}/readyz`)).json()).workspaces.default.key;
    const oldPrint = await readyKey();

    // Tinybird now knows only the new key; the operator replaces the mounted file.
    await tinybird.stop();
    tinybird = await local(newKey);
    writeFileSync(`${keyFile}.next`, newKey);
    renameSync(`${keyFile}.next`, keyFile);
    const deadline = Date.now() + 15_000;
    while (await readyKey() === oldPrint) {
      assert.ok(Date.now() < deadline, `the BFF did not reload the key:\n${bff.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    const mark = log.responses.length;
    await page.click('[data-testid=refresh]');
    await waitServed(page, 'direct');
    const after = log.responses.slice(mark).filter((r) => r.url.startsWith(`${server.tinybird}/v0/pipes/`));
    const refused = after.filter((r) => r.status === 403);
    const served = after.filter((r) => r.status === 200);
    assert.ok(refused.length >= 1 && refused.length <= 3, `one 403 per stale call: ${JSON.stringify(after)}`);
    assert.ok(served.length >= 3, `then served: ${JSON.stringify(after)}`);
    assert.equal(Number(await page.textContent('[data-testid=token-refresh-count]')), fetched + 1, 'one token refresh');
    assert.equal(await page.locator('.card-error:visible').count(), 0, 'no error on the page');
    assert.deepEqual(unexpectedConsoleErrors(log, [/status of 403/]), []);
    assert.match(bff.output(), /new signing key in force/);
    assert.ok(!bff.output().includes(newKey) && !bff.output().includes(oldKey), 'no key in the log');
  } catch (err) {
    err.message += `\n--- serve output ---\n${bff.output().slice(-4000)}`;
    throw err;
  } finally {
    await ctx?.context.close();
    await bff.stop();
    await tinybird.stop();
  }
});
