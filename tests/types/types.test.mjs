// The type declarations beside the browser client (web/tinybird-bff.d.ts, web/react.d.ts):
// `tsc --strict --noEmit` over examples that use every export (example.ts, react-example.tsx),
// with TypeScript 7 and 5 and with React's types 19 and 18; the names the declarations export
// are the names the modules export; and the check really fails on a type error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.resolve(here, '../../web');
const run = promisify(execFile);

const TSC = {
  7: path.join(here, 'node_modules/typescript/bin/tsc'),
  5: path.join(here, 'node_modules/typescript5/bin/tsc'),
};

/** Runs tsc; resolves to {code, out}. */
async function tsc(version, ...args) {
  try {
    const { stdout, stderr } = await run(process.execPath, [TSC[version], ...args], { cwd: here });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    if (typeof err.code !== 'number') throw err;
    return { code: err.code, out: (err.stdout ?? '') + (err.stderr ?? '') };
  }
}

for (const [version, project, label] of [
  [7, 'tsconfig.json', 'TypeScript 7, @types/react 19'],
  [7, 'tsconfig.react18.json', 'TypeScript 7, @types/react 18'],
  [5, 'tsconfig.json', 'TypeScript 5.9, @types/react 19'],
]) {
  test(`tsc --strict --noEmit accepts the typed examples (${label})`, { timeout: 120_000 }, async () => {
    const { version: v } = JSON.parse(readFileSync(path.join(path.dirname(TSC[version]), '../package.json'), 'utf8'));
    assert.equal(v.split('.')[0], String(version));
    const { code, out } = await tsc(version, '-p', project);
    assert.equal(code, 0, `tsc ${v} -p ${project}:\n${out}`);
  });
}

test('the check fails on a type error (it is not vacuous)', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(here, '.tmp-'));
  try {
    writeFileSync(path.join(dir, 'wrong.ts'), [
      "import { createClient } from '../../../web/tinybird-bff.js';",
      "const tb = createClient({ mode: 'auto' });",
      "export const n: number = (await tb.query<{ units: string }>('top_products')).data[0]!.units;",
      '',
    ].join('\n'));
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ extends: '../tsconfig.json', files: ['wrong.ts'] }));
    const { code, out } = await tsc(7, '-p', path.join(dir, 'tsconfig.json'));
    assert.notEqual(code, 0);
    assert.match(out, /wrong\.ts\(3,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Value exports a hand-written .d.ts declares (functions, classes, consts), by name. */
function declaredValues(file) {
  const src = readFileSync(file, 'utf8');
  return [...src.matchAll(/^export (?:declare )?(?:function|class|const|let) ([A-Za-z_$][\w$]*)/gm)]
    .map((m) => m[1])
    .filter((name, i, all) => all.indexOf(name) === i)
    .sort();
}

test('tinybird-bff.d.ts declares exactly what tinybird-bff.js exports', async () => {
  const runtime = Object.keys(await import(path.join(web, 'tinybird-bff.js'))).sort();
  assert.deepEqual(declaredValues(path.join(web, 'tinybird-bff.d.ts')), runtime);
});

test('react.d.ts declares exactly what react.js exports', () => {
  // react.js imports 'react', which web/ cannot resolve in Node: read its export list instead.
  const src = readFileSync(path.join(web, 'react.js'), 'utf8');
  const runtime = [...src.matchAll(/^export (?:async )?(?:function|class|const|let) ([A-Za-z_$][\w$]*)/gm)].map((m) => m[1]).sort();
  assert.ok(!/^export \{|^export \*|^export default/m.test(src), 'react.js exports only by declaration');
  assert.deepEqual(declaredValues(path.join(web, 'react.d.ts')), runtime);
});

test('every runtime error class is a subclass of TinybirdBffError, as declared', async () => {
  const mod = await import(path.join(web, 'tinybird-bff.js'));
  const dts = readFileSync(path.join(web, 'tinybird-bff.d.ts'), 'utf8');
  for (const name of ['SignedOutError', 'ForbiddenError', 'RateLimitedError', 'NetworkError', 'QueryError']) {
    assert.ok(new mod[name]('x') instanceof mod.TinybirdBffError, name);
    assert.match(dts, new RegExp(`export class ${name} extends TinybirdBffError \\{\\}`));
    assert.equal(new mod[name]('x').name, name);
  }
  assert.ok(new mod.CorsError('x') instanceof mod.NetworkError, 'a CORS refusal is a network error too');
  assert.match(dts, /export class CorsError extends NetworkError \{\}/);
  assert.equal(new mod.CorsError('x').name, 'CorsError');
  const e = new mod.RateLimitedError('slow', { status: 429, path: 'direct', body: { error: 'x' }, retryAfter: 2 });
  assert.deepEqual([e.status, e.path, e.body, e.retryAfter], [429, 'direct', { error: 'x' }, 2]);
});
