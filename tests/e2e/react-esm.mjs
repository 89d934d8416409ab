// React's npm packages ship CommonJS only. The browser tests of web/react.js load React with no
// bundler: this module turns the files React itself publishes (tests/react/<major>/node_modules)
// into ES modules the test page imports through an import map. It wraps each CommonJS file
// unchanged in a function, resolves `require()` with Node's own resolution ahead of time, and
// sets `process.env.NODE_ENV`, which is all React's files need from a bundler. The same serves
// any CommonJS package (`commonjsModules`): Tinybird's chart library in charts.test.mjs.
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ESM = /^\s*(import\s*[{*\w]|export\s)/m;
const REQUIRE = /\brequire\(\s*(['"])([^'"]+)\1\s*\)/g;

/** The bare specifiers the test page imports, and the names each ES module exports. */
const ENTRIES = ['react', 'react-dom', 'react-dom/client'];

/**
 * Builds the ES modules for React `major` (18 or 19) in `env` ('development' | 'production').
 * @returns {Promise<{version: string, files: Map<string, string>, importMap: Record<string, string>}>}
 *   `files` maps a URL path under `base` to its JavaScript source.
 */
export async function reactModules(major, env, base) {
  const root = path.resolve(here, '../react', String(major));
  if (!existsSync(path.join(root, 'node_modules/react/package.json'))) {
    throw new Error(`React ${major} is not installed: run \`npm ci --prefix tests/react/${major}\` (scripts/test does).`);
  }
  const built = await commonjsModules(root, ENTRIES, env, base, `React ${major}`);
  return { version: built.entries.react.version, files: built.files, importMap: built.importMap };
}

/**
 * Wraps the CommonJS packages `entries` installed under `root` (and everything they require)
 * into ES modules, one per entry, served under `base`.
 * @returns {Promise<{entries: Record<string, any>, files: Map<string, string>, importMap: Record<string, string>}>}
 */
export async function commonjsModules(root, entries, env, base, label) {
  const resolveFrom = createRequire(path.join(root, 'package.json'));
  const ids = new Map(); // absolute file -> module id
  const modules = []; // {file, deps: {specifier: id}}
  const add = (file) => {
    if (ids.has(file)) return ids.get(file);
    const id = modules.length;
    ids.set(file, id);
    const entry = { file, source: readFileSync(file, 'utf8'), deps: {} };
    modules.push(entry);
    const req = createRequire(file);
    for (const [, , spec] of entry.source.matchAll(REQUIRE)) {
      // A require() in a comment or an optional dependency (ECharts names node-canvas): left
      // out, and an error only if the code really calls it.
      // So is one that resolves to an ES module: ECharts' bundle names zrender's in a comment.
      let resolved = null;
      try {
        resolved = req.resolve(spec);
      } catch {
        continue;
      }
      if (!ids.has(resolved) && ESM.test(readFileSync(resolved, 'utf8'))) continue;
      entry.deps[spec] = add(resolved);
    }
    return id;
  };
  const entryIds = Object.fromEntries(entries.map((spec) => [spec, add(resolveFrom.resolve(spec))]));

  const bundle = [
    `// ${label} (${env}) from ${path.relative(path.resolve(here, '../..'), root)}/node_modules, wrapped by tests/e2e/react-esm.mjs.`,
    `const process = { env: { NODE_ENV: ${JSON.stringify(env)} } };`,
    'const defs = [',
    ...modules.map((m) => `// ${path.relative(root, m.file)}\n[function (module, exports, require) {\n${m.source}\n}, ${JSON.stringify(m.deps)}],`),
    '];',
    'const cache = [];',
    'function load(id) {',
    '  if (cache[id]) return cache[id].exports;',
    '  const module = (cache[id] = { exports: {} });',
    '  const [fn, deps] = defs[id];',
    '  fn.call(module.exports, module, module.exports, (spec) => {',
    "    if (!(spec in deps)) throw new Error(`react-esm: unresolved require(${spec})`);",
    '    return load(deps[spec]);',
    '  });',
    '  return module.exports;',
    '}',
    `export const entries = { ${entries.map((spec) => `${JSON.stringify(spec)}: load(${entryIds[spec]})`).join(', ')} };`,
  ].join('\n');

  // The named exports: what React's own files put on module.exports, read by running the same
  // bundle in Node (React's files only touch `window`/`document` behind feature checks).
  const loaded = (await import(`data:text/javascript;base64,${Buffer.from(bundle).toString('base64')}`)).entries;
  const files = new Map([['bundle.mjs', bundle]]);
  const importMap = {};
  for (const spec of entries) {
    const name = `${spec.replace(/^@/, '').replaceAll('/', '-')}.mjs`;
    const names = Object.keys(loaded[spec]).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== 'default');
    files.set(name, [
      "import { entries } from './bundle.mjs';",
      `const m = entries[${JSON.stringify(spec)}];`,
      'export default m;',
      ...names.map((n) => `export const ${n} = m.${n};`),
    ].join('\n'));
    importMap[spec] = `${base}${name}`;
  }
  return { entries: loaded, files, importMap };
}
