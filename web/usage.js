// The admin's usage view: GET /api/admin/usage (Tinybird's own record of every request, read
// by the BFF), as a sortable table of tenants and one chart per tenant (direct and proxy
// requests over time), refreshed every 15 s while shown. A usage record the BFF cannot read is
// shown as such, never as zero usage.

const REFRESH_MS = 15000;
const COLUMNS = [
  ['tenant', 'Tenant'], ['workspace', 'Workspace'], ['requests', 'Requests'], ['direct', 'Direct'], ['proxy', 'Proxy'],
  ['errors', 'Errors'], ['rate_limited', '429'], ['read_bytes', 'Read bytes'],
  ['p50_ms', 'p50 ms'], ['p95_ms', 'p95 ms'], ['budget', 'Budget'],
];

export function createUsageView(root, { fetchJson }) {
  let timer = null;
  let sort = { key: 'requests', desc: true };
  let last = null;
  const charts = new Map();
  const el = (tag, attrs = {}, text) => {
    const e = document.createElement(tag);
    Object.assign(e, attrs);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const windowSelect = root.querySelector('[data-testid="usage-window"]');
  windowSelect.addEventListener('change', () => load());

  // The workspaces a tenant's rows came from (one, unless the workspace rule moved users).
  const value = (t, key) => (key === 'workspace' ? (t.workspaces ?? []).join(', ') : t[key]);

  function budgetText(b) {
    if (!b) return '–';
    if (b.state === 'within') return 'within';
    return `${b.state} ${b.line.budget} ${b.line.spent}/${b.line.limit}`;
  }

  function render() {
    const table = root.querySelector('[data-testid="usage-table"]');
    const head = table.tHead.rows[0];
    head.replaceChildren(...COLUMNS.map(([key, label]) => {
      const th = el('th', { className: ['tenant', 'workspace', 'budget'].includes(key) ? '' : 'num' }, label);
      th.dataset.sort = key;
      if (sort.key === key) th.dataset.dir = sort.desc ? 'desc' : 'asc';
      th.addEventListener('click', () => {
        sort = { key, desc: sort.key === key ? !sort.desc : !['tenant', 'workspace'].includes(key) };
        render();
      });
      return th;
    }));
    const tenants = [...(last?.tenants ?? [])].sort((a, b) => {
      const [x, y] = [value(a, sort.key), value(b, sort.key)];
      const c = typeof x === 'string' ? String(x).localeCompare(String(y)) : (x ?? -1) - (y ?? -1);
      return sort.desc ? -c : c;
    });
    table.tBodies[0].replaceChildren(...tenants.map((t) => {
      const tr = el('tr');
      tr.dataset.tenant = t.tenant;
      for (const [key] of COLUMNS) {
        const v = key === 'budget' ? budgetText(t.budget) : (value(t, key) || (value(t, key) === 0 ? 0 : '–'));
        const td = el('td', { className: typeof t[key] === 'number' ? 'num' : '' }, String(v));
        td.dataset.col = key;
        tr.append(td);
      }
      return tr;
    }));
    const source = root.querySelector('[data-testid="usage-source"]');
    const s = last?.source;
    source.dataset.ok = String(Boolean(last?.enabled && s?.ok));
    source.textContent = !last?.enabled ? 'usage reading is off ([usage] not configured)'
      : s?.ok ? `read ${new Date(s.last_success * 1000).toLocaleTimeString()}`
        : `cannot read usage: ${s?.error ?? 'not read yet'}`;
    drawCharts(tenants);
  }

  function drawCharts(tenants) {
    const box = root.querySelector('[data-testid="usage-charts"]');
    const Chart = window.Chart;
    for (const c of charts.values()) c.destroy();
    charts.clear();
    box.replaceChildren();
    if (!Chart) return;
    const labels = (last?.steps ?? []).map((t) => new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    for (const t of tenants.slice(0, 12)) {
      const fig = el('figure', { className: 'usage-chart' });
      fig.append(el('figcaption', {}, t.tenant));
      const canvas = el('canvas');
      canvas.dataset.tenant = t.tenant;
      fig.append(canvas);
      box.append(fig);
      charts.set(t.tenant, new Chart(canvas, {
        type: 'line',
        data: {
          labels,
          datasets: [
            { label: 'direct', data: t.series.map((p) => p[0]), borderColor: '#2563eb', tension: 0.2 },
            { label: 'proxy', data: t.series.map((p) => p[1]), borderColor: '#c2410c', tension: 0.2 },
          ],
        },
        options: { animation: false, plugins: { legend: { position: 'bottom' } }, scales: { y: { beginAtZero: true } } },
      }));
    }
  }

  async function load() {
    try {
      last = await fetchJson(`/api/admin/usage?window=${encodeURIComponent(windowSelect.value)}`);
      root.dataset.loaded = 'true';
      render();
    } catch (err) {
      root.querySelector('[data-testid="usage-source"]').textContent = `usage unavailable: ${err.message}`;
    }
  }

  return {
    show() {
      root.classList.remove('hidden');
      clearInterval(timer);
      load();
      timer = setInterval(load, REFRESH_MS);
    },
    hide() {
      clearInterval(timer);
      timer = null;
      last = null;
      for (const c of charts.values()) c.destroy();
      charts.clear();
      root.classList.add('hidden');
      delete root.dataset.loaded;
    },
    refresh: load,
  };
}
