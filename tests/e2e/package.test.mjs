// The npm package of the browser client (web/package.json): `npm pack` builds it (the tarball is
// kept in target/npm/), and a scratch app installs the tarball the way a frontend team would,
// imports it in Node (the core, and the React subpath with React installed beside it), and
// type-checks its own code against the installed package with tsc --strict.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const TSC = path.join(repo, 'tests/types/node_modules/typescript/bin/tsc');
// The versions the other tests already installed, so the install is served from npm's cache.
const REACT = JSON.parse(readFileSync(path.join(repo, 'tests/react/19/package.json'), 'utf8')).dependencies.react;
const TYPES_REACT = JSON.parse(readFileSync(path.join(repo, 'tests/types/package.json'), 'utf8')).devDependencies['@types/react'];
const run = promisify(execFile);

let work; // a temp dir holding the tarball and the scratch app
let app;
let packed; // npm pack's report

async function npm(args, cwd) {
  const { stdout } = await run('npm', args, { cwd, encoding: 'utf8', maxBuffer: 16 << 20 });
  return stdout;
}

/** `node --input-type=module -e src` in the scratch app; resolves to {code, stdout, stderr}. */
async function nodeIn(src) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', src], { cwd: app, encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

async function tsc(project) {
  try {
    const { stdout } = await run(process.execPath, [TSC, '-p', project], { cwd: app, encoding: 'utf8' });
    return { code: 0, out: stdout };
  } catch (err) {
    return { code: err.code, out: (err.stdout ?? '') + (err.stderr ?? '') };
  }
}

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'tbff-package-'));
  [packed] = JSON.parse(await npm(['pack', '--json', '--pack-destination', work], path.join(repo, 'web')));
  mkdirSync(path.join(repo, 'target/npm'), { recursive: true });
  copyFileSync(path.join(work, packed.filename), path.join(repo, 'target/npm', packed.filename));

  app = path.join(work, 'app');
  mkdirSync(app);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true, type: 'module' }, null, 2));
  await npm(['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error',
    path.join(work, packed.filename), `react@${REACT}`, `@types/react@${TYPES_REACT}`], app);
}, { timeout: 120_000 });

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('npm pack ships the client, the React module and their types, nothing else', () => {
  assert.equal(packed.name, 'tinybird-bff');
  assert.equal(packed.filename, `tinybird-bff-${packed.version}.tgz`);
  const cargo = readFileSync(path.join(repo, 'Cargo.toml'), 'utf8');
  assert.equal(packed.version, /^version = "([^"]+)"/m.exec(cargo)[1], 'the package version follows Cargo.toml');
  assert.deepEqual(packed.files.map((f) => f.path).sort(),
    ['README.md', 'package.json', 'react.d.ts', 'react.js', 'tinybird-bff.d.ts', 'tinybird-bff.js']);
  const pkg = JSON.parse(readFileSync(path.join(app, 'node_modules/tinybird-bff/package.json'), 'utf8'));
  assert.deepEqual(pkg.dependencies ?? {}, {}, 'no runtime dependencies');
  assert.equal(pkg.peerDependenciesMeta.react.optional, true, 'React is optional');
  assert.equal(pkg.private, true, 'not publishable by accident');
});

test('the installed package imports in Node: core, React subpath, exports map', async () => {
  const core = await nodeIn(`
    import * as tb from 'tinybird-bff';
    const client = tb.createClient({ bff: 'http://127.0.0.1:9/api', autoRefresh: false });
    console.log(JSON.stringify({
      exports: Object.keys(tb).sort(),
      mode: client.getMode(),
      retry: tb.parseRetryAfter('3'),
      qs: tb.toSearchParams({ ids: [1, 2], skip: null }).toString(),
      err: new tb.ForbiddenError('x', { status: 403 }) instanceof tb.TinybirdBffError,
    }));`);
  assert.equal(core.code, 0, core.stderr);
  const got = JSON.parse(core.stdout);
  assert.deepEqual(got.exports, Object.keys(await import(path.join(repo, 'web/tinybird-bff.js'))).sort());
  assert.deepEqual([got.mode, got.retry, got.qs, got.err], ['auto', 3, 'ids=1&ids=2', true]);

  const react = await nodeIn(`
    import * as r from 'tinybird-bff/react';
    import { version } from 'react';
    console.log(JSON.stringify({ exports: Object.keys(r).sort(), version }));`);
  assert.equal(react.code, 0, react.stderr);
  assert.deepEqual(JSON.parse(react.stdout), {
    exports: ['TinybirdProvider', 'useTinybirdClient', 'useTinybirdQuery', 'useTinybirdSql'], version: REACT,
  });

  const deep = await nodeIn("import 'tinybird-bff/tinybird-bff.js';");
  assert.notEqual(deep.code, 0);
  assert.match(deep.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/, 'only the documented entry points are importable');
});

const CHECK = `
import { createClient, ForbiddenError, type QueryResult, type TokenInfo } from 'tinybird-bff';
import { useTinybirdQuery, type TinybirdHookResult } from 'tinybird-bff/react';

interface Row { product_name: string; units: string }
const tb = createClient({ bff: '/api', mode: 'auto' });
export async function top(): Promise<string[]> {
  const res: QueryResult<Row> = await tb.query<Row>('top_products', { limit: 3 });
  const info: TokenInfo | null = tb.tokenInfo();
  return [...res.data.map((r) => r.product_name), res.path, String(info?.secondsLeft)];
}
export function useTop(): TinybirdHookResult<Row> {
  return useTinybirdQuery<Row>('top_products', { limit: 3 }, { refetchOnTokenRefresh: true });
}
export const isForbidden = (e: unknown): boolean => e instanceof ForbiddenError && e.status === 403;
// @ts-expect-error: the installed declarations are real types, not any
tb.setMode('sideways');
`;

for (const resolution of ['NodeNext', 'Bundler']) {
  test(`tsc --strict type-checks an app against the installed package (moduleResolution ${resolution})`, { timeout: 60_000 }, async () => {
    writeFileSync(path.join(app, 'check.ts'), CHECK);
    const project = path.join(app, `tsconfig.${resolution}.json`);
    writeFileSync(project, JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, target: 'ES2022', lib: ['ES2022', 'DOM'], types: [],
        module: resolution === 'Bundler' ? 'ESNext' : 'NodeNext', moduleResolution: resolution,
      },
      files: ['check.ts'],
    }));
    const { code, out } = await tsc(project);
    assert.equal(code, 0, out);
  });
}

test('the type check of the installed package fails on a type error (it is not vacuous)', { timeout: 60_000 }, async () => {
  writeFileSync(path.join(app, 'wrong.ts'), "import { createClient } from 'tinybird-bff';\ncreateClient().setMode('sideways');\n");
  const project = path.join(app, 'tsconfig.wrong.json');
  writeFileSync(project, JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', types: [], lib: ['ES2022', 'DOM'] }, files: ['wrong.ts'] }));
  const { code, out } = await tsc(project);
  assert.notEqual(code, 0);
  assert.match(out, /wrong\.ts\(2,24\): error TS2345: Argument of type '"sideways"' is not assignable to parameter of type 'Mode'/);
});
