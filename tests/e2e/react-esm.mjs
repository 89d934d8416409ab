// React's npm packages ship CommonJS only. The browser tests of web/react.js load React with no
// bundler: this module turns the files React itself publishes (tests/react/<major>/node_modules)
// into ES modules the test page imports through an import map. It wraps each CommonJS file
// unchanged in a function, resolves `require()` with Node's own resolution ahead of time, and
// sets `process.env.NODE_ENV`, which is all React's files need from a bundler.
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
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
  const pkg = path.join(root, 'node_modules/react/package.json');
  if (!existsSync(pkg)) {
    throw new Error(`React ${major} is not installed: run \`npm ci --prefix tests/react/${major}\` (scripts/test does).`);
  }
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
      entry.deps[spec] = add(req.resolve(spec));
    }
    return id;
  };
  const entryIds = Object.fromEntries(ENTRIES.map((spec) => [spec, add(resolveFrom.resolve(spec))]));

  const bundle = [
    `// React ${major} (${env}) from tests/react/${major}/node_modules, wrapped by tests/e2e/react-esm.mjs.`,
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
    `export const entries = { ${ENTRIES.map((spec) => `${JSON.stringify(spec)}: load(${entryIds[spec]})`).join(', ')} };`,
  ].join('\n');

  // The named exports: what React's own files put on module.exports, read by running the same
  // bundle in Node (React's files only touch `window`/`document` behind feature checks).
  const { entries } = await import(`data:text/javascript;base64,${Buffer.from(bundle).toString('base64')}`);
  const files = new Map([['bundle.mjs', bundle]]);
  const importMap = {};
  for (const spec of ENTRIES) {
    const name = `${spec.replace('/', '-')}.mjs`;
    const names = Object.keys(entries[spec]).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== 'default');
    files.set(name, [
      "import { entries } from './bundle.mjs';",
      `const m = entries[${JSON.stringify(spec)}];`,
      'export default m;',
      ...names.map((n) => `export const ${n} = m.${n};`),
    ].join('\n'));
    importMap[spec] = `${base}${name}`;
  }
  return { version: entries.react.version, files, importMap };
}
