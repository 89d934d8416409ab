// The page of the React browser tests (tests/e2e/react.test.mjs): plain ES modules, no bundler.
// `react`, `react-dom/client`, `tinybird-bff` and `tinybird-bff/react` come from the page's
// import map. The test drives it through `window.__t`: which components are mounted, with which
// hook arguments, and what each one rendered.
import { createElement as h, StrictMode, useEffect, useState, version } from 'react';
import { createRoot } from 'react-dom/client';
import { createClient } from 'tinybird-bff';
import { TinybirdProvider, useTinybirdQuery, useTinybirdSql } from 'tinybird-bff/react';

/** Every fetch the client made, with its signal: the network log cannot show an abort before sending. */
const calls = [];
/** Extra wait before the real fetch of a Tinybird read (not the BFF's routes), abortable. */
let tinybirdDelayMs = 0;

function instrumentedFetch(url, init = {}) {
  const call = { url: String(url), method: init.method ?? 'GET', signal: init.signal ?? null, sent: false };
  calls.push(call);
  const send = () => {
    call.sent = true;
    return fetch(url, init);
  };
  const toTinybird = /\/v0\/(pipes|sql)/.test(call.url);
  if (!toTinybird || !tinybirdDelayMs) return send();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => send().then(resolve, reject), tinybirdDelayMs);
    init.signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(init.signal.reason);
    }, { once: true });
  });
}

const client = createClient({ bff: '/api', fetch: instrumentedFetch });

/** Every read the hooks asked the client for (before any token wait or network), with its signal. */
const reads = [];
for (const method of ['query', 'sql']) {
  const original = client[method].bind(client);
  client[method] = (what, ...rest) => {
    const opts = method === 'query' ? rest[1] : rest[0];
    reads.push({ method, what, signal: opts?.signal ?? null });
    return original(what, ...rest);
  };
}

/** What each probe rendered, in order: the hook's result reduced to what JSON can carry. */
const renders = {};
/** The last hook result of each probe (with the live `refetch`). */
const latest = {};

function describe(r) {
  return {
    loading: r.loading,
    path: r.path ?? null,
    rows: r.data ? r.data.length : null,
    data: r.data ?? null,
    meta: r.result ? r.result.meta : null,
    elapsedMs: r.result ? r.result.elapsedMs : null,
    fellBack: r.result ? r.result.fellBack : null,
    retries: r.result ? r.result.retries : null,
    enumerableKeys: r.result ? Object.keys(r.result) : null,
    error: r.error ? { name: r.error.name, status: r.error.status ?? null, path: r.error.path ?? null, message: r.error.message } : null,
  };
}

function Probe({ spec }) {
  const r = spec.sql !== undefined ? useTinybirdSql(spec.sql, spec.options) : useTinybirdQuery(spec.pipe, spec.params, spec.options);
  latest[spec.id] = r;
  const d = describe(r);
  (renders[spec.id] ??= []).push(d);
  return h('pre', { 'data-testid': `probe-${spec.id}`, 'data-loading': String(r.loading) }, JSON.stringify(d));
}

let setSpecs = null;
function App({ initial }) {
  const [specs, set] = useState(initial);
  useEffect(() => {
    setSpecs = set;
    return () => { setSpecs = null; };
  }, []);
  return h(TinybirdProvider, { client }, specs.map((spec) => h(Probe, { key: spec.key ?? spec.id, spec })));
}

let root = null;

window.__t = {
  reactVersion: version,
  client,
  calls,
  renders,
  /** (Re)creates the root with these probes; `strict` wraps it in <StrictMode>. */
  mount(specs, { strict = false } = {}) {
    root?.unmount();
    for (const k of Object.keys(renders)) delete renders[k];
    root = createRoot(document.getElementById('root'));
    const app = h(App, { initial: specs });
    root.render(strict ? h(StrictMode, null, app) : app);
  },
  /** Replaces the mounted probes (unmounting those left out). */
  setProbes(specs) {
    if (!setSpecs) throw new Error('mount() first');
    setSpecs(specs);
  },
  unmountAll() {
    root?.unmount();
    root = null;
  },
  state(id) {
    return latest[id] ? describe(latest[id]) : null;
  },
  refetch(id) {
    return latest[id].refetch();
  },
  setTinybirdDelay(ms) {
    tinybirdDelayMs = ms;
  },
  /** The reads the hooks started, as {method, what, aborted}. */
  clientReads() {
    return reads.map((r) => ({ method: r.method, what: r.what, aborted: r.signal?.aborted ?? false }));
  },
  /** The client's calls to Tinybird's pipe/SQL routes, as {url, sent, aborted, reason}. */
  tinybirdCalls() {
    return calls.filter((c) => /\/v0\/(pipes|sql)/.test(c.url)).map((c) => ({
      url: c.url, sent: c.sent, aborted: c.signal?.aborted ?? false, reason: c.signal?.aborted ? String(c.signal.reason?.name) : null,
    }));
  },
};
document.body.dataset.ready = 'true';
