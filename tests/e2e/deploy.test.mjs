// The operator's files in deploy/: docs/operations.md shows each of them verbatim (so what the
// docs say is what scripts/cluster runs, see cluster.test.mjs), `tinybird-bff check` accepts the
// config, and the systemd unit passes `systemd-analyze verify` with no warning and scores as
// hardened in `systemd-analyze security --offline=yes`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const BIN = path.resolve(here, process.env.TINYBIRD_BFF_BIN ?? '../../target/release/tinybird-bff');
const UNIT = 'deploy/systemd/tinybird-bff@.service';
const run = promisify(execFile);

/** The fenced code blocks of a Markdown file, by info string. */
function fences(markdown) {
  return [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2] }));
}

for (const [file, lang] of [['deploy/nginx/tinybird-bff.conf', 'nginx'], ['deploy/tinybird-bff.toml', 'toml'], [UNIT, 'ini']]) {
  test(`docs/operations.md shows ${file} as it is`, () => {
    const doc = readFileSync(path.join(repo, 'docs/operations.md'), 'utf8');
    const body = readFileSync(path.join(repo, file), 'utf8');
    const shown = fences(doc).filter((f) => f.lang === lang && f.body.startsWith(body.split('\n')[0]));
    assert.equal(shown.length, 1, `one \`\`\`${lang} block in docs/operations.md starts like ${file}`);
    assert.equal(shown[0].body, body, `docs/operations.md's copy of ${file} differs from the file: paste the file into the doc`);
  });
}

test('tinybird-bff check accepts deploy/tinybird-bff.toml', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tbff-deploy-'));
  try {
    copyFileSync(path.join(repo, 'deploy/tinybird-bff.toml'), path.join(dir, 'bff-1.toml'));
    copyFileSync(path.join(repo, 'demo/users.toml'), path.join(dir, 'users.toml'));
    const env = { ...process.env, TINYBIRD_SIGNING_KEY: 'p.eyJ1IjoiMTIzZTQ1NjctZTg5Yi0xMmQzLWE0NTYtNDI2NjE0MTc0MDAwIn0.sig', REDIS_PASSWORD: 'x' };
    const out = execFileSync(BIN, ['check', '--config', path.join(dir, 'bff-1.toml')], { env, encoding: 'utf8' });
    assert.match(out, /bff-1\.toml: ok \(4 users, workspace 123e4567-e89b-12d3-a456-426614174000, token ttl 600s\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A scratch root for systemd-analyze: the system's own units (for the targets the unit
 * names), the unit under test, and executables at the paths ExecStart and ExecReload name.
 */
function scratchRoot(unitText) {
  const root = mkdtempSync(path.join(tmpdir(), 'tbff-systemd-'));
  mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
  mkdirSync(path.join(root, 'usr/local/bin'), { recursive: true });
  mkdirSync(path.join(root, 'usr/lib/systemd'), { recursive: true });
  cpSync('/usr/lib/systemd/system', path.join(root, 'usr/lib/systemd/system'), { recursive: true, dereference: false, verbatimSymlinks: true });
  copyFileSync(BIN, path.join(root, 'usr/local/bin/tinybird-bff'));
  // ExecReload's `kill -HUP`.
  mkdirSync(path.join(root, 'bin'), { recursive: true });
  copyFileSync('/bin/kill', path.join(root, 'bin/kill'));
  writeFileSync(path.join(root, 'etc/systemd/system/tinybird-bff@.service'), unitText);
  return root;
}

async function analyze(args) {
  try {
    const { stdout, stderr } = await run('systemd-analyze', args, { encoding: 'utf8' });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    if (typeof err.code !== 'number') throw err;
    return { code: err.code, out: (err.stdout ?? '') + (err.stderr ?? '') };
  }
}

const haveSystemd = (() => {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
// CI installs systemd (scripts/test); a local run without it says so instead of failing.
const systemdSkip = !haveSystemd && process.env.CI !== 'true' ? 'systemd-analyze is not installed (apt-get install systemd)' : false;

test('systemd-analyze verify accepts the unit without a warning, and would report one', { skip: systemdSkip, timeout: 60_000 }, async () => {
  const unit = readFileSync(path.join(repo, UNIT), 'utf8');
  for (const [text, expectClean] of [[unit, true], [unit.replace('ProtectSystem=strict', 'ProtectSystem=strickt'), false]]) {
    const root = scratchRoot(text);
    try {
      const { code, out } = await analyze(['verify', `--root=${root}`, 'tinybird-bff@bff-1.service']);
      if (expectClean) {
        assert.equal(code, 0, out);
        assert.equal(out.trim(), '', `systemd-analyze verify warned:\n${out}`);
      } else {
        assert.match(out, /Failed to parse protect system value/, 'the check sees a broken unit');
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
});

test('systemd-analyze security rates the unit as hardened (exposure at most 2.0 of 10)', { skip: systemdSkip, timeout: 60_000 }, async () => {
  const root = scratchRoot(readFileSync(path.join(repo, UNIT), 'utf8'));
  try {
    const { code, out } = await analyze(['security', '--offline=yes', `--root=${root}`, '--threshold=20', '--no-pager', 'tinybird-bff@bff-1.service']);
    const level = Number(/Overall exposure level for tinybird-bff@bff-1\.service: (\d+\.\d+)/.exec(out)?.[1]);
    assert.ok(level <= 2.0, `exposure ${level}:\n${out}`);
    assert.equal(code, 0, out);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
