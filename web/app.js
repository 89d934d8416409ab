// The demo page: log in (password or an identity provider), then three one-click proofs
// (web/proofs.js), the direct-vs-proxy comparison (web/compare.js), the tenant's budget
// (web/budget.js), a tenant dashboard served through web/tinybird-bff.js, an SQL console over
// the tenant's data sources on both paths, its API keys (web/keys.js, for tenant admins) and
// the current token laid bare.
// No framework and no build step; all DOM writes use textContent (never
// innerHTML with data) and classes (never inline styles), so a strict CSP holds.
import { createClient, SignedOutError, RateLimitedError } from './tinybird-bff.js';
import { clearCharts } from './charts.js';
import { RENDERERS } from './cards.js';
import { createSqlConsole } from './sql-console.js';
import { createUsageView } from './usage.js';
import { createKeysView } from './keys.js';
import { createBudgetMeter, refusalText } from './budget.js';
import { createCompare } from './compare.js';
import { createProofs } from './proofs.js';
import { createTokenView } from './token-view.js';

const $ = (id) => document.getElementById(id);
const MODE_KEY = 'tinybird-bff.mode';
const QUERIES = {
  top_products: { limit: 10 },
  sales_by_day: { days: 30 },
  recent_orders: { limit: 20 },
  orgs_overview: {},
};

const state = { me: null, tokens: 0, ticker: null, budgetTicker: null, providers: null };

// The "Tinybird blocked" proof makes this page's calls to other origins fail, as a firewall
// or an ad-blocker would; the client sees a network error, exactly as it would then.
const sim = { blocked: false };
function pageFetch(url, init) {
  if (sim.blocked && new URL(url, window.location.href).origin !== window.location.origin) {
    return Promise.reject(new TypeError('Failed to fetch (the demo blocked this page from Tinybird)'));
  }
  return window.fetch(url, init);
}

const tb = createClient({ bff: '/api', mode: savedMode(), fetch: pageFetch });
// Handy from the console (and for the browser tests): `tbDemo.client.tokenInfo()`.
window.tbDemo = { client: tb, sim };
async function fetchJson(path) {
  const r = await fetch(path, { credentials: 'same-origin' });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error ?? `HTTP ${r.status}`);
  return body;
}
const usageView = createUsageView(document.getElementById('usage-section'), { fetchJson });
const keysView = createKeysView($('keys-section'), { log: (k, t) => log(k, t), onSignedOut: (err) => signedOut(err) });
const sqlConsole = createSqlConsole(tb, { onSignedOut: (err) => signedOut(err) });
const budget = createBudgetMeter($('budget-meter'), { fetchJson, onView: showRefusal });
const compare = createCompare({ log: (k, t) => log(k, t), onSignedOut: (err) => signedOut(err) });
const tokenView = createTokenView(tb, () => {
  const pipe = grantedPipes()[0] ?? 'top_products';
  return { pipe, params: QUERIES[pipe] ?? {} };
});
const proofs = createProofs(tb, {
  sim, me: () => state.me, log: (k, t) => log(k, t), onSignedOut: (err) => signedOut(err), reload: () => loadDashboard(),
});


// ---------- client events ----------

tb.on('token', (info) => {
  state.tokens += 1;
  $('token-refresh-count').textContent = String(state.tokens);
  log('token', `${state.tokens === 1 ? 'Token fetched' : 'Token refreshed'}: ${info.name}, expires ${clock(info.expiresAt)}`);
  tokenView.render();
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
  clearInterval(state.budgetTicker);
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
  renderRegion(me.workspace);
  $('proof-isolation').querySelector('[data-testid=proof-isolation-target]').textContent = proofs.otherTenant();
  hide($('login-view'));
  hide($('signed-out-notice'));
  show($('session-bar'));
  show($('dashboard-view'));
  const pipes = grantedPipes();
  for (const card of document.querySelectorAll('article[data-pipe]')) toggle(card, pipes.includes(card.dataset.pipe));
  const select = $('compare-pipe');
  select.replaceChildren(...pipes.map((p) => new Option(p, p)));
  clearInterval(state.ticker);
  state.ticker = setInterval(() => tokenView.render(), 1000);
  tokenView.render();
  tokenView.exposure();
  sqlConsole.show(me.datasources ?? []);
  if ((user.roles ?? []).includes('admin')) usageView.show();
  if (me.manages_keys) keysView.show();
  clearInterval(state.budgetTicker);
  state.budgetTicker = setInterval(() => budget.refresh(), 15_000);
  // The dashboard first, then the comparison (it would compete for the same rps bucket).
  const loaded = Promise.all([loadDashboard(), budget.refresh()]);
  loaded.then(([, view]) => {
    if (state.me === me && pipes.length) compare.auto(pipes[0], QUERIES[pipes[0]], view);
  });
}

/** The region badge: the workspace the user's tokens are for, and the host the browser calls. */
function renderRegion(workspace) {
  const badge = $('region-badge');
  if (!workspace) {
    badge.textContent = '';
    return;
  }
  const host = workspace.host.replace(/^https?:\/\//, '');
  badge.textContent = workspace.name === 'default' ? host : `${workspace.name} · ${host}`;
  badge.dataset.workspace = workspace.name;
}

/** Over budget: the sentence that says so, instead of whatever failed first. */
function showRefusal(view) {
  const text = refusalText(view);
  const notice = $('budget-notice');
  notice.textContent = text ?? '';
  toggle(notice, Boolean(text));
  if (text) hide($('error-banner'));
}

/** A 429 with a reset time but no budget to explain it: the error itself, with the time. */
function showRefusalError(err) {
  const banner = $('error-banner');
  banner.textContent = `Refused until ${new Date(err.resetAt * 1000).toLocaleTimeString()}: ${describe(err)}`;
  show(banner);
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
  const results = await Promise.allSettled(pipes.map((p) => tb.query(p, QUERIES[p])));
  const failed = results.filter((r) => r.status === 'rejected');
  // A 429 with a reset time is a spent budget (or a lockout): say so, from the budget itself.
  const refused = failed.find((r) => r.reason instanceof RateLimitedError && r.reason.resetAt);
  if (refused) {
    const view = await budget.refresh();
    if (!refusalText(view)) showRefusalError(refused.reason);
  } else if (failed.length && !failed.some((r) => r.reason instanceof SignedOutError)) {
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
      RENDERERS[pipe](r.value.data);
      served(pipe, r.value);
    } else {
      if (r.reason instanceof SignedOutError) return signedOut(r.reason);
      errEl.textContent = describe(r.reason);
      show(errEl);
      $(`served-${pipe}`).textContent = 'failed';
      $(`served-${pipe}`).dataset.state = 'failed';
    }
  }
  tokenView.exposure();
}

/** Forgets everything the previous user saw, so the next one never glimpses it. */
function resetDashboard() {
  for (const id of ['top-products', 'recent-orders', 'orgs-overview']) $(id).tBodies[0].replaceChildren();
  for (const id of ['kpi-revenue', 'kpi-orders', 'kpi-top', 'kpi-token']) $(id).textContent = '–';
  for (const chip of document.querySelectorAll('[data-testid^="served-"]')) {
    chip.textContent = '';
    chip.dataset.path = '';
    chip.dataset.state = '';
  }
  for (const el of document.querySelectorAll('.card-error')) hide(el);
  $('path-indicator').dataset.path = '';
  $('path-indicator').textContent = 'no query yet';
  tokenView.reset();
  compare.reset();
  proofs.reset();
  budget.reset();
  hide($('budget-notice'));
  renderRegion(null);
  sqlConsole.reset();
  usageView.hide();
  keysView.hide();
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
      tokenView.render();
    });
  }
  $('compare-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const pipe = $('compare-pipe').value;
    compare.run(pipe, QUERIES[pipe] ?? {}, Number($('compare-n').value), Number($('compare-delay').value))
      .then(() => budget.refresh());
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
const clock = (unix) => new Date(unix * 1000).toLocaleTimeString();
function duration(s) {
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

start();
