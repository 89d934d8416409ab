// Every command README.md shows, run as a newcomer would run it, against the real binary:
// - "The two commands": `cargo run --release` is the demo binary with no arguments (run as
//   target/release/tinybird-bff: cargo itself would rebuild it with other features than the
//   test build's, for minutes); `scripts/test` is what CI runs (.ci/run), and this file is part
//   of it.
// - "Connect your workspace in five steps": every shell block after that heading, and every
//   inline `tinybird-bff ...` command, run in order in one bash session in a scratch folder,
//   literally, with two edits a person makes by hand (the admin token pasted into .env, and
//   a free port instead of 3000) and Tinybird's host replaced by a local endpoint.
// - The frontend snippet, run as a module in Chromium on the page the BFF serves, logged in
//   as the user `init` printed.
// A command in the README that this file does not run fails the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomUUID } from 'node:crypto';
import { BIN, launchBrowser, artifact } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '../..');
const README = readFileSync(path.join(REPO, 'README.md'), 'utf8');

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The README's fenced blocks of `lang`, with the heading (##) each sits under. */
function blocks(lang) {
  const out = [];
  let heading = '';
  const re = /^## (.*)$|^( *)```(\w*)\n([\s\S]*?)^\2```$/gm;
  for (const m of README.matchAll(re)) {
    if (m[1] !== undefined) heading = m[1];
    else if (m[3] === lang) out.push({ heading, code: m[4].replace(new RegExp(`^${m[2]}`, 'gm'), '') });
  }
  return out;
}

/** Shell commands of a block: continuation lines joined, trailing `  # comments` dropped. */
function commands(code) {
  return code.replace(/\\\n\s*/g, ' ').split('\n')
    .map((l) => l.replace(/\s{2,}#.*$/, '').trim())
    .filter((l) => l && !l.startsWith('#'));
}

/** Inline code spans that are commands of the binary (`tinybird-bff mint ...`). */
function inlineCommands() {
  return [...README.replace(/```[\s\S]*?```/g, '').matchAll(/`(tinybird-bff [^`]+)`/g)]
    .map((m) => m[1].replace(/\s+/g, ' '))
    .filter((c) => !/^tinybird-bff (init|check|serve)$/.test(c));
}

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

/** Starts `cmd args` and resolves with the child and the first stdout match of `re`. */
function startUntil(cmd, args, re, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${re} within 30 s:\n${out}`)), 30_000);
    const check = () => {
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m, output: () => out });
      }
    };
    child.stdout.on('data', (d) => { out += d; check(); });
    child.stderr.on('data', (d) => { out += d; });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${cmd} exited (${code}):\n${out}`)); });
  });
}

/** The environment without a signing key: the steps must find theirs in .env. */
function withoutKeys(env) {
  const { TINYBIRD_SIGNING_KEY, TINYBIRD_SIGNING_KEY_FILE, ...rest } = env;
  return rest;
}

function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

test('the README shows the commands this test runs, and no others', () => {
  const sh = blocks('sh');
  const first = sh.filter((b) => b.heading === 'The two commands').flatMap((b) => commands(b.code));
  assert.deepEqual(first, ['cargo run --release', 'scripts/test']);
  const others = sh.filter((b) => !['The two commands', 'Connect your workspace in five steps'].includes(b.heading));
  assert.deepEqual(others.map((b) => b.heading), [], 'shell blocks only under the two headings this test runs');
  assert.equal(blocks('js').length, 1, 'one frontend snippet');
  // CI runs scripts/test: .ci/run is exactly that.
  assert.match(readFileSync(path.join(REPO, '.ci/run'), 'utf8'), /^exec scripts\/test$/m);
  const lines = README.split('\n').length;
  assert.ok(lines >= 100 && lines <= 210, `a README for newcomers: ${lines} lines`);
});

test('`cargo run --release` starts the demo: the printed URL serves the page and alice / alice-demo logs in', { timeout: 60_000 }, async () => {
  const { child, match } = await startUntil(BIN, [], /^app: (http:\/\/\S+?)\/?$/m, { env: { ...process.env, RUST_LOG: 'warn' } });
  try {
    const app = match[1];
    assert.match(await (await fetch(`${app}/`)).text(), /tinybird-bff demo/);
    const login = await fetch(`${app}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-BFF-CSRF': '1' },
      body: JSON.stringify({ username: 'alice', password: 'alice-demo' }),
    });
    assert.equal(login.status, 200);
  } finally {
    await stop(child);
  }
});

test('connect your workspace in five steps: every command, in order, then the frontend snippet', { timeout: 120_000 }, async () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'tbff-readme-'));
  // `$PWD/target/release` of the README's first line: this repository's build.
  symlinkSync(path.join(REPO, 'target'), path.join(scratch, 'target'));
  const workspace = randomUUID();
  const key = `p.${Buffer.from(JSON.stringify({ u: workspace })).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
  const local = await startUntil(BIN, ['local', '--listen', '127.0.0.1:0'], /^tinybird: (http:\/\/\S+)$/m, {
    env: { ...process.env, TINYBIRD_SIGNING_KEY: key },
  });
  const port = await freePort();
  let serve;
  let context;
  try {
    const steps = blocks('sh').filter((b) => b.heading === 'Connect your workspace in five steps').flatMap((b) => commands(b.code));
    const last = steps.pop();
    assert.match(last, /^tinybird-bff serve /, 'the steps end by serving');
    assert.ok(steps.some((c) => c.startsWith('tinybird-bff init --host https://api.tinybird.co')), steps.join('\n'));
    const script = [
      'set -euo pipefail',
      ...steps.flatMap((c) => {
        const line = c.replace('https://api.tinybird.co', local.match[1]);
        if (!c.startsWith('set -a')) return [line];
        // By hand, before step 3: the admin token pasted into .env, and a free port for this test.
        return [
          `sed -i 's|^TINYBIRD_SIGNING_KEY=$|TINYBIRD_SIGNING_KEY=${key}|' .env`,
          `sed -i 's|127.0.0.1:3000|127.0.0.1:${port}|g' tinybird-bff.toml`,
          line,
        ];
      }),
      ...inlineCommands(),
      `exec ${last}`,
    ].join('\n');
    serve = await startUntil('bash', ['-c', script], /^first user: alice \/ (\S+)/m, {
      cwd: scratch,
      env: withoutKeys({ ...process.env, RUST_LOG: 'warn' }),
    });
    const password = serve.match[1];
    const app = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    while (!(await fetch(`${app}/healthz`).then((r) => r.ok, () => false))) {
      assert.ok(Date.now() < deadline, `serve never answered:\n${serve.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const out = serve.output();
    assert.match(out, /tinybird-bff\.toml: ok \(1 users, workspace [0-9a-f-]{36}, token ttl 600s\)/, out);
    assert.match(out, /^\$argon2id\$/m, 'hash-password printed a hash');
    assert.match(out, /PIPES:READ top_products <- tenant-dashboards \(fixed params \{"org_id":"acme"\}\)/, 'mint --explain');

    // The frontend snippet, as a module of the page the BFF serves (its CSP allows only
    // same-origin scripts, so the snippet is served from there).
    const [snippet] = blocks('js');
    context = await browser.newContext();
    const page = await context.newPage();
    const logged = [];
    page.on('console', async (m) => { if (m.type() === 'log') logged.push(await Promise.all(m.args().map((a) => a.jsonValue()))); });
    await page.route(`${app}/readme-snippet.js`, (route) => route.fulfill({ contentType: 'text/javascript', body: snippet.code }));
    await page.goto(app);
    const login = await page.evaluate(async (pw) => (await fetch('/api/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'X-BFF-CSRF': '1' }, body: JSON.stringify({ username: 'alice', password: pw }),
    })).status, password);
    assert.equal(login, 200);
    await page.addScriptTag({ type: 'module', url: `${app}/readme-snippet.js` });
    const answered = () => logged.find((args) => args[0] === 'direct' || args[0] === 'proxy');
    const deadline2 = Date.now() + 20_000;
    while (!answered() && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 100));
    assert.ok(answered(), `the snippet logged its result: ${JSON.stringify(logged)}`);
    const [pathTaken, rows] = answered();
    assert.equal(pathTaken, 'direct');
    assert.ok(Array.isArray(rows) && rows.length > 0 && rows.length <= 10, JSON.stringify(rows));
    await page.screenshot({ path: artifact('readme-five-steps.png') });
  } finally {
    await context?.close();
    await stop(serve?.child);
    await stop(local.child);
    rmSync(scratch, { recursive: true, force: true });
  }
});

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes. */
function slug(heading) {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

test('every relative link in the README, CONTRIBUTING, SECURITY and docs/ leads somewhere', async () => {
  const { readdirSync, existsSync } = await import('node:fs');
  const files = ['README.md', 'CONTRIBUTING.md', 'SECURITY.md', ...readdirSync(path.join(REPO, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const anchors = (file) => {
    const text = readFileSync(path.join(REPO, file), 'utf8').replace(/```[\s\S]*?```/g, '');
    return new Set([...text.matchAll(/^#{1,6} (.*)$/gm)].map((m) => slug(m[1])));
  };
  const broken = [];
  for (const file of files) {
    const text = readFileSync(path.join(REPO, file), 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue; // https:, mailto:
      const [rel, anchor] = target.split('#');
      const dest = rel ? path.normalize(path.join(path.dirname(file), rel)) : file;
      if (!existsSync(path.join(REPO, dest))) broken.push(`${file}: ${target} (no ${dest})`);
      else if (anchor && dest.endsWith('.md') && !anchors(dest).has(anchor)) broken.push(`${file}: ${target} (no heading #${anchor} in ${dest})`);
    }
  }
  assert.deepEqual(broken, []);
});
