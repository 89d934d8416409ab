// The demo page: log in (password or an identity provider), a tenant dashboard
// served through web/tinybird-bff.js, an SQL console over the tenant's data
// sources on both paths, a direct-vs-proxy latency comparison, and the current
// token laid bare.
// No framework and no build step; all DOM writes use textContent (never
// innerHTML with data) and classes (never inline styles), so a strict CSP holds.
import { createClient, SignedOutError, RateLimitedError } from './tinybird-bff.js';
import { renderSalesChart, renderCompareCharts, summarize, clearCharts } from './charts.js';
import { createSqlConsole } from './sql-console.js';
import { createUsageView } from './usage.js';

const $ = (id) => document.getElementById(id);
const MODE_KEY = 'tinybird-bff.mode';
const QUERIES = {
  top_products: { limit: 10 },
  sales_by_day: { days: 30 },
  recent_orders: { limit: 20 },
  orgs_overview: {},
};

const tb = createClient({ bff: '/api', mode: savedMode() });
// Handy from the console (and for the browser tests): `tbDemo.client.tokenInfo()`.
window.tbDemo = { client: tb };
const usageView = createUsageView(document.getElementById('usage-section'), {
  async fetchJson(path) {
    const r = await fetch(path, { credentials: 'same-origin' });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error ?? `HTTP ${r.status}`);
    return body;
  },
});
const sqlConsole = createSqlConsole(tb, { onSignedOut: (err) => signedOut(err) });

const COMPARE_HINT = 'Runs the query alternately through each path (after one warm-up each) and plots how long the browser waited.';
const state = { me: null, tokens: 0, comparing: false, ticker: null, providers: null };

// ---------- client events ----------

tb.on('token', (info) => {
  state.tokens += 1;
  $('token-refresh-count').textContent = String(state.tokens);
  log('token', `${state.tokens === 1 ? 'Token fetched' : 'Token refreshed'}: ${info.name}, expires ${clock(info.expiresAt)}`);
  renderToken();
});
tb.on('fallback', (e) => {
  const banner = $('fallback-banner');
  banner.textContent = `Direct calls to Tinybird failed in this browser (${e.reason}). `
    + `Queries go through the BFF proxy until ${new Date(e.until).toLocaleTimeString()}, then direct is tried again.`;
  show(banner);
  log('fallback', `Fell back to the proxy: ${e.reason}`);
});
tb.on('recovered', () => {
  hide($('fallback-banner'));
  log('recovered', 'Direct path reachable again');
});
tb.on('retry', (e) => log('retry', `${e.status} on ${e.path}, retrying in ${(e.delayMs / 1000).toFixed(1)} s`));
tb.on('query', (e) => {
  if (state.comparing) return;
  const ind = $('path-indicator');
  ind.dataset.path = e.path;
  ind.textContent = `Last query: ${e.path}${e.fellBack ? ' (fallback)' : ''}`;
  log(e.path, `${e.pipe} via ${e.path}${e.fellBack ? ' (fallback)' : ''} · ${e.status} · ${Math.round(e.elapsedMs)} ms`);
});
tb.on('signedout', (e) => {
  // A background token refresh can be the first to learn the session is gone.
  if (e.reason !== 'logout' && state.me) signedOut(new SignedOutError('Signed out: your session ended. Sign in again.'));
});
tb.on('mode', (e) => {
  $(`mode-${e.mode}`).checked = true;
  log('mode', `Mode set to ${e.mode}`);
});
document.addEventListener('securitypolicyviolation', (e) => {
  console.error('CSP violation', e.violatedDirective, e.blockedURI);
  log('error', `CSP blocked ${e.blockedURI} (${e.violatedDirective})`);
});

// ---------- views ----------

async function start() {
  $(`mode-${tb.getMode()}`).checked = true;
  wire();
  try {
    showDashboard(await tb.me());
  } catch (err) {
    showLogin(err instanceof SignedOutError ? '' : `Could not reach the server: ${err.message}`);
  }
}

function showLogin(notice) {
  state.me = null;
  state.tokens = 0;
  $('token-refresh-count').textContent = '0';
  clearInterval(state.ticker);
  resetDashboard();
  hide($('dashboard-view'));
  hide($('session-bar'));
  show($('login-view'));
  const n = $('signed-out-notice');
  n.textContent = notice ?? '';
  toggle(n, Boolean(notice));
  $('login-username').focus();
  loadProviders();
}

/** Sign-in options: one link per identity provider; the password form only with local users. */
async function loadProviders() {
  if (!state.providers) {
    try {
      state.providers = await tb.providers();
    } catch (err) {
      log('error', `Sign-in providers: ${describe(err)}`);
      return; // the password form stays, as before providers existed
    }
  }
  renderProviders(state.providers);
}

function renderProviders({ local, providers }) {
  // Only same-site paths (`//host` and `/\host` are other origins to a browser): a
  // login_url is a route of this BFF.
  const usable = providers.filter((p) => typeof p.login_url === 'string' && /^\/(?![/\\])/.test(p.login_url));
  const box = $('login-providers');
  box.replaceChildren(...usable.map((p) => {
    const a = document.createElement('a');
    a.className = 'btn btn-block btn-provider';
    a.href = `${p.login_url}?return_to=/`;
    a.dataset.testid = `provider-${p.name}`;
    a.textContent = `Sign in with ${p.display_name || p.name}`;
    return a;
  }));
  toggle(box, usable.length > 0);
  toggle($('login-or'), usable.length > 0 && local);
  toggle($('login-form'), local);
  toggle(document.querySelector('.demo-logins'), local);
}

function showDashboard(me) {
  state.me = me;
  const user = me.user ?? {};
  const name = user.display_name || user.id || 'user';
  $('user-name').textContent = name;
  $('user-tenant').textContent = user.tenant ? `tenant ${user.tenant}` : (user.roles ?? []).join(', ');
  $('user-avatar').textContent = name.slice(0, 1).toUpperCase();
  $('dashboard-title').textContent = user.tenant ? `${user.tenant} dashboard` : 'Dashboard';
  hide($('login-view'));
  hide($('signed-out-notice'));
  show($('session-bar'));
  show($('dashboard-view'));
  const pipes = grantedPipes();
  for (const card of document.querySelectorAll('article[data-pipe]')) toggle(card, pipes.includes(card.dataset.pipe));
  const select = $('compare-pipe');
  select.replaceChildren(...pipes.map((p) => new Option(p, p)));
  clearInterval(state.ticker);
  state.ticker = setInterval(renderToken, 1000);
  renderToken();
  renderExposure();
  sqlConsole.show(me.datasources ?? []);
  if ((user.roles ?? []).includes('admin')) usageView.show();
  loadDashboard();
}

function grantedPipes() {
  const granted = (state.me?.pipes ?? []).map((p) => p.pipe);
  return Object.keys(QUERIES).filter((p) => granted.includes(p));
}

async function loadDashboard() {
  hide($('error-banner'));
  const pipes = grantedPipes();
  for (const chip of document.querySelectorAll('[data-testid^="served-"]')) {
    const mine = pipes.includes(chip.id.replace('served-', ''));
    chip.dataset.state = mine ? 'loading' : '';
    chip.dataset.path = '';
    chip.textContent = mine ? 'loading…' : '';
  }
  const renderers = { top_products: renderTop, sales_by_day: renderSales, recent_orders: renderOrders, orgs_overview: renderOrgs };
  const results = await Promise.allSettled(pipes.map((p) => tb.query(p, QUERIES[p])));
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length && !failed.some((r) => r.reason instanceof SignedOutError)) {
    const banner = $('error-banner');
    banner.textContent = `${failed.length} of ${results.length} queries failed: ${describe(failed[0].reason)}`
      + (tb.getMode() === 'direct' ? ' (Direct mode never falls back: switch to Auto or Proxy.)' : '');
    show(banner);
    if (failed.length === results.length) {
      $('path-indicator').dataset.path = '';
      $('path-indicator').textContent = 'Last queries failed';
    }
  }
  for (const [i, r] of results.entries()) {
    const pipe = pipes[i];
    const errEl = $(`error-${pipe}`);
    const card = document.querySelector(`article[data-pipe="${pipe}"]`);
    card?.classList.toggle('is-stale', r.status !== 'fulfilled');
    if (r.status === 'fulfilled') {
      hide(errEl);
      renderers[pipe](r.value.data);
      served(pipe, r.value);
    } else {
      if (r.reason instanceof SignedOutError) return signedOut(r.reason);
      errEl.textContent = describe(r.reason);
      show(errEl);
      $(`served-${pipe}`).textContent = 'failed';
      $(`served-${pipe}`).dataset.state = 'failed';
    }
  }
  renderExposure();
}

/** Forgets everything the previous user saw, so the next one never glimpses it. */
function resetDashboard() {
  for (const id of ['top-products', 'recent-orders', 'orgs-overview', 'compare-stats']) $(id).tBodies[0].replaceChildren();
  for (const id of ['kpi-revenue', 'kpi-orders', 'kpi-top', 'kpi-token']) $(id).textContent = '–';
  for (const chip of document.querySelectorAll('[data-testid^="served-"]')) {
    chip.textContent = '';
    chip.dataset.path = '';
    chip.dataset.state = '';
  }
  for (const el of document.querySelectorAll('.card-error')) hide(el);
  $('path-indicator').dataset.path = '';
  $('path-indicator').textContent = 'no query yet';
  $('token-claims').textContent = '{}';
  $('token-host').textContent = '–';
  $('token-name').textContent = '–';
  $('token-expires').textContent = '–';
  $('compare-status').textContent = COMPARE_HINT;
  delete $('compare-status').dataset.done;
  sqlConsole.reset();
  usageView.hide();
  hide($('fallback-banner'));
  clearCharts();
}

function signedOut(err) {
  log('error', err.message);
  showLogin(err.message);
}

function served(pipe, result) {
  const chip = $(`served-${pipe}`);
  chip.dataset.path = result.path;
  chip.dataset.state = 'done';
  chip.textContent = `${result.path}${result.fellBack ? ' (fallback)' : ''} · ${Math.round(result.elapsedMs)} ms`;
}

// ---------- renderers ----------

function renderTop(rows) {
  fillTable('top-products', rows, (r) => [r.product_name, int(r.units), money(r.revenue)]);
  $('kpi-top').textContent = rows[0]?.product_name ?? '–';
}

function renderSales(rows) {
  const revenue = rows.reduce((s, r) => s + Number(r.revenue), 0);
  const orders = rows.reduce((s, r) => s + Number(r.orders), 0);
  $('kpi-revenue').textContent = money(revenue);
  $('kpi-orders').textContent = int(orders);
  renderSalesChart($('sales-chart'), rows);
}

function renderOrders(rows) {
  fillTable('recent-orders', rows, (r) => [r.order_id, r.ts, r.customer, r.product_name, int(r.quantity), money(r.amount), r.org_id]);
}

function renderOrgs(rows) {
  fillTable('orgs-overview', rows, (r) => [r.org_id, r.org_name, int(r.orders), money(r.revenue)]);
}

function fillTable(id, rows, cells) {
  const tbody = $(id).tBodies[0];
  const numeric = [...$(id).tHead.rows[0].cells].map((th) => th.classList.contains('num'));
  tbody.replaceChildren(...rows.map((row) => {
    const tr = document.createElement('tr');
    cells(row).forEach((value, i) => {
      const td = tr.insertCell();
      td.textContent = value ?? '';
      if (numeric[i]) td.className = 'num';
    });
    return tr;
  }));
  if (rows.length === 0) {
    const td = tbody.insertRow().insertCell();
    td.colSpan = numeric.length;
    td.className = 'empty';
    td.textContent = 'No rows';
  }
}

function renderToken() {
  const info = tb.tokenInfo();
  const cd = $('token-countdown');
  if (!info) {
    cd.textContent = tb.getMode() === 'proxy' ? 'none (proxy mode)' : '–';
    cd.dataset.seconds = '';
    $('kpi-token').textContent = tb.getMode() === 'proxy' ? 'no token' : '–';
    $('token-progress').value = 0;
    return;
  }
  const left = Math.floor(info.secondsLeft);
  cd.textContent = duration(left);
  cd.dataset.seconds = String(left);
  $('kpi-token').textContent = duration(left);
  const progress = $('token-progress');
  progress.value = Math.max(0, Math.min(1, info.secondsLeft / info.expiresIn));
  progress.classList.toggle('low', info.secondsLeft <= info.expiresAt - info.refreshAt);
  $('token-name').textContent = info.name;
  $('token-host').textContent = info.host;
  $('token-expires').textContent = `${clock(info.expiresAt)} (refresh at ${clock(info.refreshAt)})`;
  const claims = JSON.stringify(info.claims, null, 2);
  if ($('token-claims').textContent !== claims) {
    $('token-claims').textContent = claims;
    renderExposure();
  }
}

function renderExposure() {
  const info = tb.tokenInfo();
  const pipe = grantedPipes()[0] ?? 'top_products';
  const qs = new URLSearchParams(Object.entries(QUERIES[pipe] ?? {})).toString();
  const direct = $('exposure-direct');
  if (info) {
    // Pipes carry fixed_params; data sources (SQL) carry a filter Tinybird adds to every read.
    const filters = (info.claims.scopes ?? []).map((s) => (s.type === 'DATASOURCES:READ'
      ? `${s.resource} (data source): filter ${s.filter || '(none: every row)'}`
      : `${s.resource}: ${Object.entries(s.fixed_params ?? {}).map(([k, v]) => `${k}=${v}`).join(', ') || '(no row filter)'}`));
    direct.textContent = [
      `GET ${info.host}/v0/pipes/${pipe}.json?${qs}`,
      `Authorization: Bearer ${info.token.slice(0, 24)}…${info.token.slice(-8)}`,
      `  (${info.token.length} chars, readable by page scripts)`,
      '',
      'Row filters in the token (fixed_params, filter):',
      ...filters.map((f) => `  ${f}`),
    ].join('\n');
  } else {
    direct.textContent = tb.getMode() === 'proxy' ? 'Proxy mode: no token fetched.' : 'No token fetched yet.';
  }
  $('exposure-proxy').textContent = [
    `GET /api/pipes/${pipe}.json?${qs}`,
    'Cookie: session (HttpOnly: sent by the browser, invisible to scripts)',
    '',
    `document.cookie → ${JSON.stringify(document.cookie)}`,
    'Tinybird token in the browser: none',
  ].join('\n');
}

// ---------- comparison ----------

async function runCompare(pipe, n) {
  const button = $('compare-run');
  const status = $('compare-status');
  button.disabled = true;
  delete status.dataset.done;
  state.comparing = true;
  const params = QUERIES[pipe] ?? {};
  const samples = { direct: [], proxy: [] };
  const errors = { direct: 0, proxy: 0 };
  const retries = { direct: 0, proxy: 0 };
  const lastError = {};
  // Tinybird counts `limits.rps` per token name, and the proxy's calls share the
  // user's bucket: pace the runs under it, or we would be measuring 429 waits.
  let rps = 0;
  let gapMs = 0;
  let nextAt = performance.now();
  try {
    // One warm-up per path: the first direct call pays for the token, the CORS
    // preflight and a new connection, none of which a steady page pays again.
    for (const path of ['direct', 'proxy']) await tb.query(pipe, params, { path }).catch(() => {});
    rps = Number(tb.tokenInfo()?.claims?.limits?.rps ?? 0);
    gapMs = rps > 0 ? 1000 / (rps * 0.7) : 0;
    for (let i = 0; i < n; i++) {
      // Alternate the order so neither path always runs on a warmer cache.
      for (const path of i % 2 ? ['proxy', 'direct'] : ['direct', 'proxy']) {
        const wait = nextAt - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const t0 = performance.now();
        nextAt = t0 + gapMs;
        try {
          const res = await tb.query(pipe, params, { path });
          samples[path].push(performance.now() - t0);
          retries[path] += res.retries;
        } catch (err) {
          if (err instanceof SignedOutError) throw err;
          errors[path] += 1;
          lastError[path] = describe(err);
        }
      }
      status.textContent = `Running ${pipe}: ${i + 1} / ${n} per path…`;
    }
    const stats = { direct: summarize(samples.direct), proxy: summarize(samples.proxy) };
    renderCompareCharts($('compare-hist'), $('compare-box'), samples, stats);
    fillStats(stats, errors, retries);
    const failed = Object.entries(lastError).map(([p, e]) => `${p}: ${e}`).join('; ');
    const paced = gapMs ? ` Paced to ${Math.floor(rps * 0.7)} requests/s (the token allows ${rps}).` : '';
    status.textContent = `Done: ${n} runs of ${pipe} per path.${paced}${failed ? ` Failures — ${failed}` : ''}`;
    status.dataset.done = 'true';
    log('compare', `Compared ${pipe} ×${n}: direct p50 ${ms(stats.direct?.p50)}, proxy p50 ${ms(stats.proxy?.p50)}`);
  } catch (err) {
    if (err instanceof SignedOutError) signedOut(err);
    else status.textContent = `Comparison failed: ${describe(err)}`;
  } finally {
    state.comparing = false;
    button.disabled = false;
  }
}

function fillStats(stats, errors, retries) {
  const tbody = $('compare-stats').tBodies[0];
  tbody.replaceChildren(...['direct', 'proxy'].map((path) => {
    const s = stats[path];
    const tr = document.createElement('tr');
    tr.dataset.path = path;
    const name = tr.insertCell();
    const dot = document.createElement('span');
    dot.className = `dot dot-${path}`;
    name.append(dot, path);
    const values = s ? [s.n, ms(s.min), ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max), ms(s.mean)] : [0, '–', '–', '–', '–', '–', '–'];
    for (const v of [...values, retries[path], errors[path]]) {
      const td = tr.insertCell();
      td.className = 'num';
      td.textContent = String(v);
    }
    return tr;
  }));
}

// ---------- wiring ----------

function wire() {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('login-error');
    hide(err);
    const button = $('login-submit');
    button.disabled = true;
    try {
      await tb.login($('login-username').value.trim(), $('login-password').value);
      $('login-password').value = '';
      showDashboard(await tb.me());
      log('login', `Signed in as ${state.me.user?.id ?? 'user'}`);
    } catch (e) {
      err.textContent = e.status === 401 ? 'Wrong username or password.'
        : e instanceof RateLimitedError ? `Too many attempts. Try again in ${duration(Math.ceil(e.retryAfter ?? 30))}.`
          : describe(e);
      show(err);
    } finally {
      button.disabled = false;
    }
  });
  for (const b of document.querySelectorAll('.demo-login')) {
    b.addEventListener('click', () => {
      $('login-username').value = b.dataset.user;
      $('login-password').value = b.dataset.pass;
      $('login-submit').focus();
    });
  }
  $('logout-btn').addEventListener('click', async () => {
    try {
      const providerLogout = await tb.logout();
      // After an OIDC login, end the provider's session too (it redirects back here).
      if (providerLogout) {
        window.location.assign(providerLogout);
        return;
      }
    } catch (e) {
      log('error', `Logout: ${describe(e)}`);
    }
    showLogin('You signed out. The token was discarded; queries fail with a signed-out error until you sign in again.');
  });
  $('refresh-btn').addEventListener('click', () => loadDashboard());
  $('token-refresh-btn').addEventListener('click', () => tb.refreshToken().catch((e) => {
    if (e instanceof SignedOutError) signedOut(e);
    else log('error', describe(e));
  }));
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener('change', () => {
      if (!radio.checked) return;
      tb.setMode(radio.value);
      try { localStorage.setItem(MODE_KEY, radio.value); } catch { /* private mode */ }
      hide($('fallback-banner'));
      if (state.me) loadDashboard();
      renderToken();
    });
  }
  $('compare-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    runCompare($('compare-pipe').value, Number($('compare-n').value));
  });
}

// ---------- helpers ----------

function log(kind, text) {
  const li = document.createElement('li');
  li.dataset.kind = kind;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  const tag = document.createElement('span');
  tag.className = `tag tag-${kind}`;
  tag.textContent = kind;
  li.append(time, tag, document.createTextNode(text));
  const list = $('activity-log');
  list.prepend(li);
  while (list.children.length > 40) list.lastElementChild.remove();
}

function describe(err) {
  return err?.message ?? String(err);
}

function savedMode() {
  try {
    const m = localStorage.getItem(MODE_KEY);
    return ['auto', 'direct', 'proxy'].includes(m) ? m : 'auto';
  } catch {
    return 'auto';
  }
}

const show = (el) => el.classList.remove('hidden');
const hide = (el) => el.classList.add('hidden');
const toggle = (el, on) => el.classList.toggle('hidden', !on);
const int = (v) => Number(v).toLocaleString('en-US', { maximumFractionDigits: 0 });
const money = (v) => Number(v).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const ms = (v) => (v == null ? '–' : `${v.toFixed(1)} ms`);
const clock = (unix) => new Date(unix * 1000).toLocaleTimeString();
function duration(s) {
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

start();
