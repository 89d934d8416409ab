// The three one-click proofs at the top of the demo page:
// - isolation: another tenant's rows asked for on both paths (org_id in the URL, SQL with
//   OR 1=1), and the rows that came back counted by whose they are;
// - fallback: this page's calls to Tinybird made to fail (as a firewall or ad-blocker would),
//   and the client's retry through the BFF proxy shown;
// - refresh: a token renewed before it expires, sped up to 5 seconds, then used.
// DOM writes use textContent and classes only (strict CSP), like app.js.
import { createClient, SignedOutError } from './tinybird-bff.js';

const q = (sel) => document.querySelector(sel);
const clock = (unix) => new Date(unix * 1000).toLocaleTimeString();
/** How soon the refresh proof's token is due. */
const REFRESH_IN_SECONDS = 5;

/**
 * @param {import('./tinybird-bff.js').TinybirdBffClient} tb the page's client
 * @param {{sim: {blocked: boolean}, me: () => any, log: (kind: string, text: string) => void,
 *   onSignedOut: (err: Error) => void, reload: () => Promise<void>}} deps
 */
export function createProofs(tb, { sim, me, log, onSignedOut, reload }) {
  const button = (name) => q(`[data-testid=proof-${name}-run]`);
  const verdict = (name, text, state) => {
    const chip = q(`[data-testid=proof-${name}-verdict]`);
    chip.textContent = text;
    chip.dataset.state = state;
  };
  const guard = (name, fn) => async () => {
    const b = button(name);
    b.disabled = true;
    try {
      await fn();
    } catch (err) {
      if (err instanceof SignedOutError) return onSignedOut(err);
      verdict(name, 'failed', 'failed');
      q(`[data-testid=proof-${name}-result]`).textContent = err.message;
    } finally {
      b.disabled = false;
    }
  };

  button('isolation').addEventListener('click', guard('isolation', isolation));
  button('fallback').addEventListener('click', guard('fallback', fallback));
  button('refresh').addEventListener('click', guard('refresh', refresh));

  function otherTenant() {
    const own = me()?.user?.tenant;
    return own === 'globex' ? 'acme' : 'globex';
  }

  async function isolation() {
    const info = me();
    const own = info.user.tenant;
    const target = otherTenant();
    const pipes = (info.pipes ?? []).filter((p) => 'org_id' in (p.fixed_params ?? {})).map((p) => p.pipe);
    const pipe = pipes.includes('recent_orders') ? 'recent_orders' : pipes[0];
    const attacks = [];
    if (pipe) {
      for (const path of ['direct', 'proxy']) {
        attacks.push({ asked: `${pipe}?org_id=${target}`, path, run: () => tb.query(pipe, { limit: 100, org_id: target }, { path }) });
      }
    }
    if ((info.datasources ?? []).some((d) => d.datasource === 'orders')) {
      const sql = `SELECT org_id, order_id FROM orders WHERE org_id = '${target}' OR 1=1 LIMIT 100`;
      for (const path of ['direct', 'proxy']) attacks.push({ asked: sql, path, run: () => tb.sql(sql, { path }) });
    }
    const rows = [];
    for (const attack of attacks) {
      const res = await attack.run();
      const foreign = res.data.filter((r) => r.org_id !== own).length;
      rows.push({ ...attack, rows: res.data.length, foreign, served: res.path });
    }
    const tbody = q('[data-testid=proof-isolation-result]').tBodies[0];
    tbody.replaceChildren(...rows.map((r) => {
      const tr = document.createElement('tr');
      tr.dataset.path = r.path;
      tr.dataset.foreign = String(r.foreign);
      for (const [i, v] of [r.asked, r.served, r.rows, r.foreign].entries()) {
        const td = tr.insertCell();
        td.textContent = String(v);
        if (i >= 2) td.className = 'num';
        if (i === 0) td.className = 'asked';
      }
      return tr;
    }));
    const total = rows.reduce((s, r) => s + r.foreign, 0);
    verdict('isolation', total === 0 ? `0 rows of ${target}` : `${total} foreign rows!`, total === 0 ? 'ok' : 'failed');
    log('proof', `Asked for ${target}'s rows ${rows.length} ways: ${total} foreign rows came back (${rows.reduce((s, r) => s + r.rows, 0)} of ${own}'s)`);
  }

  async function fallback() {
    const result = q('[data-testid=proof-fallback-result]');
    if (sim.blocked) {
      sim.blocked = false;
      tb.setMode(tb.getMode()); // forget the fallback: auto probes direct again at once
      button('fallback').textContent = 'Block Tinybird';
      verdict('fallback', '', '');
      result.textContent = 'Tinybird reachable again: queries go direct.';
      log('proof', 'Unblocked Tinybird');
      await reload();
      return;
    }
    if (tb.getMode() === 'direct') {
      result.textContent = 'Direct mode never falls back (it surfaces the failure): switch the mode to Auto first.';
      return;
    }
    sim.blocked = true;
    button('fallback').textContent = 'Unblock Tinybird';
    log('proof', 'Blocked this page from Tinybird');
    const host = tb.tokenInfo()?.host ?? 'Tinybird';
    const res = await tb.query('top_products', { limit: 5 });
    result.textContent = `The call to ${host} failed in this browser, so the client sent it through the BFF proxy: `
      + `served by ${res.path}${res.fellBack ? ' (fallback)' : ''}, ${res.data.length} rows, ${Math.round(res.elapsedMs)} ms. `
      + 'The dashboard below now loads through the proxy too.';
    result.dataset.path = res.path;
    verdict('fallback', `served by ${res.path}`, res.path === 'proxy' ? 'ok' : 'failed');
    await reload();
  }

  async function refresh() {
    const result = q('[data-testid=proof-refresh-result]');
    if (tb.getMode() === 'proxy') {
      result.textContent = 'Proxy mode holds no token: switch the mode to Auto or Direct first.';
      return;
    }
    // A watcher client of its own, whose refresh margin makes its token due in 5 s; the page's
    // client renews at three quarters of the lifetime, the same way.
    await tb.getToken();
    const lifetime = tb.tokenInfo().expiresIn;
    const watcher = createClient({ bff: '/api', mode: 'direct', refreshMarginSeconds: Math.max(1, lifetime - REFRESH_IN_SECONDS) });
    try {
      await watcher.getToken();
      const first = watcher.tokenInfo();
      const renewed = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no refresh within 20 s')), 20_000);
        const off = watcher.on('token', (info) => { clearTimeout(timer); off(); resolve(info); });
        watcher.on('error', (e) => { clearTimeout(timer); reject(e.error); });
      });
      const started = Date.now();
      const countdown = () => {
        const left = Math.max(0, REFRESH_IN_SECONDS - Math.floor((Date.now() - started) / 1000));
        result.textContent = `Token …${first.token.slice(-8)} expires at ${clock(first.expiresAt)}. Renewing it in ${left} s…`;
      };
      countdown();
      const tick = setInterval(countdown, 250);
      verdict('refresh', 'waiting', 'loading');
      let second;
      try {
        second = await renewed;
      } finally {
        clearInterval(tick);
      }
      const res = await watcher.query(me()?.pipes?.[0]?.pipe ?? 'top_products', { limit: 1 }, { path: 'direct' });
      result.textContent = `Renewed before expiry: token …${first.token.slice(-8)} (expires ${clock(first.expiresAt)}) `
        + `was replaced by …${second.token.slice(-8)} (expires ${clock(second.expiresAt)}), and a direct query with it `
        + `answered ${res.data.length} row in ${Math.round(res.elapsedMs)} ms. The old one stays valid until its exp: keep token.ttl short.`;
      result.dataset.renewed = second.token === first.token ? 'false' : 'true';
      verdict('refresh', 'renewed', 'ok');
      log('proof', `Watched a token renewal: exp ${clock(first.expiresAt)} → ${clock(second.expiresAt)}`);
    } finally {
      watcher.close();
    }
  }

  return {
    /** Clears every proof's result (on sign-out) and unblocks Tinybird. */
    reset() {
      sim.blocked = false;
      button('fallback').textContent = 'Block Tinybird';
      for (const name of ['isolation', 'fallback', 'refresh']) verdict(name, '', '');
      q('[data-testid=proof-isolation-result]').tBodies[0].replaceChildren();
      for (const name of ['fallback', 'refresh']) {
        const r = q(`[data-testid=proof-${name}-result]`);
        r.textContent = '';
        delete r.dataset.path;
        delete r.dataset.renewed;
      }
    },
    otherTenant,
  };
}
