// The demo page's SQL console: one query over the signed-in tenant's data
// sources, run through the browser client on the path picked (direct: the JWT
// to Tinybird's /v0/sql; proxy: the session cookie to the BFF's /api/sql), with
// the result table, the path that served it and the latency. `SELECT count(*)
// FROM orders` counts only the tenant's rows on both: Tinybird adds the
// DATASOURCES:READ filter of the user's JWT to every read.
// DOM writes use textContent and classes only (strict CSP), like app.js.
import { SignedOutError } from './tinybird-bff.js';

/** Rows of a result drawn at most (the rest are counted, not drawn). */
const MAX_ROWS = 200;
/** Runs kept in the history table. */
const MAX_RUNS = 10;

const $ = (id) => document.getElementById(id);
const show = (el) => el.classList.remove('hidden');
const hide = (el) => el.classList.add('hidden');

/**
 * Wires the console's form to `tb` and returns its controls.
 * @param {import('./tinybird-bff.js').TinybirdBffClient} tb
 * @param {{onSignedOut: (err: Error) => void}} hooks
 * @returns {{show: (datasources: {datasource: string, filter: string}[]) => void, reset: () => void}}
 */
export function createSqlConsole(tb, { onSignedOut }) {
  $('sql-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const query = $('sql-query').value.trim();
    if (query) run(tb, query, $('sql-path').value, onSignedOut);
  });
  return {
    show(datasources) {
      $('sql-section').classList.toggle('hidden', datasources.length === 0);
      $('sql-filters').textContent = datasources.length
        ? datasources.map((d) => `${d.datasource}\n  WHERE ${d.filter}`).join('\n')
        : '–';
    },
    reset,
  };
}

/** Forgets the previous user's results. */
function reset() {
  const table = $('sql-result');
  table.tHead.rows[0].replaceChildren();
  table.tBodies[0].replaceChildren();
  $('sql-history').tBodies[0].replaceChildren();
  const chip = $('sql-served');
  chip.textContent = '';
  chip.dataset.path = '';
  chip.dataset.state = '';
  hide($('sql-error'));
}

async function run(tb, query, path, onSignedOut) {
  const button = $('sql-run');
  const chip = $('sql-served');
  button.disabled = true;
  hide($('sql-error'));
  chip.dataset.path = '';
  chip.dataset.state = 'loading';
  chip.textContent = `running via ${path}…`;
  try {
    const res = await tb.sql(query, { path });
    renderResult(res);
    chip.dataset.path = res.path;
    chip.dataset.state = 'done';
    chip.textContent = `${res.path}${res.fellBack ? ' (fallback)' : ''} · ${Math.round(res.elapsedMs)} ms`;
    addRun(query, res);
  } catch (err) {
    if (err instanceof SignedOutError) {
      onSignedOut(err);
      return;
    }
    chip.dataset.state = 'failed';
    chip.textContent = `${path} · failed`;
    $('sql-error').textContent = err?.message ?? String(err);
    show($('sql-error'));
  } finally {
    button.disabled = false;
  }
}

/** Any result: columns from `meta` (numbers right-aligned), at most MAX_ROWS rows. */
function renderResult(res) {
  const table = $('sql-result');
  const meta = Array.isArray(res.meta) ? res.meta : [];
  const rows = Array.isArray(res.data) ? res.data : [];
  const columns = meta.length ? meta.map((m) => m.name) : Object.keys(rows[0] ?? {});
  const numeric = columns.map((_, i) => /^(U?Int|Float|Decimal)/.test(meta[i]?.type ?? ''));
  table.tHead.rows[0].replaceChildren(...columns.map((name, i) => {
    const th = document.createElement('th');
    th.textContent = name;
    if (numeric[i]) th.className = 'num';
    return th;
  }));
  const tbody = table.tBodies[0];
  tbody.replaceChildren(...rows.slice(0, MAX_ROWS).map((row) => {
    const tr = document.createElement('tr');
    columns.forEach((name, i) => {
      const td = tr.insertCell();
      td.textContent = cellText(row[name]);
      if (numeric[i]) td.className = 'num';
    });
    return tr;
  }));
  if (rows.length === 0 || rows.length > MAX_ROWS) {
    const td = tbody.insertRow().insertCell();
    td.colSpan = Math.max(1, columns.length);
    td.className = 'empty';
    td.textContent = rows.length ? `${rows.length - MAX_ROWS} more rows not shown` : 'No rows';
  }
}

/** One line of the history: path, query, first value, rows, latency. */
function addRun(query, res) {
  const tbody = $('sql-history').tBodies[0];
  const tr = document.createElement('tr');
  tr.dataset.path = res.path;
  const path = tr.insertCell();
  const dot = document.createElement('span');
  dot.className = `dot dot-${res.path}`;
  path.append(dot, res.path);
  const q = tr.insertCell();
  q.textContent = query;
  q.title = query;
  tr.insertCell().textContent = cellText(res.data?.[0] ? Object.values(res.data[0])[0] : undefined);
  const rows = tr.insertCell();
  rows.className = 'num';
  rows.textContent = String(res.rows ?? res.data?.length ?? 0);
  const time = tr.insertCell();
  time.className = 'num';
  time.textContent = `${Math.round(res.elapsedMs)} ms`;
  tbody.prepend(tr);
  while (tbody.rows.length > MAX_RUNS) tbody.lastElementChild.remove();
}

function cellText(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}
